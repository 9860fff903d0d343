/**
 * The agent service's reliability plan (the seeds' phase 3), made real: a breaker per upstream in one registry, the
 * strategy matrix's retries, timeouts and fallbacks, degradation levels 0-4, health checks, alerts and recovery.
 */
import {
  Alerts,
  CircuitBreaker,
  CircuitBreakerRegistry,
  DeferredDelivery,
  Degradation,
  Fallback,
  FallbackStore,
  HealthCheck,
  HealthMonitor,
  Policy,
  Recovery,
  ResilientCache,
  Retry,
  Timeout
} from "@effect-resilience/core"
import { NodeServices } from "@effect/platform-node"
import { Context, Effect, Layer, Option, Schema } from "effect"
import type { Duration } from "effect"
import { createHash } from "node:crypto"
import * as fs from "node:fs"
import { layer as UpstreamsLayer, type SearchHit, type Service, services, Upstreams } from "./Upstreams.ts"

/** What the agent needs to know from the configuration. */
export interface Settings {
  /** How long a breaker stays open before it lets a probe through. */
  readonly openDuration: Duration.Duration
  /** Where the search cache and the durable queues live. */
  readonly dataDir: string
  /** How the upstreams' breakers count calls in a fleet (with Redis). Default: `local` counting. */
  readonly fleet?: CircuitBreaker.Options["fleet"]
}

export class AgentSettings extends Context.Service<AgentSettings, Settings>()(
  "@effect-resilience/example-agent-service/AgentSettings"
) {}

/** Where the last good search answers are kept: a `FallbackStore` on disk, or Redis (shared) when configured. */
export interface SearchCache {
  readonly get: (query: string) => Effect.Effect<Option.Option<string>>
  /** Writes an answer; a store's failure is its own (the answer was served all the same). */
  readonly set: (query: string, value: string) => Effect.Effect<void>
  /** What the store health check runs. */
  readonly ping: Effect.Effect<void, unknown>
}

export class SearchCacheService extends Context.Service<SearchCacheService, SearchCache>()(
  "@effect-resilience/example-agent-service/SearchCache"
) {}

/** The breaker names of the seeds, by upstream. */
export const breakerOf: Record<Service, string> = {
  claude: "claude_api",
  telegram: "telegram_api",
  exa: "exa_api",
  tavily: "tavily_api",
  firebase: "firebase",
  qdrant: "qdrant"
}

// The seeds' table, as data.
export const degradationRules: ReadonlyArray<Degradation.Rule> = [
  { level: 1, breakers: ["exa_api", "tavily_api"], when: "all", description: "Search degraded: cached or unavailable" },
  { level: 2, breakers: ["qdrant"], description: "Memory degraded: keyword routing, no vector search" },
  { level: 3, breakers: ["firebase"], description: "State degraded: L1 cache only, no persistence" },
  { level: 4, breakers: ["claude_api"], description: "Critical: error message, log for retry" }
]

export interface SearchAnswer {
  readonly results: ReadonlyArray<SearchHit>
  readonly served_by: string
  readonly degraded: boolean
  readonly message?: string
}

export interface ChatAnswer {
  readonly reply: string
  readonly degraded: boolean
  readonly degradation_level: number
  readonly degradation: string
  readonly session: { readonly turns: number; readonly persisted: boolean }
  readonly memory: { readonly mode: "vector" | "keyword"; readonly matches: ReadonlyArray<string> }
  readonly claude: "answered" | "queued"
  readonly delivery: "Delivered" | "Queued" | "Duplicate" | "Pending"
}

export interface Agent {
  readonly search: (query: string) => Effect.Effect<SearchAnswer>
  readonly chat: (userId: string, message: string) => Effect.Effect<ChatAnswer, DeferredDelivery.DeferredDeliveryError>
  readonly degradation: Effect.Effect<Degradation.Status>
  /** What Telegram received and what is still queued. */
  readonly outbox: Effect.Effect<unknown>
  /** Logs what stays queued on disk for the next process. */
  readonly flush: Effect.Effect<void>
}

export class AgentService extends Context.Service<AgentService, Agent>()(
  "@effect-resilience/example-agent-service/Agent"
) {}

