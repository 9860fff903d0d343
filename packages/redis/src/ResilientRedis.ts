/**
 * A Redis key-value store that keeps answering while Redis is down: reads and writes go to a `FallbackStore`,
 * writes made during the outage are journaled there, and the journal is replayed to Redis, in order, once Redis is
 * back (also after a process restart in the middle of the outage).
 *
 * **Details**
 *
 * - Routing. While the journal is empty, every operation goes to Redis through a `CircuitBreaker` (trips after
 *   `failureThreshold` consecutive failures, stays open `openDuration`). A read that fails or is rejected reads the
 *   fallback instead; a write that fails or is rejected is journaled (below). While the journal holds anything,
 *   every operation goes to the fallback without trying Redis, so reads see the journaled writes and new writes
 *   queue behind them.
 * - Warm cache: a write that Redis accepted is also applied to the fallback (errors ignored), so reads during an
 *   outage see the last value written through this service. Reads do not populate it.
 * - Journal: a write on the fallback path first appends an entry (`<prefix>journal:<seq>`, `seq` zero-padded to 16
 *   digits, holding the operation, key, value, absolute expiry and the write time from `Clock`) and then applies
 *   the write to the fallback's copy of the key; it is acknowledged once the entry is stored. The next `seq` is kept
 *   under `<prefix>seq` and recomputed from the entries at start, so a restarted process continues it.
 * - Replay: a fiber (scoped to the layer) pings Redis (a `GET` through the breaker) every `pingInterval`, the first
 *   time as the layer starts. When a ping succeeds and the journal is not empty, the entries are applied to Redis
 *   oldest first, each removed from the journal after Redis accepted it; a failure stops the replay until the next
 *   ping. A crash between the two steps re-applies one entry (at-least-once; `SET` and `DEL` are idempotent). An
 *   entry whose expiry has passed replays as a `DEL`, the rest with the TTL they have left.
 * - Conflict rule: arrival order, last write wins. Writes in one process are serialized; writes made while the
 *   journal is not empty are appended to it, so Redis receives every write in the order this service accepted it,
 *   and a write only goes to Redis directly once the journal is empty.
 * - Health (`State`): `Fallback` when the journal is not empty (the fallback holds writes Redis has not seen, and
 *   serves everything until the replay ends); otherwise `Failed` when the breaker is open or half-open (Redis is
 *   considered down; reads come from the fallback, nothing is pending); otherwise `Degraded` when the last Redis
 *   call failed; otherwise `Healthy`. `changes` publishes every transition.
 * - Errors: an operation fails with `ResilientRedisError` only when the fallback fails after Redis did (or on the
 *   fallback path, when the fallback fails).
 * - Metrics (Effect `Metric`s, attribute `name`, read when exported): `resilient_redis_state` (0 Healthy, 1 Degraded,
 *   2 Failed, 3 Fallback), `resilient_redis_operations_total` (by `answered_by`: redis, fallback),
 *   `resilient_redis_journaled_total`, `resilient_redis_replayed_total` and `resilient_redis_pending`.
 *
 * **Gotchas**
 *
 * - Do not cap the `FallbackStore` (`maxEntries`, `maxBytes`): eviction could drop journal entries.
 * - While the journal is not empty, a key that was neither written through this service nor journaled reads as
 *   `None`, even if Redis holds it.
 * - One process per fallback directory (as `FallbackStore` requires): two processes would interleave one journal.
 *
 * **Example** (Surviving a Redis outage)
 *
 * ```ts
 * import { FallbackStore } from "@effect-resilience/core"
 * import { ResilientRedis, RedisStore } from "@effect-resilience/redis"
 * import { NodeServices } from "@effect/platform-node"
 * import { Effect, Layer } from "effect"
 *
 * const Live = ResilientRedis.layer({ pingInterval: "500 millis" }).pipe(
 *   Layer.provide(RedisStore.layer({ url: "redis://127.0.0.1:6379" })),
 *   Layer.provide(FallbackStore.layer({ directory: ".data/redis-fallback" })),
 *   Layer.provide(NodeServices.layer)
 * )
 *
 * const program = Effect.gen(function*() {
 *   const cache = yield* ResilientRedis.ResilientRedis
 *   yield* cache.set("session:42", "alice", { ttl: "1 hour" }) // acknowledged even if Redis is down
 *   return yield* cache.get("session:42")
 * }).pipe(Effect.provide(Live))
 * ```
 *
 * @since 0.1.0
 */
