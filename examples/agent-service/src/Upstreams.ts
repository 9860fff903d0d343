/**
 * The agent service's upstreams, simulated in-process so that the service runs anywhere with no API keys and no
 * network: each one answers like the real API would, and fails or slows down as its chaos settings say.
 */
import { Context, Data, Effect, Layer, Random, Ref } from "effect"

export const services = ["exa", "tavily", "claude", "telegram", "firebase", "qdrant"] as const
export type Service = typeof services[number]

export const isService = (name: string): name is Service => (services as ReadonlyArray<string>).includes(name)

/** What `POST /chaos/{service}` sets: the share of calls that fail, and the latency added to every call. */
export interface ChaosSettings {
  readonly failure_rate: number
  readonly latency_ms: number
}

/** A simulated upstream failed, as the real API would with a 503. */
export class UpstreamError extends Data.TaggedError("UpstreamError")<{ readonly service: Service }> {
  override get message(): string {
    return `${this.service}: 503 Service Unavailable (simulated)`
  }
}

export interface SearchHit {
  readonly title: string
  readonly url: string
}

export interface Memory {
  readonly text: string
  readonly score: number
}

export interface Upstreams {
  readonly chaos: Effect.Effect<Record<Service, ChaosSettings>>
  readonly setChaos: (service: Service, patch: Partial<ChaosSettings>) => Effect.Effect<ChaosSettings>
  /** A cheap call through the service's chaos: what its health check runs. */
  readonly ping: (service: Service) => Effect.Effect<void, UpstreamError>
  readonly exaSearch: (query: string) => Effect.Effect<ReadonlyArray<SearchHit>, UpstreamError>
  readonly tavilySearch: (query: string) => Effect.Effect<ReadonlyArray<SearchHit>, UpstreamError>
  readonly claudeReply: (message: string, memories: ReadonlyArray<string>) => Effect.Effect<string, UpstreamError>
  readonly telegramSend: (userId: string, text: string, idempotencyKey: string) => Effect.Effect<void, UpstreamError>
  /**
   * The last `sentShown` messages Telegram accepted, oldest first, duplicates (same idempotency key) dropped as
   * Telegram's client would.
   */
  readonly telegramSent: Effect.Effect<ReadonlyArray<{ readonly user_id: string; readonly text: string }>>
  readonly firebaseGet: (key: string) => Effect.Effect<string | undefined, UpstreamError>
  readonly firebaseSet: (key: string, value: string) => Effect.Effect<void, UpstreamError>
  readonly firebaseDelete: (key: string) => Effect.Effect<number, UpstreamError>
  readonly qdrantUpsert: (userId: string, text: string) => Effect.Effect<void, UpstreamError>
  /** Vector search, simulated: memories ranked by word overlap with the query. */
  readonly qdrantSearch: (userId: string, query: string) => Effect.Effect<ReadonlyArray<Memory>, UpstreamError>
  /** What stays when Qdrant is down: the memories this process saw, matched by keyword. */
  readonly keywordMatch: (userId: string, query: string) => ReadonlyArray<Memory>
  /** Recovery's reconnect hook: counted, so that the recovery manager's actions show up somewhere. */
  readonly reconnect: (service: Service) => Effect.Effect<void>
}

export const Upstreams = Context.Service<Upstreams>("@effect-resilience/example-agent-service/Upstreams")

// Words are runs of letters and digits in any script: `\W` is ASCII-only, and would cut "Käsekuchen" in two.
const words = (text: string): ReadonlyArray<string> =>
  text.toLowerCase().split(/[^\p{L}\p{N}]+/u).filter((w) => w.length > 2)

const overlap = (query: string, text: string): number => {
  const q = new Set(words(query))
  return words(text).filter((w) => q.has(w)).length
}

// A write to a map that keeps the `max` keys written last (a Map iterates in insertion order: the first key is the
// oldest write).
const setBounded = <V>(store: Map<string, V>, key: string, value: V, max: number) => {
  store.delete(key)
  store.set(key, value)
  if (store.size > max) store.delete(store.keys().next().value!)
}

// The last 50 texts per user, for the `maxUsers` users seen last.
const remember = (store: Map<string, Array<string>>, userId: string, text: string, maxUsers: number) => {
  const list = store.get(userId) ?? []
  list.push(text)
  setBounded(store, userId, list.slice(-50), maxUsers)
}

/**
 * How many users' memories the process keeps for the keyword match: its own memory, so it is bounded. The simulated
 * Firebase and Qdrant, which live in this process too, keep as many users' documents and points, those written last.
 */
export const localMemoryUsers = 10_000