const Session = Schema.Struct({ user_id: Schema.String, turns: Schema.Number, last_message: Schema.String })
const decodeSession = Schema.decodeUnknownOption(Schema.fromJsonString(Session))
const SearchResults = Schema.fromJsonString(Schema.Array(Schema.Struct({ title: Schema.String, url: Schema.String })))
const decodeResults = Schema.decodeUnknownOption(SearchResults)

const Outgoing = Schema.Struct({ user_id: Schema.String, text: Schema.String })
const Pending = Schema.Struct({ user_id: Schema.String, message: Schema.String })

// A short, stable digest of a message for its queue key (keys are bounded; messages are not). Collision-resistant: two
// messages with one key are one message to the queue, and the second would never be answered.
const digest = (text: string): string => createHash("sha256").update(text).digest("base64url")

const unavailable = "Web search temporarily unavailable. Please try again."

const apology = "Sorry, I can't answer right now. Your message is saved and I will reply as soon as I can."

// The seeds' retries (exponential backoff, jittered) and timeouts, one of each per upstream.
const retry = (service: Service, times: number) =>
  Retry.make({
    name: breakerOf[service],
    schedule: Retry.exponential({ base: "50 millis", cap: "1 second", times }).pipe(Retry.equalJitter)
  })

const timeout = (service: Service, duration: Duration.Input) => Timeout.make({ name: breakerOf[service], duration })