import * as CircuitBreaker from "@effect-resilience/core/CircuitBreaker"
import * as FallbackStore from "@effect-resilience/core/FallbackStore"
import { decode, DurationInput, type PolicyConfigError, PositiveInt } from "@effect-resilience/core/PolicyConfig"
import * as PullMetric from "@effect-resilience/core/PullMetric"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as PubSub from "effect/PubSub"
import * as Result from "effect/Result"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Semaphore from "effect/Semaphore"
import * as Stream from "effect/Stream"
import { RedisStore, type RedisStoreError } from "./RedisStore.ts"

// -----------------------------------------------------------------------------
// models
// -----------------------------------------------------------------------------

/**
 * The health of the service; see the module docs for exactly when each holds.
 *
 * @example
 * ```ts
 * import type { ResilientRedis } from "@effect-resilience/redis"
 *
 * const onRedis = (state: ResilientRedis.State) => state === "Healthy" || state === "Degraded"
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type State = "Healthy" | "Degraded" | "Failed" | "Fallback"

/**
 * One health transition, as published on `changes`.
 *
 * @example
 * ```ts
 * import type { ResilientRedis } from "@effect-resilience/redis"
 *
 * const describe = (c: ResilientRedis.Change) => `${c.from} -> ${c.to} at ${c.at}`
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Change {
  readonly from: State
  readonly to: State
  /** Epoch milliseconds from `Clock`. */
  readonly at: number
}

/**
 * Counters and state for dashboards (plain data).
 *
 * @example
 * ```ts
 * import type { ResilientRedis } from "@effect-resilience/redis"
 *
 * const backlog = (s: ResilientRedis.Snapshot) => s.pending
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Snapshot {
  readonly state: State
  /** The breaker's state, as last seen. */
  readonly breaker: CircuitBreaker.State
  /** Redis calls that failed in a row (pings included). */
  readonly consecutiveFailures: number
  /** Operations answered by Redis. */
  readonly redisOps: number
  /** Operations answered by the fallback. */
  readonly fallbackOps: number
  /** Writes journaled since start. */
  readonly journaled: number
  /** Journal entries replayed to Redis since start. */
  readonly replayed: number
  /** Journal entries waiting for Redis. */
  readonly pending: number
}

/**
 * Options for `make` and `layer`.
 *
 * @example
 * ```ts
 * import type { ResilientRedis } from "@effect-resilience/redis"
 *
 * const options: ResilientRedis.Options = { pingInterval: "1 second", failureThreshold: 3, openDuration: "1 second" }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** Names the breaker. Default: `"redis"`. */
  readonly name?: string | undefined
  /** How often the fiber pings Redis (and replays the journal once it answers). Default: 1 second. */
  readonly pingInterval?: Duration.Input | undefined
  /** Consecutive Redis failures that open the breaker (a positive integer). Default: 3. */
  readonly failureThreshold?: number | undefined
  /** How long the breaker stays open before a ping probes Redis again. Default: 1 second. */
  readonly openDuration?: Duration.Input | undefined
  /** Put in front of the service's keys in the fallback store. Default: `"resilient-redis:"`. */
  readonly prefix?: string | undefined
}

