/**
 * What the scenarios share: the agent service as a child process on a free port, a fixed-rate load generator that
 * records every response, outside checks (Redis keys, the Telegram outbox), timing and percentiles.
 */
import * as AgentProcess from "@effect-resilience/example-agent-service/process"
import * as RedisServer from "@effect-resilience/testing/RedisServer"
import { Clock, Data, Effect, Fiber, Schedule } from "effect"
import type { Duration } from "effect"
import type { Scope } from "effect"
import { readdirSync, readFileSync } from "node:fs"

export const token = "reliability-admin-token"

export class ScenarioError extends Data.TaggedError("ScenarioError")<{ readonly message: string }> {}

export interface ServiceOptions {
  readonly dataDir: string
  readonly redisUrl?: string | undefined
  readonly port?: number | undefined
  readonly openDuration?: string | undefined
  /** More environment variables for the service (say `FLEET_COUNTING`); they win over the ones above. */
  readonly env?: Readonly<Record<string, string>> | undefined
}

/** Starts the service (`node src/main.ts`) on a free port (or the given one); the scope SIGKILLs it. */
export const startService = (
  options: ServiceOptions
): Effect.Effect<AgentProcess.Instance, AgentProcess.ProcessError, Scope.Scope> =>
  Effect.gen(function*() {
    const port = options.port ?? (yield* AgentProcess.freePort)
    return yield* AgentProcess.start({
      env: {
        PORT: String(port),
        DATA_DIR: options.dataDir,
        RESILIENCE_ADMIN_TOKEN: token,
        BREAKER_OPEN_DURATION: options.openDuration ?? "1 second",
        ...(options.redisUrl !== undefined ? { REDIS_URL: options.redisUrl } : {}),
        ...options.env
      }
    })
  })

/** Sets an upstream's chaos settings; anything but a 200 is a scenario error. */
export const chaos = (
  instance: AgentProcess.Instance,
  service: string,
  settings: { readonly failure_rate?: number; readonly latency_ms?: number }
) =>
  Effect.flatMap(
    instance.request("POST", `/chaos/${service}`, { body: settings, token }),
    (response) =>
      response.status === 200
        ? Effect.void
        : Effect.fail(new ScenarioError({ message: `chaos ${service}: ${response.status}` }))
  )

/** Milliseconds since `from` (the monotonic clock). */
export const since = (from: number) => Effect.map(Clock.currentTimeMillis, (now) => now - from)

export const now = Clock.currentTimeMillis

/** Polls `check` every `every` until it is true, at most `within` ms: the elapsed ms, or undefined on a timeout. */
export const timeUntil = <E, R>(
  check: Effect.Effect<boolean, E, R>,
  within: number,
  every: Duration.Input = "20 millis"
): Effect.Effect<number | undefined, never, R> =>
  Effect.gen(function*() {
    const start = yield* now
    return yield* check.pipe(
      Effect.orElseSucceed(() => false),
      Effect.flatMap((ok) => ok ? since(start) : Effect.fail("not yet" as const)),
      Effect.retry(Schedule.spaced(every)),
      Effect.timeoutOrElse({ duration: within, orElse: () => Effect.succeed(undefined) }),
      Effect.orElseSucceed(() => undefined)
    )
  })

/** The `p`-th percentile (0-100) of the values, or NaN when there are none. */
export const percentile = (values: ReadonlyArray<number>, p: number): number => {
  if (values.length === 0) return Number.NaN
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]
}

export const ms = (value: number | undefined): string =>
  value === undefined || Number.isNaN(value) ? "n/a" : `${Math.round(value)} ms`

// ---------------------------------------------------------------------------------------------------------------
// Load

/** One request the load generator sent, and what came back. */
export interface Sent {
  readonly kind: "search" | "chat"
  /** The query or the user id: unique per request, so that each write can be found afterwards. */
  readonly id: string
  /** The HTTP status, or 0 when the request did not get an answer (connection refused, timeout). */
  readonly status: number
  // oxlint-disable-next-line no-explicit-any -- parsed JSON, read by the scenarios' checks
  readonly body: any
  readonly at: number
  readonly latency: number
}