const make = Effect.gen(function*() {
  const { dataDir, fleet, openDuration } = yield* AgentSettings
  const upstreams = yield* Upstreams
  const searchCache = yield* SearchCacheService
  const monitor = yield* HealthMonitor.HealthMonitor

  // A breaker per upstream, outermost in its policy so that it sees one outcome per call (retries included).
  const breaker = (service: Service, failures: number) =>
    CircuitBreaker.make({ name: breakerOf[service], trip: CircuitBreaker.consecutive(failures), openDuration, fleet })
  const policy = Effect.fnUntraced(function*(service: Service, failures: number, times: number, limit: Duration.Input) {
    return yield* Policy.make({
      name: breakerOf[service],
      circuitBreaker: yield* breaker(service, failures),
      retry: yield* retry(service, times),
      timeout: yield* timeout(service, limit)
    })
  })

  const exa = yield* policy("exa", 3, 2, "2 seconds")
  const tavily = yield* policy("tavily", 3, 2, "2 seconds")
  const claude = yield* policy("claude", 3, 3, "10 seconds")
  const qdrant = yield* policy("qdrant", 5, 2, "1 second")
  // Telegram's breaker guards the delivery queue; the queue's sink retries and times out inside it.
  const telegramBreaker = yield* breaker("telegram", 5)
  const telegramCall = yield* Policy.make({
    name: "telegram_api",
    retry: yield* retry("telegram", 2),
    timeout: yield* timeout("telegram", "3 seconds")
  })
  // Sessions: an L1 in front of Firebase; while the firebase breaker is open, the L1 alone ("L1 cache only"). The
  // seeds' stack for Firebase as for the others: a retry around a timeout per attempt, inside the cache's breaker.
  const sessions = yield* ResilientCache.make<string, unknown>({
    name: "firebase",
    backend: {
      get: (key) => Effect.map(upstreams.firebaseGet(key), Option.fromUndefinedOr),
      set: (key, value) => upstreams.firebaseSet(key, value),
      invalidate: (key) => upstreams.firebaseDelete(key)
    },
    timeout: "1 second",
    retry: yield* retry("firebase", 2),
    l1: { maxEntries: 10_000, ttl: "1 hour" },
    circuitBreaker: { trip: CircuitBreaker.consecutive(5), openDuration, fleet }
  })

  // Web search: Exa, then Tavily, then the last good answer, then a message.
  const search = yield* Fallback.make({
    name: "web_search",
    steps: [
      Fallback.step("exa_api", upstreams.exaSearch).pipe(Fallback.withPolicy(exa)),
      Fallback.step("tavily_api", upstreams.tavilySearch).pipe(Fallback.withPolicy(tavily)),
      Fallback.degraded("cache", (query: string) =>
        Effect.flatMap(searchCache.get(query), (found) => {
          const results = Option.flatMap(found, decodeResults)
          return Option.isSome(results) ? Effect.succeed(results.value) : Effect.fail("miss" as const)
        })),
      Fallback.succeed("unavailable", [] as ReadonlyArray<SearchHit>)
    ]
  })

  // The durable queues: Telegram replies while Telegram is down, and messages Claude could not answer yet.
  const journal = yield* FallbackStore.make({ directory: `${dataDir}/queue`, name: "queue" })
  const telegram = yield* DeferredDelivery.make({
    name: "telegram",
    schema: Outgoing,
    sink: (message, delivery) =>
      upstreams.telegramSend(message.user_id, message.text, delivery.key).pipe(telegramCall.protect),
    breaker: telegramBreaker,
    store: journal,
    retryInterval: "500 millis",
    maxAttempts: 20
  })
  const claudeBreaker = claude.stages.circuitBreaker
  const claudeRetry = yield* DeferredDelivery.make({
    name: "claude_retry",
    schema: Pending,
    // Answered once Claude is back, and the answer goes out through the Telegram queue.
    sink: (pending, delivery) =>
      upstreams.claudeReply(
        pending.message,
        upstreams.keywordMatch(pending.user_id, pending.message).map((m) => m.text)
      )
        .pipe(
          Effect.timeout("10 seconds"),
          Effect.flatMap((reply) =>
            // The message's key and when it was queued: the same text queued again in a later outage is another
            // message, whose reply Telegram must not take for a repeat of the first one's.
            telegram.send({ user_id: pending.user_id, text: reply }, {
              key: `${delivery.key}:${delivery.enqueuedAt}-reply`
            })
          )
        ),
    breaker: claudeBreaker,
    store: journal,
    retryInterval: "500 millis",
    // A flaky Claude (say half its calls failing) keeps admitting calls, so each failure counts against the message:
    // 20 attempts make a dead letter from flakiness alone about a one-in-a-million event. The user was promised a reply.
    maxAttempts: 20
  })

  const degradation = yield* Degradation.make({ normal: "Full functionality", rules: degradationRules })

  // Health: a check per upstream, the store and the disk. Upstreams are not critical: the service degrades.
  for (const service of Object.keys(breakerOf) as ReadonlyArray<Service>) {
    yield* monitor.register({
      name: breakerOf[service],
      check: upstreams.ping(service),
      interval: "5 seconds",
      timeout: "2 seconds",
      critical: false
    })
  }
  yield* monitor.register({ name: "store", check: searchCache.ping, interval: "10 seconds", timeout: "2 seconds" })
  yield* monitor.register({
    name: "disk",
    check: HealthCheck.diskSpace({
      path: dataDir,
      criticalFreeShare: 0.02,
      warningFreeShare: 0.05,
      usage: (path) =>
        Effect.try({
          try: () => {
            const stats = fs.statfsSync(path)
            return { free: stats.bavail * stats.bsize, total: stats.blocks * stats.bsize }
          },
          catch: (cause) => new HealthCheck.HealthCheckFailed({ check: `disk ${path}`, message: String(cause) })
        })
    }),
    interval: "30 seconds"
  })

  // A live answer (Exa's or Tavily's) feeds the cache, outside the providers' policies: a slow disk is not a slow
  // provider.
  const fresh = yield* writeThrottle()
  const runSearch = (query: string): Effect.Effect<SearchAnswer> =>
    Effect.flatMap(search.run(query), (served) => {
      // Anything but the first provider is a fallback.
      const degraded = served.degraded || served.index > 0
      const answer: SearchAnswer = served.servedBy === "unavailable"
        ? { results: served.value, served_by: served.servedBy, degraded, message: unavailable }
        : { results: served.value, served_by: served.servedBy, degraded }
      const live = served.servedBy === "exa_api" || served.servedBy === "tavily_api"
      return live && fresh(query, served.servedBy)
        ? Effect.as(searchCache.set(query, JSON.stringify(served.value)), answer)
        : Effect.succeed(answer)
    })

  const chat = Effect.fnUntraced(function*(userId: string, message: string) {
    const key = `session:${userId}`
    const previous = Option.flatMap(yield* sessions.get(key), decodeSession)
    const turns = Option.match(previous, { onNone: () => 0, onSome: (s) => s.turns }) + 1

    // Memory: vector search in Qdrant; the keyword match while it fails or its breaker is open.
    const memory = yield* upstreams.qdrantSearch(userId, message).pipe(
      qdrant.protect,
      Effect.match({
        onSuccess: (found) => ({ mode: "vector" as const, matches: found.map((m) => m.text) }),
        onFailure: () => ({
          mode: "keyword" as const,
          matches: upstreams.keywordMatch(userId, message).map((m) => m.text)
        })
      })
    )
    yield* Effect.ignore(upstreams.qdrantUpsert(userId, message).pipe(qdrant.protect))

    // The reply: Claude, or an apology and the message queued until Claude's breaker lets calls through again.
    const answered = yield* upstreams.claudeReply(message, memory.matches).pipe(claude.protect, Effect.option)
    if (Option.isNone(answered)) {
      // Keyed by user and text: the same message sent again while Claude is down is queued (and answered) once.
      yield* claudeRetry.send({ user_id: userId, message }, { key: `${userId.length}:${userId}:${digest(message)}` })
    }

    const persisted = yield* sessions.set(key, JSON.stringify({ user_id: userId, turns, last_message: message }))
    const receipt = Option.isSome(answered)
      ? (yield* telegram.send({ user_id: userId, text: answered.value }))._tag
      : "Pending" as const
    const status = yield* degradation.status
    return {
      reply: Option.getOrElse(answered, () => apology),
      degraded: !persisted || memory.mode === "keyword" || Option.isNone(answered) || receipt === "Queued",
      degradation_level: status.level,
      degradation: status.description,
      session: { turns, persisted },
      memory,
      claude: Option.isSome(answered) ? "answered" as const : "queued" as const,
      delivery: receipt
    } satisfies ChatAnswer
  })

  const flush = Effect.gen(function*() {
    const queued = (yield* telegram.snapshot).depth + (yield* claudeRetry.snapshot).depth
    yield* Effect.logInfo(`shutdown: ${queued} message(s) stay queued in ${dataDir}/queue for the next start`)
  })
  // Released before the queues close: the journal is on disk already, this says what is left in it.
  yield* Effect.addFinalizer(() => flush)

  const agent = AgentService.of({
    search: runSearch,
    chat,
    degradation: degradation.status,
    outbox: Effect.gen(function*() {
      return {
        sent: yield* upstreams.telegramSent,
        telegram: yield* telegram.snapshot,
        claude_retry: yield* claudeRetry.snapshot
      }
    }),
    flush
  })
  return { agent, degradation }
})