/**
 * Redis and the fallback both failed an operation.
 *
 * @example
 * ```ts
 * import { ResilientRedis } from "@effect-resilience/redis"
 *
 * const error = new ResilientRedis.ResilientRedisError({ operation: "get", key: "k", description: "disk full" })
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export class ResilientRedisError extends Schema.TaggedError<ResilientRedisError>()("ResilientRedisError", {
  operation: Schema.Literals(["get", "set", "remove"]),
  key: Schema.String,
  description: Schema.String,
  cause: Schema.optional(Schema.Defect())
}) {
  override get message(): string {
    return `Redis and its fallback could not ${this.operation} ${JSON.stringify(this.key)}: ${this.description}`
  }
}

/**
 * The service: `RedisStore`'s key-value shape, answered by Redis or the fallback.
 *
 * @example
 * ```ts
 * import type { ResilientRedis } from "@effect-resilience/redis"
 * import { Effect } from "effect"
 *
 * const remember = (cache: ResilientRedis.ResilientRedis) =>
 *   Effect.andThen(cache.set("k", "v"), Effect.all([cache.get("k"), cache.health]))
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface ResilientRedis {
  readonly get: (key: string) => Effect.Effect<Option.Option<string>, ResilientRedisError>
  readonly set: (
    key: string,
    value: string,
    options?: { readonly ttl?: Duration.Input | undefined }
  ) => Effect.Effect<void, ResilientRedisError>
  /** Deletes the key; `true` when it was there (on the fallback path: in the fallback). */
  readonly remove: (key: string) => Effect.Effect<boolean, ResilientRedisError>
  readonly health: Effect.Effect<State>
  /** Health transitions from subscription on. */
  readonly changes: Stream.Stream<Change>
  readonly snapshot: Effect.Effect<Snapshot>
}

/**
 * The `ResilientRedis` in context.
 *
 * @example
 * ```ts
 * import { ResilientRedis } from "@effect-resilience/redis"
 * import { Effect } from "effect"
 *
 * const program = Effect.gen(function*() {
 *   const cache = yield* ResilientRedis.ResilientRedis
 *   yield* cache.set("k", "v")
 *   return [yield* cache.get("k"), yield* cache.health] as const
 * })
 * ```
 *
 * @since 0.1.0
 * @category services
 */
export const ResilientRedis: Context.Service<ResilientRedis, ResilientRedis> = Context.Service<ResilientRedis>(
  "@effect-resilience/redis/ResilientRedis"
)

// -----------------------------------------------------------------------------
// options
// -----------------------------------------------------------------------------

const OptionsSchema = Schema.Struct({
  name: Schema.optional(Schema.String),
  pingInterval: Schema.optional(DurationInput({ positive: true })),
  failureThreshold: Schema.optional(PositiveInt),
  openDuration: Schema.optional(DurationInput({ positive: true })),
  prefix: Schema.optional(Schema.String)
})

// -----------------------------------------------------------------------------
// journal
// -----------------------------------------------------------------------------

const Entry = Schema.Struct({
  op: Schema.Literals(["set", "remove"]),
  key: Schema.String,
  value: Schema.NullOr(Schema.String),
  /** Epoch milliseconds, or null for no expiry. */
  expiresAt: Schema.NullOr(Schema.Number),
  at: Schema.Number
})
type Entry = typeof Entry.Type
const EntryJson = Schema.fromJsonString(Entry)
const encodeEntry = Schema.encodeSync(EntryJson)
const decodeEntry = Schema.decodeUnknownOption(EntryJson)

const seqWidth = 16
const pad = (seq: number) => String(seq).padStart(seqWidth, "0")

// Redis takes whole milliseconds (as RedisStore does): at least 1; an infinite TTL is none.
const ttlMillis = (ttl: Duration.Input | undefined): number | undefined => {
  if (ttl === undefined) return undefined
  const millis = Duration.toMillis(ttl)
  return Number.isFinite(millis) ? Math.max(1, Math.ceil(millis)) : undefined
}