export interface Load {
  readonly sent: Array<Sent>
  /** Stops the generator and waits for the requests in flight. */
  readonly stop: Effect.Effect<ReadonlyArray<Sent>>
}

export interface LoadOptions {
  /** Requests per second (spread evenly). */
  readonly rate: number
  /** Share of chat requests (the rest are searches). Default 0.3. */
  readonly chatShare?: number | undefined
  /** Put before every id, so that two generators never share one. */
  readonly tag: string
  /**
   * Users and queries drawn from this many (returning users, popular queries), every chat message still unique; by
   * default each request has a user or query of its own, which the outside checks of the writes rely on.
   */
  readonly population?: number | undefined
  /** The instances to spread the requests over (round robin); read each time, so a restarted one can be swapped. */
  readonly targets: () => ReadonlyArray<{ readonly base: string }>
}

const fetchJson = (url: string, init: RequestInit) =>
  Effect.promise(async () => {
    try {
      const response = await fetch(url, { ...init, signal: AbortSignal.timeout(10_000) })
      const text = await response.text()
      let body: unknown = text
      try {
        body = JSON.parse(text)
      } catch {
        // not JSON: kept as text
      }
      return { status: response.status, body }
    } catch {
      return { status: 0, body: undefined }
    }
  })

/** A fixed-rate load generator of unique searches and chats, running until `stop`. */
export const load = (options: LoadOptions): Effect.Effect<Load, never, Scope.Scope> =>
  Effect.gen(function*() {
    const sent: Array<Sent> = []
    let n = 0
    const one = Effect.gen(function*() {
      const i = n++
      const targets = options.targets()
      const target = targets[i % targets.length]
      const chat = (i * 7919) % 100 < (options.chatShare ?? 0.3) * 100
      const id = `${options.tag}-${i}`
      const who = options.population === undefined ? id : `${options.tag}-${i % options.population}`
      const start = yield* now
      const response = chat
        ? yield* fetchJson(`${target.base}/chat`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ user_id: who, message: `hello ${id}` })
        })
        : yield* fetchJson(`${target.base}/search?q=${encodeURIComponent(who)}`, { method: "GET" })
      const end = yield* now
      sent.push({ kind: chat ? "chat" : "search", id, ...response, at: start, latency: end - start })
    })
    // Requests are detached from the pacing loop, so that stopping it lets the ones in flight finish.
    const inFlight = new Set<Fiber.Fiber<void>>()
    const loop = yield* Effect.forkScoped(
      Effect.gen(function*() {
        const request = yield* Effect.forkDetach(one)
        inFlight.add(request)
        request.addObserver(() => inFlight.delete(request))
      }).pipe(Effect.repeat(Schedule.spaced(`${Math.max(1, Math.round(1000 / options.rate))} millis`)))
    )
    const stop = Effect.andThen(Fiber.interrupt(loop), Effect.suspend(() => Fiber.awaitAll([...inFlight])))
    return { sent, stop: Effect.as(stop, sent) }
  })

/** Counts of a load run: non-2xx (and no answer at all), 5xx, degraded answers. */
export const tally = (sent: ReadonlyArray<Sent>) => ({
  requests: sent.length,
  failed: sent.filter((s) => s.status < 200 || s.status >= 300).length,
  noAnswer: sent.filter((s) => s.status === 0).length,
  server5xx: sent.filter((s) => s.status >= 500).length,
  status500: sent.filter((s) => s.status === 500).length,
  degraded: sent.filter((s) => s.status === 200 && s.body?.degraded === true).length,
  p99: percentile(sent.map((s) => s.latency), 99)
})

/** Searches answered by an upstream (not the cache): the service wrote their answer to the search cache. */
export const searchWrites = (sent: ReadonlyArray<Sent>): ReadonlyArray<string> =>
  sent.filter((s) =>
    s.kind === "search" && s.status === 200 && (s.body?.served_by === "exa_api" || s.body?.served_by === "tavily_api")
  ).map((s) => s.id)

/** Chats acknowledged with a 200: the reply (or the queued message) must reach Telegram. */
export const chatWrites = (sent: ReadonlyArray<Sent>): ReadonlyArray<string> =>
  sent.filter((s) => s.kind === "chat" && s.status === 200).map((s) => s.id)