/**
 * The agent, its breakers registered in the `CircuitBreakerRegistry` in context, and its `Degradation` (for
 * `/health` and the dashboard).
 */
export const layer = Layer.effectContext(
  Effect.map(
    make,
    ({ agent, degradation }) =>
      Context.make(AgentService, agent).pipe(Context.add(Degradation.Degradation, degradation))
  )
)

/**
 * Decides whether a live answer needs writing to the search cache: a provider's answer to a query is written once a
 * period (a minute) at most, so that a hot query does not rewrite (and flush to disk) the same answer on every request,
 * while another provider's answer (Tavily's once Exa fails) is written at once. Search results do not change from
 * second to second; comparing them (or encoding them) on every request cost more than the rest of the cache path.
 *
 * The periods are counted by a fiber of the scope's that sleeps through each one (on the `Clock`, so `TestClock` moves
 * them): a search reads a number, where a read of the clock cost it a twentieth of what the resilience stack adds.
 */
export const writeThrottle = (options?: { readonly maxEntries?: number; readonly every?: Duration.Input }) =>
  Effect.gen(function*() {
    const maxEntries = options?.maxEntries ?? 10_000
    const every = options?.every ?? "1 minute"
    const last = new Map<string, { readonly servedBy: string; readonly period: number }>()
    let period = 0
    yield* Effect.forkScoped(Effect.forever(Effect.andThen(Effect.sleep(every), Effect.sync(() => void period++))))
    return (query: string, servedBy: string): boolean => {
      const seen = last.get(query)
      if (seen !== undefined && seen.servedBy === servedBy && seen.period === period) return false
      if (last.size >= maxEntries) last.clear()
      last.set(query, { servedBy, period })
      return true
    }
  })