// Built only when the fallback failed too, so off the hot path.
const bothFailed = (operation: "get" | "set" | "remove", key: string) => (error: FallbackStore.FallbackStoreError) =>
  new ResilientRedisError({ operation, key, description: error.message, cause: error })

// -----------------------------------------------------------------------------
// constructors
// -----------------------------------------------------------------------------

/**
 * Makes the service on the `RedisStore` and `FallbackStore` in context, with its ping fiber in the scope.
 *
 * @example
 * ```ts
 * import { ResilientRedis } from "@effect-resilience/redis"
 * import { Effect } from "effect"
 *
 * const program = Effect.gen(function*() {
 *   const cache = yield* ResilientRedis.make({ failureThreshold: 5 })
 *   return yield* cache.snapshot
 * }).pipe(Effect.scoped)
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: (
  options?: Options
) => Effect.Effect<
  ResilientRedis,
  PolicyConfigError,
  RedisStore | FallbackStore.FallbackStore | Scope.Scope
> = Effect.fnUntraced(function*(options: Options = {}) {
  yield* decode(OptionsSchema, options, {
    kind: "Resilient Redis",
    policy: typeof options.name === "string" ? options.name : "redis"
  })
  const store = yield* RedisStore
  const fallback = yield* FallbackStore.FallbackStore
  const prefix = options.prefix ?? "resilient-redis:"
  const valueKey = (key: string) => `${prefix}value:${key}`
  const journalPrefix = `${prefix}journal:`
  const seqKey = `${prefix}seq`
  const probeKey = `${prefix}ping`

  const breaker = yield* CircuitBreaker.make({
    name: options.name ?? "redis",
    trip: CircuitBreaker.consecutive(options.failureThreshold ?? 3),
    openDuration: options.openDuration ?? "1 second",
    // Each instance's connection is its own: its health is not the fleet's business.
    fleet: false
  })
  const writeLock = yield* Semaphore.make(1)
  const hub = yield* PubSub.sliding<Change>(1024)
  yield* Effect.addFinalizer(() => PubSub.shutdown(hub))

  const counts = { redisOps: 0, fallbackOps: 0, journaled: 0, replayed: 0 }
  let failures = 0
  let breakerState: CircuitBreaker.State = "Closed"

  // The journal left by an earlier process: keys sort by seq thanks to the padding.
  const pending: Array<string> = (yield* fallback.keys).filter((k) => k.startsWith(journalPrefix)).sort()
  const lastSeq = pending.length === 0 ? -1 : Number(pending[pending.length - 1]!.slice(journalPrefix.length))
  const storedSeq = Option.getOrElse(
    Option.map(Option.flatten(yield* Effect.option(fallback.get(seqKey))), Number),
    () => 0
  )
  let nextSeq = Math.max(lastSeq + 1, Number.isSafeInteger(storedSeq) ? storedSeq : 0)

  const compute = (): State =>
    pending.length > 0
      ? "Fallback"
      : breakerState === "Open" || breakerState === "HalfOpen" || breakerState === "ForcedOpen"
      ? "Failed"
      : failures > 0
      ? "Degraded"
      : "Healthy"
  let last: State = compute()

  const refresh: Effect.Effect<State> = Effect.flatMap(breaker.state, (state) => {
    breakerState = state
    const now = compute()
    if (now === last) return Effect.succeed(now)
    const from = last
    last = now
    return Effect.flatMap(Clock.currentTimeMillis, (at) => Effect.as(PubSub.publish(hub, { from, to: now, at }), now))
  })

  // One Redis call through the breaker; its outcome feeds the health.
  const viaRedis = <A>(self: Effect.Effect<A, RedisStoreError>) =>
    breaker.protect(self).pipe(
      Effect.result,
      Effect.tap((result) => {
        if (Result.isSuccess(result)) {
          failures = 0
        } else if (result.failure._tag === "RedisStoreError") {
          failures++
        }
        return refresh
      })
    )

  const readFallback = (key: string) =>
    fallback.get(valueKey(key)).pipe(
      Effect.tap(() => Effect.sync(() => counts.fallbackOps++)),
      Effect.mapError(bothFailed("get", key))
    )

  const applyToFallback = (entry: Entry, now: number): Effect.Effect<void, FallbackStore.FallbackStoreError> => {
    if (entry.op === "remove" || entry.value === null) return fallback.remove(valueKey(entry.key))
    if (entry.expiresAt === null) return fallback.set(valueKey(entry.key), entry.value)
    return entry.expiresAt <= now
      ? fallback.remove(valueKey(entry.key))
      : fallback.set(valueKey(entry.key), entry.value, { ttl: entry.expiresAt - now })
  }

  // Journal first, then the fallback's copy: a crash in between replays a write nobody read yet, never the reverse.
  const journal = (operation: "set" | "remove", key: string, value: string | null, ttl: number | undefined) =>
    Effect.gen(function*() {
      const at = yield* Clock.currentTimeMillis
      const entry: Entry = { op: operation, key, value, expiresAt: ttl === undefined ? null : at + ttl, at }
      const name = journalPrefix + pad(nextSeq)
      yield* Effect.mapError(fallback.set(name, encodeEntry(entry)), bothFailed(operation, key))
      nextSeq++
      pending.push(name)
      counts.journaled++
      counts.fallbackOps++
      // Best effort: the start recomputes it from the entries anyway.
      yield* Effect.ignore(fallback.set(seqKey, String(nextSeq)))
      yield* applyToFallback(entry, at).pipe(
        Effect.catch((error) =>
          Effect.logWarning(
            `ResilientRedis: journaled ${operation} of ${key} not applied to the fallback: ${error.message}`
          )
        )
      )
      yield* refresh
    })

  const get = (key: string): Effect.Effect<Option.Option<string>, ResilientRedisError> =>
    Effect.suspend(() => {
      if (pending.length > 0) return readFallback(key)
      return Effect.flatMap(viaRedis(store.get(key)), (result) => {
        if (Result.isFailure(result)) return readFallback(key)
        counts.redisOps++
        return Effect.succeed(result.success)
      })
    })

  const set = (
    key: string,
    value: string,
    opts?: { readonly ttl?: Duration.Input | undefined }
  ): Effect.Effect<void, ResilientRedisError> =>
    writeLock.withPermits(1)(Effect.suspend(() => {
      const ttl = ttlMillis(opts?.ttl)
      if (pending.length > 0) return journal("set", key, value, ttl)
      return Effect.flatMap(
        viaRedis(store.set(key, value, ttl === undefined ? undefined : { ttl })),
        (result) => {
          if (Result.isFailure(result)) return journal("set", key, value, ttl)
          counts.redisOps++
          return Effect.ignore(fallback.set(valueKey(key), value, ttl === undefined ? undefined : { ttl }))
        }
      )
    }))

  const remove = (key: string): Effect.Effect<boolean, ResilientRedisError> =>
    writeLock.withPermits(1)(Effect.suspend(() => {
      const onFallback = Effect.flatMap(
        Effect.orElseSucceed(fallback.has(valueKey(key)), () => false),
        (existed) => Effect.as(journal("remove", key, null, undefined), existed)
      )
      if (pending.length > 0) return onFallback
      return Effect.flatMap(viaRedis(store.remove(key)), (result) => {
        if (Result.isFailure(result)) return onFallback
        counts.redisOps++
        return Effect.as(Effect.ignore(fallback.remove(valueKey(key))), result.success)
      })
    }))

  // Applies the oldest entry to Redis and removes it: `true` while there may be more, fails when Redis does.
  const replayOne: Effect.Effect<boolean, unknown> = writeLock.withPermits(1)(Effect.suspend(() => {
    const name = pending[0]
    if (name === undefined) return Effect.succeed(false)
    return Effect.gen(function*() {
      const stored = yield* fallback.get(name)
      const entry = Option.flatMap(stored, decodeEntry)
      if (Option.isSome(entry)) {
        const e = entry.value
        const now = yield* Clock.currentTimeMillis
        const apply = e.op === "remove" || e.value === null || (e.expiresAt !== null && e.expiresAt <= now)
          ? Effect.asVoid(store.remove(e.key))
          : store.set(e.key, e.value, e.expiresAt === null ? undefined : { ttl: e.expiresAt - now })
        const result = yield* viaRedis(apply)
        if (Result.isFailure(result)) return yield* Effect.fail(result.failure)
      } else {
        yield* Effect.logWarning(`ResilientRedis: dropped unreadable journal entry ${name}`)
      }
      yield* fallback.remove(name)
      pending.shift()
      if (Option.isSome(entry)) counts.replayed++
      return pending.length > 0
    })
  }))

  const replay = Effect.whileLoop({
    while: () => pending.length > 0,
    body: () => replayOne,
    step: () => undefined
  }).pipe(Effect.ignore, Effect.andThen(refresh))

  const tick = Effect.flatMap(
    viaRedis(store.get(probeKey)),
    (result) => Result.isSuccess(result) && pending.length > 0 ? replay : Effect.void
  )

  yield* tick.pipe(
    Effect.ignoreCause,
    Effect.repeat(Schedule.spaced(options.pingInterval ?? "1 second")),
    Effect.forkScoped
  )

  const by = { name: breaker.name }
  const stateCodes: Record<State, number> = { Healthy: 0, Degraded: 1, Failed: 2, Fallback: 3 }
  yield* PullMetric.register([
    PullMetric.gauge(
      "resilient_redis_state",
      "Health: 0 Healthy, 1 Degraded, 2 Failed, 3 Fallback",
      by,
      () => stateCodes[compute()]
    ),
    PullMetric.counter(
      "resilient_redis_operations_total",
      operationsHelp,
      { ...by, answered_by: "redis" },
      () => counts.redisOps
    ),
    PullMetric.counter(
      "resilient_redis_operations_total",
      operationsHelp,
      { ...by, answered_by: "fallback" },
      () => counts.fallbackOps
    ),
    PullMetric.counter(
      "resilient_redis_journaled_total",
      "Writes journaled during an outage",
      by,
      () => counts.journaled
    ),
    PullMetric.counter(
      "resilient_redis_replayed_total",
      "Journal entries replayed to Redis",
      by,
      () => counts.replayed
    ),
    PullMetric.gauge("resilient_redis_pending", "Journal entries waiting for Redis", by, () => pending.length)
  ])

  return ResilientRedis.of({
    get,
    set,
    remove,
    health: refresh,
    changes: Stream.fromPubSub(hub),
    snapshot: Effect.map(refresh, (state) => ({
      state,
      breaker: breakerState,
      consecutiveFailures: failures,
      ...counts,
      pending: pending.length
    }))
  })
})

const operationsHelp = "Operations, by what answered them"

// -----------------------------------------------------------------------------
// layers
// -----------------------------------------------------------------------------

/**
 * Provides `ResilientRedis` on the `RedisStore` and `FallbackStore` in context; the ping fiber lives as long as the
 * layer. Invalid options fail with `PolicyConfigError`.
 *
 * @example
 * ```ts
 * import { FallbackStore } from "@effect-resilience/core"
 * import { ResilientRedis, RedisStore } from "@effect-resilience/redis"
 * import { Layer } from "effect"
 *
 * const Live = ResilientRedis.layer({ pingInterval: "500 millis" }).pipe(
 *   Layer.provide(RedisStore.layer({ url: "redis://127.0.0.1:6379" })),
 *   Layer.provide(FallbackStore.layerMemory())
 * )
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  options: Options = {}
): Layer.Layer<ResilientRedis, PolicyConfigError, RedisStore | FallbackStore.FallbackStore> =>
  Layer.effect(ResilientRedis, make(options))