// ---------------------------------------------------------------------------------------------------------------
// Outside checks

/** Every key in Redis (the suite's own server: a few thousand keys at most). */
export const redisKeys = (port: number): Effect.Effect<Set<string>, RedisServer.RedisServerError> =>
  Effect.map(RedisServer.command(port, ["KEYS", "*"]), (reply) => {
    const keys = new Set<string>()
    const lines = reply.split("\r\n")
    for (let i = 1; i < lines.length; i++) {
      if (lines[i - 1].startsWith("$")) keys.add(lines[i])
    }
    return keys
  })

/** The search queries whose cached answer is in Redis (`...search:<query>`, not the time keys). */
export const cachedQueries = (keys: Set<string>): Set<string> => {
  const queries = new Set<string>()
  for (const key of keys) {
    if (key.includes(":at:") || key.includes("journal")) continue
    const at = key.lastIndexOf("search:")
    if (at !== -1) queries.add(key.slice(at + "search:".length))
  }
  return queries
}

/** What the instance's Telegram received: user id to the number of messages. */
export const outbox = (instance: AgentProcess.Instance) =>
  Effect.map(instance.request("GET", "/telegram/outbox"), (response) => {
    const received = new Map<string, number>()
    for (const message of (response.body?.sent ?? []) as ReadonlyArray<{ user_id: string; text: string }>) {
      received.set(message.user_id, (received.get(message.user_id) ?? 0) + 1)
    }
    return {
      received,
      queued: Number(response.body?.telegram?.depth ?? 0) + Number(response.body?.claude_retry?.depth ?? 0)
    }
  })

/**
 * Accounts for every acknowledged write of a load run, from outside: the searches whose answers must be cached in the
 * Redis on `redisPort`, the chats that must have reached Telegram once (each waited for up to 20 s to land).
 */
export const account = (sent: ReadonlyArray<Sent>, redisPort: number, agent: AgentProcess.Instance) =>
  Effect.gen(function*() {
    const expected = searchWrites(sent)
    yield* timeUntil(
      Effect.map(redisKeys(redisPort), (keys) => {
        const cached = cachedQueries(keys)
        return expected.every((q) => cached.has(q))
      }),
      20_000,
      "200 millis"
    )
    const cached = cachedQueries(yield* redisKeys(redisPort))
    const chats = chatWrites(sent)
    yield* timeUntil(
      Effect.map(outbox(agent), (o) => chats.every((id) => o.received.has(id))),
      20_000,
      "200 millis"
    )
    const { received } = yield* outbox(agent)
    return {
      expected,
      missingSearch: expected.filter((q) => !cached.has(q)),
      chats,
      missingChat: chats.filter((id) => !received.has(id)),
      duplicated: chats.filter((id) => (received.get(id) ?? 0) > 1)
    }
  })

/** The state of a breaker as `/health` tells it. */
export const breakerState = (instance: AgentProcess.Instance, breaker: string) =>
  Effect.map(instance.request("GET", "/health"), (response) => String(response.body?.circuits?.[breaker]?.state))

/** Resident memory (bytes) and open file descriptors of a process, from /proc (Linux). */
export const processStats = (pid: number): { readonly rss: number; readonly fds: number } | undefined => {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8")
    const rss = Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? 0) * 1024
    return { rss, fds: readdirSync(`/proc/${pid}/fd`).length }
  } catch {
    return undefined
  }
}

/** The service's own pid (the line it prints), for the samples. */
export const servicePid = (instance: AgentProcess.Instance): number =>
  Number(/listening on \S+ \(pid (\d+)\)/.exec(instance.output())?.[1] ?? instance.child.pid)

/** Least-squares slope of `y` over `x`. */
export const slope = (points: ReadonlyArray<readonly [number, number]>): number => {
  const n = points.length
  if (n < 2) return Number.NaN
  const mx = points.reduce((s, [x]) => s + x, 0) / n
  const my = points.reduce((s, [, y]) => s + y, 0) / n
  const num = points.reduce((s, [x, y]) => s + (x - mx) * (y - my), 0)
  const den = points.reduce((s, [x]) => s + (x - mx) ** 2, 0)
  return den === 0 ? 0 : num / den
}