/**
 * The search answers a process keeps on its own disk: the local cache's entries, or with Redis, the copies its
 * fallback keeps for an outage (one per distinct query otherwise, for the answers' day).
 */
export const searchCacheEntries = 10_000

/** The search cache on a local `FallbackStore` (no Redis). */
export const layerSearchCacheLocal = Layer.effect(
  SearchCacheService,
  Effect.gen(function*() {
    const { dataDir } = yield* AgentSettings
    const store = yield* FallbackStore.make({
      directory: `${dataDir}/cache`,
      name: "search-cache",
      maxEntries: searchCacheEntries
    })
    return SearchCacheService.of({
      get: (query) => Effect.orElseSucceed(store.get(`search:${query}`), () => Option.none()),
      set: (query, value) => Effect.ignore(store.set(`search:${query}`, value, { ttl: "1 day" })),
      ping: Effect.andThen(store.set("health:ping", "ok"), store.get("health:ping"))
    })
  })
)

/**
 * The agent with everything it runs on but HTTP: alerts to the log, the recovery manager wired to the upstreams, the
 * health monitor, the breaker registry, the search cache (and whatever else) of `store`, the simulated upstreams (or
 * `upstreams`, a test's) and `settings`. What `main.ts` serves, and what the benchmark calls in-process.
 */
export const layerRunning = <ROut, E, RIn>(
  settings: Settings,
  store: Layer.Layer<ROut, E, RIn>,
  upstreams: Layer.Layer<Upstreams> = UpstreamsLayer
) => {
  const monitoring = Layer.mergeAll(
    Alerts.layer({ dedupWindow: "1 minute" }).pipe(Layer.provide(Alerts.layerLog)),
    Recovery.layer({
      rules: services.map((service) => ({
        service: breakerOf[service],
        action: Recovery.reconnect(Upstreams.use((u) => u.reconnect(service))),
        backoff: { base: "5 seconds", max: "1 minute" },
        cooldown: "1 minute"
      }))
    })
  )
  return layer.pipe(
    Layer.provideMerge(monitoring),
    Layer.provideMerge(HealthMonitor.layer()),
    Layer.provideMerge(CircuitBreakerRegistry.layer),
    Layer.provideMerge(store),
    Layer.provideMerge(upstreams),
    Layer.provideMerge(Layer.succeed(AgentSettings, settings)),
    Layer.provideMerge(NodeServices.layer)
  )
}

/**
 * The same handlers with no resilience at all: each upstream called once, directly, its failure the caller's (a
 * 500). Only the benchmark uses it, as the baseline the resilience stack's cost is measured against.
 */
export const layerBare = Layer.effect(
  AgentService,
  Effect.gen(function*() {
    const upstreams = yield* Upstreams
    const unreachable = Effect.die("the bare agent has no degradation")
    return AgentService.of({
      search: (query) =>
        Effect.orDie(
          Effect.map(upstreams.exaSearch(query), (results) => ({ results, served_by: "exa_api", degraded: false }))
        ),
      chat: (userId, message) =>
        Effect.orDie(Effect.gen(function*() {
          const key = `session:${userId}`
          const previous = Option.flatMap(Option.fromUndefinedOr(yield* upstreams.firebaseGet(key)), decodeSession)
          const turns = Option.match(previous, { onNone: () => 0, onSome: (s) => s.turns }) + 1
          const matches = (yield* upstreams.qdrantSearch(userId, message)).map((m) => m.text)
          yield* upstreams.qdrantUpsert(userId, message)
          const reply = yield* upstreams.claudeReply(message, matches)
          yield* upstreams.firebaseSet(key, JSON.stringify({ user_id: userId, turns, last_message: message }))
          yield* upstreams.telegramSend(userId, reply, `${userId}:${turns}`)
          return {
            reply,
            degraded: false,
            degradation_level: 0,
            degradation: "Full functionality",
            session: { turns, persisted: true },
            memory: { mode: "vector" as const, matches },
            claude: "answered" as const,
            delivery: "Delivered" as const
          }
        })),
      degradation: unreachable,
      outbox: Effect.map(upstreams.telegramSent, (sent) => ({ sent })),
      flush: Effect.void
    })
  })
)