/**
 * What the simulated Telegram keeps: the outbox shows its last `sentShown` messages, and it drops a message whose
 * idempotency key was among the last `sentKeysKept` it accepted. A service that runs for days sends without end; what
 * it remembers of that stays bounded.
 */
export const sentShown = 1_000
export const sentKeysKept = 100_000

const rank = (texts: ReadonlyArray<string>, query: string): ReadonlyArray<Memory> =>
  texts.map((text) => ({ text, score: overlap(query, text) })).filter((m) => m.score > 0).sort((a, b) =>
    b.score - a.score
  ).slice(0, 3)

const make = Effect.gen(function*() {
  const chaos = yield* Ref.make(
    Object.fromEntries(services.map((s) => [s, { failure_rate: 0, latency_ms: 0 }])) as Record<Service, ChaosSettings>
  )
  // The simulated remote state: Firebase documents, Qdrant points, Telegram's chat log. In this process, so bounded
  // like the keyword memory: a service that runs for days meets users without end.
  const documents = new Map<string, string>()
  const points = new Map<string, Array<string>>()
  const localMemories = new Map<string, Array<string>>()
  const sent: Array<{ readonly user_id: string; readonly text: string }> = []
  const sentKeys = new Set<string>()

  // Every call: the latency first (a slow upstream is slow to fail too), then a failure with `failure_rate`.
  const call = <A>(service: Service, answer: () => A): Effect.Effect<A, UpstreamError> =>
    Effect.flatMap(Ref.get(chaos), (all) => {
      const { failure_rate, latency_ms } = all[service]
      const run = Effect.flatMap(
        Random.next,
        (draw) => draw < failure_rate ? Effect.fail(new UpstreamError({ service })) : Effect.sync(answer)
      )
      return latency_ms > 0 ? Effect.andThen(Effect.sleep(latency_ms), run) : run
    })

  // The provider's parts of the answer are made once, so that its strings cost the same in the bare service as in
  // the resilient one: joined per call, V8 folded the provider's name into the bare service's code (one provider)
  // and not into the resilient one's (two), which then paid about 1.5k instructions more per search in-process.
  const search = (service: "exa" | "tavily") => {
    const titleTail = ` (${service} result `
    const urlHead = `https://${service}.example/search?q=`
    return (query: string) =>
      call(service, (): ReadonlyArray<SearchHit> => {
        const encoded = encodeURIComponent(query)
        return [1, 2, 3].map((n) => ({ title: `${query}${titleTail}${n})`, url: `${urlHead}${encoded}&n=${n}` }))
      })
  }

  return Upstreams.of({
    chaos: Ref.get(chaos),
    setChaos: (service, patch) =>
      Ref.modify(chaos, (all) => {
        const next = { ...all[service], ...patch }
        return [next, { ...all, [service]: next }]
      }),
    ping: (service) => call(service, () => undefined),
    exaSearch: search("exa"),
    tavilySearch: search("tavily"),
    claudeReply: (message, memories) =>
      call("claude", () =>
        memories.length === 0
          ? `You said: "${message}". How can I help further?`
          : `You said: "${message}". Earlier you mentioned: ${memories.map((m) => `"${m}"`).join(", ")}.`),
    telegramSend: (userId, text, key) =>
      call("telegram", () => {
        if (sentKeys.has(key)) return
        sentKeys.add(key)
        // A Set iterates in insertion order: the first key is the oldest.
        if (sentKeys.size > sentKeysKept) sentKeys.delete(sentKeys.values().next().value!)
        sent.push({ user_id: userId, text })
        // Trimmed in batches, so that a send does not move the whole log every time.
        if (sent.length >= 2 * sentShown) sent.splice(0, sent.length - sentShown)
      }),
    telegramSent: Effect.sync(() => sent.slice(-sentShown)),
    firebaseGet: (key) => call("firebase", () => documents.get(key)),
    firebaseSet: (key, value) => call("firebase", () => setBounded(documents, key, value, localMemoryUsers)),
    firebaseDelete: (key) => call("firebase", () => documents.delete(key) ? 1 : 0),
    qdrantUpsert: (userId, text) =>
      // The process keeps its own copy whatever Qdrant does: the keyword match works from it.
      Effect.andThen(
        Effect.sync(() => remember(localMemories, userId, text, localMemoryUsers)),
        call("qdrant", () => remember(points, userId, text, localMemoryUsers))
      ),
    qdrantSearch: (userId, query) => call("qdrant", () => rank(points.get(userId) ?? [], query)),
    keywordMatch: (userId, query) => rank(localMemories.get(userId) ?? [], query),
    reconnect: (service) => Effect.logInfo(`recovery: reconnecting the ${service} client`)
  })
})

export const layer: Layer.Layer<Upstreams> = Layer.effect(Upstreams, make)
