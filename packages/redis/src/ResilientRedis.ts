/**
 * A Redis key-value store that keeps answering while Redis is down: reads and writes go to a `FallbackStore`,
 * writes made during the outage are journaled there, and the journal is replayed to Redis, in order, once Redis is
 * back (also after a process restart in the middle of the outage).
 *
 * **Details**
 *
 * - Routing. While the journal is empty, every operation goes to Redis through a `CircuitBreaker` (trips after
 *   `failureThreshold` consecutive failures, stays open `openDuration`; an error Redis answers about the key itself,
 *   such as `WRONGTYPE` for a key another client made a list, is no failure of Redis and counts neither for the breaker
 *   nor for the health). A read that fails or is rejected reads the fallback instead; a write that fails or is rejected
 *   is journaled (below). While the journal holds anything, every operation goes to the fallback without trying Redis,
 *   so reads see the journaled writes and new writes queue behind them.
 * - Write times: every write carries its time from the writer's `Clock`. A write that goes to Redis stores the
 *   value and, beside it, its time (`<prefix>at:<key>`, with the value's TTL; after a remove, the remove's time for
 *   24 hours, so that an older replayed write cannot bring the key back), both in one Lua script.
 * - Warm cache: a write that Redis accepted is also applied to the fallback (errors ignored), with its time, so
 *   reads during an outage see the last value written through this service, and a Redis that lost its data can be
 *   re-seeded. A remove leaves a tombstone there instead of the copy (`<prefix>removed:<key>`, its time, kept as long
 *   as Redis keeps the remove's time), which reads never see. Reads do not populate it. A write interrupted while
 *   its Redis command is in flight cannot know whether Redis took it: the fallback's copy of that key is removed
 *   rather than left behind what Redis may hold. Once the command has answered, the rest of the write (the copy, or
 *   a journal entry and the figures) is not interrupted. A command that ends interrupted on its own (not the caller)
 *   is a failed call, read or written as when Redis is down.
 * - Warm cache bound: at most `maxCopies` copies (default 100,000; a copy whose value's TTL has passed is gone and does
 *   not count); past it, the least recently written copy's entry is removed from the fallback (the service keeps the
 *   copies' keys in memory, in write order, loaded from the fallback as it starts; those an earlier process left count
 *   as older than any written since, and are trimmed at start when over the bound). An evicted key reads as `None`
 *   during an outage, as one never written through the service, is not written back by a re-seed, and `remove` on the
 *   fallback path says it was not there. Eviction never removes a journal entry or the service's bookkeeping (`seq`,
 *   `replayed`, `marker`), and waits while the journal holds anything: the copy of a journaled write is what reads see
 *   of it during the outage and what a damaged entry is rebuilt from, so none goes before its write reached Redis (over
 *   an outage the copies may exceed the bound by the keys journaled, as the journal grows too); the replay's end trims
 *   them. Tombstones do not count and are never evicted: each lives 24 hours, and a remove it guards must not come
 *   back.
 * - Journal: a write on the fallback path first appends an entry (`<prefix>journal:<seq>:<key>`, `seq` zero-padded
 *   to 16 digits, holding the operation, key, value, absolute expiry and the write time) and then applies the write
 *   to the fallback's copy of the key; it is acknowledged once the entry is stored. The next `seq` is kept under
 *   `<prefix>seq` and recomputed from the entries at start, so a restarted process continues it.
 * - Replay: a fiber (scoped to the layer) pings Redis every `pingInterval`, the first time as the layer starts.
 *   When a ping succeeds and the journal is not empty, the entries are applied to Redis oldest first, `batchSize`
 *   at a time: one Lua script per batch, then the batch's entries are removed. The replay does not take the
 *   writers' lock: writes that arrive meanwhile are appended to the journal behind it, and each costs the fallback
 *   more work (an entry and a copy written) than replaying it does (one removal), so the replay catches up under
 *   steady load and finishes; `drainRate` (snapshot and metric) says how fast it went. A failure (Redis gone, a
 *   timeout, or an error that says Redis takes no writes now: `OOM`, `READONLY`, `NOREPLICAS`, `MISCONF`...) stops
 *   the replay until the next ping; the entries before it that Redis took are removed. A crash mid-batch re-applies
 *   the batch (at-least-once; applying an entry twice leaves the same value and time). An entry whose expiry has
 *   passed replays as a remove, the rest with the TTL they have left.
 * - Refused journal entries: an entry Redis answers with an error about the entry itself (say `WRONGTYPE`, when
 *   something else made its value's time key `<prefix>at:<key>` a list; or a time key that is not a number) would
 *   fail every replay and hold the journal, and every later write, in the fallback for good. The batch's script
 *   stops at it and says which entry and why; the entry is set aside (removed from the journal, counted as
 *   `refused`, published as a `JournalEntryRefused` event with its seq, key and Redis' error, and logged as a
 *   warning naming the key), and the replay goes on with the next one, in order. The write is lost to Redis; the
 *   fallback's copy of the key (or its tombstone) goes too when it records that very write, so that the next outage
 *   does not serve (and a re-seed does not write back) a value Redis never took: the key then reads as `None` in an
 *   outage, as one never written through the service. A re-seed leaves out the keys Redis refuses, and its warning
 *   names them.
 * - Conflict rule: last write wins, by write time. Writes in one process are serialized and reach Redis in the
 *   order this service accepted them. Across instances, the replay applies an entry only when Redis holds no newer
 *   time for the key (compare and set in the batch's script); an entry older than what Redis holds is skipped and
 *   counted as `stale`. The writers' `Clock`s decide, so instances must agree (NTP): two writes of one key from two
 *   instances closer together than their clocks' skew may be ordered either way. A write that goes to Redis
 *   directly wins over what Redis holds (arrival order among live writes). Writes by other clients carry no time:
 *   a replay overwrites them.
 * - A Redis that lost its data: the ping also reads a marker key (`<prefix>marker`), set once, which Redis loses
 *   with its data (a restart without persistence, a flush). When it changed since this instance last saw it (kept in
 *   the fallback, so across restarts too), every value of this instance's fallback copies is written back where
 *   Redis holds nothing newer, and a `RedisDataLost` event says how many. So is every remove it holds a tombstone
 *   of, as a remove with its time, so that another instance's older copy of the key does not bring it back, whichever
 *   instance re-seeds first. Values only other instances wrote, removes older than 24 hours, and writes a persistent
 *   Redis had not yet saved when it died (up to a second with `appendfsync everysec`), are lost.
 * - Damaged journal entries: an entry that cannot be read (the fallback removes a damaged file as it starts, or its
 *   content does not decode) is counted (`dropped`) and published as a `JournalEntryDropped` event with its seq and,
 *   when known, its key. When the fallback's copy of the key (or its tombstone, for a remove) is that very write, it
 *   is replayed instead (`recovered`); otherwise the write is lost, unless a later write of the key superseded it.
 * - Health (`State`): `Fallback` when the journal is not empty (the fallback holds writes Redis has not seen, and
 *   serves everything until the replay ends); otherwise `Connecting` until the first Redis round trip succeeded;
 *   otherwise `Failed` when the breaker is open or half-open (Redis is considered down; reads come from the
 *   fallback, nothing is pending); otherwise `Degraded` when the last Redis call failed; otherwise `Healthy`.
 *   `changes` publishes every transition.
 * - Errors: an operation fails with `ResilientRedisError` only when the fallback fails after Redis did (or on the
 *   fallback path, when the fallback fails).
 * - Metrics (Effect `Metric`s, attribute `name`, read when exported): `resilient_redis_state` (0 Healthy, 1 Degraded,
 *   2 Failed, 3 Fallback, 4 Connecting), `resilient_redis_operations_total` (by `answered_by`: redis, fallback),
 *   `resilient_redis_journaled_total`, `resilient_redis_replayed_total`, `resilient_redis_stale_total`,
 *   `resilient_redis_dropped_total`, `resilient_redis_refused_total`, `resilient_redis_reseeded_total`,
 *   `resilient_redis_drain_rate` (entries per second) and `resilient_redis_pending`.
 *
 * **Gotchas**
 *
 * - Do not cap the `FallbackStore` (`maxEntries`, `maxBytes`): eviction could drop journal entries, and tombstones
 *   (which expire first, so go first), after which a re-seed can bring a removed key back. Bound the copies with
 *   `maxCopies` instead; what the fallback holds is then at most `maxCopies` copies, the tombstones of the last 24
 *   hours' removes, and the journal.
 * - `maxCopies` too low for the keys in use makes an outage (and a re-seed) miss keys that were written through the
 *   service, least recently written first: size it to the working set worth serving while Redis is down.
 * - While the journal is not empty, a key that was neither written through this service nor journaled reads as
 *   `None`, even if Redis holds it.
 * - One process per fallback directory (as `FallbackStore` requires): two processes would interleave one journal.
 * - Redis holds a time key beside each value written through the service; read and write the values through the
 *   service (or `RedisStore`), and leave `<prefix>at:*` and `<prefix>marker` alone: a time key of another type makes
 *   Redis refuse the replay of the key's journaled writes (`JournalEntryRefused`).
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
 *   // lazy: starts while Redis is down.
 *   Layer.provide(RedisStore.layer({ url: "redis://127.0.0.1:6379", lazy: true })),
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
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as PubSub from "effect/PubSub"
import * as Random from "effect/Random"
import * as Result from "effect/Result"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Semaphore from "effect/Semaphore"
import * as Stream from "effect/Stream"
import { failIfInterrupted } from "./internal/interrupted.ts"
import { brokenTextIssue, hasLoneSurrogate, ttlIssue, ttlMillis } from "./internal/options.ts"
import * as internal from "./internal/resilientRedis.ts"
import { RedisStore, RedisStoreError } from "./RedisStore.ts"

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
export type State = "Connecting" | "Healthy" | "Degraded" | "Failed" | "Fallback"

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
  /** Journal entries not replayed because Redis held a newer write of the key (another instance's). */
  readonly stale: number
  /** Journal entries that could not be read (each also published as a `JournalEntryDropped` event). */
  readonly dropped: number
  /**
   * Journal entries Redis refused with an error about the entry (a time key of another type, say), set aside so that
   * the rest of the journal replays (each also published as a `JournalEntryRefused` event).
   */
  readonly refused: number
  /** Keys written back from the fallback to a Redis that lost its data. */
  readonly reseeded: number
  /**
   * Entries replayed per second, from the first replay after an outage until the journal was empty (the current
   * drain, or the last one; 0 before the first).
   */
  readonly drainRate: number
  /** Journal entries waiting for Redis. */
  readonly pending: number
}

/**
 * Something the service could not keep as it was, as published on `events`:
 *
 * - `JournalEntryDropped`: a journal entry could not be read (a damaged file, which the fallback removes as it
 *   starts, or content that does not decode). `key` is the key it wrote when its name, the fallback's copy or its
 *   tombstone tells (`undefined` otherwise: an entry whose copy or tombstone a later write of the key replaced);
 *   `recovered` is `true` when the copy (or, for a remove, the tombstone) was that very write and was replayed
 *   instead.
 * - `JournalEntryRefused`: Redis answered the replay of a journal entry with an error about the entry (`message`,
 *   such as `WRONGTYPE ...` when the key's time key holds another type), which it would give every time. The entry
 *   was set aside so that the rest of the journal replays: the write never reached Redis.
 * - `RedisDataLost`: Redis came back without its data (its marker key was gone). The values this instance holds in
 *   its fallback were written back (`reseeded`, where Redis held nothing newer), and its removes of the last 24 hours
 *   (not counted); values that only other instances (or other clients) wrote are lost.
 *
 * @example
 * ```ts
 * import type { ResilientRedis } from "@effect-resilience/redis"
 *
 * const describe = (event: ResilientRedis.Event) =>
 *   event._tag === "RedisDataLost" ? `Redis lost its data, ${event.reseeded} keys restored` : `lost ${event.key}`
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export type Event =
  | {
    readonly _tag: "JournalEntryDropped"
    readonly seq: number
    readonly key: string | undefined
    /** The entry's name in the fallback, when it was still listed. */
    readonly entry: string | undefined
    readonly recovered: boolean
  }
  | {
    readonly _tag: "JournalEntryRefused"
    readonly seq: number
    readonly key: string
    /** Redis' error, such as `WRONGTYPE Operation against a key holding the wrong kind of value`. */
    readonly message: string
  }
  | {
    readonly _tag: "RedisDataLost"
    readonly reseeded: number
    /** Epoch milliseconds from `Clock`. */
    readonly at: number
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
  /**
   * Put in front of the service's keys in the fallback store, and of its own keys in Redis (the write times and
   * the data marker). Default: `"resilient-redis:"`.
   */
  readonly prefix?: string | undefined
  /** Journal entries replayed per Redis round trip (a positive integer). Default: 256. */
  readonly batchSize?: number | undefined
  /**
   * At most this many copies of values (the warm cache) in the fallback (a positive integer): past it, the least
   * recently written copy goes (see the module docs). Tombstones and the journal do not count. Default: 100,000.
   */
  readonly maxCopies?: number | undefined
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

// Text Redis cannot hold as given is refused before either store sees it: the fallback could hold it, but a replay
// could never write it to Redis.
const brokenText = (operation: "get" | "set" | "remove", key: string, value?: string) => {
  const what = hasLoneSurrogate(key) ? "a key" : value !== undefined && hasLoneSurrogate(value) ? "a value" : undefined
  return what === undefined
    ? undefined
    : Effect.fail(new ResilientRedisError({ operation, key, description: brokenTextIssue(what) }))
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
  /**
   * What the service could not keep (a dropped journal entry, one Redis refused, a Redis that lost its data), from
   * subscription on.
   */
  readonly events: Stream.Stream<Event>
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
  prefix: Schema.optional(Schema.String),
  batchSize: Schema.optional(PositiveInt),
  maxCopies: Schema.optional(PositiveInt)
})

// -----------------------------------------------------------------------------
// journal
// -----------------------------------------------------------------------------

// A remove leaves its time in Redis this long, so that an older write replayed later cannot bring the key back; its
// tombstone stays in the fallback as long, for a re-seed.
const tombstoneMillis = 24 * 60 * 60 * 1000
// Parallel file reads and removes in the fallback during a replay or a re-seed.
const fileConcurrency = 16

// A write for the replay: a removed value, or one expired by now, replays as a remove stamped with its time.
const toWrite = (
  key: string,
  value: string | null,
  at: number,
  expiresAt: number | null,
  now: number
): internal.Write =>
  value === null || (expiresAt !== null && expiresAt <= now)
    ? { op: "d", key, value: "", at, ttl: 0 }
    : { op: "s", key, value, at, ttl: expiresAt === null ? 0 : Math.max(1, expiresAt - now) }

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
  const batchSize = options.batchSize ?? 256
  const maxCopies = options.maxCopies ?? 100_000
  const copyPrefix = `${prefix}value:`
  const valueKey = (key: string) => copyPrefix + key
  const tombstonePrefix = `${prefix}removed:`
  const tombstoneKey = (key: string) => tombstonePrefix + key
  const journalPrefix = `${prefix}journal:`
  const seqKey = `${prefix}seq`
  // The seq of the last entry replayed: entries between it and `seq` that are gone were dropped.
  const replayedKey = `${prefix}replayed`
  // The data marker this instance last saw in Redis, kept across restarts.
  const markerSeenKey = `${prefix}marker`
  const redisMarker = store.key(`${prefix}marker`)
  const redisTime = (key: string) => store.key(`${prefix}at:${key}`)

  const breaker = yield* CircuitBreaker.make({
    name: options.name ?? "redis",
    trip: CircuitBreaker.consecutive(options.failureThreshold ?? 3),
    openDuration: options.openDuration ?? "1 second",
    // Each instance's connection is its own: its health is not the fleet's business.
    fleet: false,
    // Redis answering that one key is of another type is up: the other keys must stay on it.
    isFailure: (error) => !(error instanceof RedisStoreError && internal.isRefusal(error))
  })
  const writeLock = yield* Semaphore.make(1)
  const hub = yield* PubSub.sliding<Change>(1024)
  const eventHub = yield* PubSub.sliding<Event>(1024)
  yield* Effect.addFinalizer(() => Effect.andThen(PubSub.shutdown(hub), PubSub.shutdown(eventHub)))

  const counts = {
    redisOps: 0,
    fallbackOps: 0,
    journaled: 0,
    replayed: 0,
    stale: 0,
    dropped: 0,
    refused: 0,
    reseeded: 0
  }
  let drainRate = 0
  let failures = 0
  let connected = false
  let breakerState: CircuitBreaker.State = "Closed"

  const readNumber = (key: string) =>
    Effect.map(Effect.option(fallback.get(key)), (found) => {
      const n = Number(Option.getOrUndefined(Option.flatten(found)) ?? Number.NaN)
      return Number.isSafeInteger(n) ? n : undefined
    })

  const startNames = yield* fallback.keys
  // The journal left by an earlier process: names sort by seq thanks to the padding.
  const pending: Array<string> = startNames.filter((k) => k.startsWith(journalPrefix)).sort()
  // The keys of the fallback's copies, least recently written first, with their expiry (null for none): a `Map` keeps
  // insertion order, and every write of a copy re-inserts its key. The copies an earlier process left count as older
  // than any written since, in the order the fallback lists them, with no expiry known (it keeps no write order, and
  // reading every copy would slow the start).
  const copyKeys = new Map<string, number | null>()
  for (const name of startNames) if (name.startsWith(copyPrefix)) copyKeys.set(name.slice(copyPrefix.length), null)
  // The copies' expiries, soonest first: a copy the fallback expired is gone, so it must not count towards
  // `maxCopies` (it made a live copy go). Entries of keys written again or removed since are skipped as they come up.
  const expiries: Array<internal.Expiry> = []
  const seqOf = (name: string) => internal.parseName(journalPrefix, name).seq
  const lastSeq = pending.length === 0 ? -1 : seqOf(pending[pending.length - 1]!)
  const storedSeq = (yield* readNumber(seqKey)) ?? 0
  let nextSeq = Math.max(lastSeq + 1, storedSeq)
  // Without the record (a journal of 0.1), nothing before the oldest pending entry counts as lost.
  let replayedUpTo = (yield* readNumber(replayedKey)) ??
    (pending.length > 0 ? seqOf(pending[0]!) - 1 : nextSeq - 1)
  let markerSeen = Option.getOrUndefined(Option.flatten(yield* Effect.option(fallback.get(markerSeenKey))))

  // Entries gone from the journal although never replayed (a damaged file the fallback removed as it started): the
  // seqs after the last replayed one, up to the next, that are not pending.
  const present = new Set(pending.map(seqOf))
  const missing: Array<number> = []
  for (let seq = replayedUpTo + 1; seq < nextSeq; seq++) if (!present.has(seq)) missing.push(seq)

  const copyWritten = (key: string, expiresAt: number | null) => {
    copyKeys.delete(key)
    copyKeys.set(key, expiresAt)
    if (expiresAt === null) return
    internal.heapPush(expiries, [expiresAt, key])
    // Rebuilt once the skipped entries are most of it, so that rewriting keys with long TTLs does not grow it.
    if (expiries.length > 2 * copyKeys.size + 1024) {
      expiries.length = 0
      for (const [k, at] of copyKeys) if (at !== null) internal.heapPush(expiries, [at, k])
    }
  }
  const forgetExpired = (now: number) => {
    while (expiries.length > 0 && expiries[0]![0] <= now) {
      const [at, key] = internal.heapPop(expiries)!
      if (copyKeys.get(key) === at) copyKeys.delete(key)
    }
  }
  const removeCopy = (key: string) =>
    Effect.suspend(() => {
      copyKeys.delete(key)
      return fallback.remove(valueKey(key))
    })
  // The copies past `maxCopies`, least recently written first, go; errors are ignored (a copy left behind is only
  // disk, and is counted again at the next start). Not while a journal entry is pending or lost entries are still to
  // be looked up: the copy of a journaled write is what reads see of it during the outage, and what an unreadable
  // entry is rebuilt from (`dropped`), so the copies wait for the replay (bounded by the journal meanwhile). Once
  // Redis took a write, its copy is only a cache. Callers hold the writers' lock (or run before the ping fiber).
  const evictCopies = Effect.map(Clock.currentTimeMillis, forgetExpired).pipe(Effect.andThen(() => {
    if (copyKeys.size <= maxCopies || pending.length > 0 || missing.length > 0) return Effect.void
    const victims: Array<string> = []
    for (const key of copyKeys.keys()) {
      if (copyKeys.size - victims.length <= maxCopies) break
      victims.push(key)
    }
    for (const key of victims) copyKeys.delete(key)
    return Effect.forEach(victims, (key) => Effect.ignore(fallback.remove(valueKey(key))), {
      concurrency: fileConcurrency,
      discard: true
    })
  }))
  // A fallback capped lower than the copies an earlier process left (or a lowered `maxCopies`) is trimmed now.
  yield* evictCopies

  // Writes rebuilt for lost or unreadable entries: reported once, when found, and kept until Redis took them, so that
  // a replay that fails and is tried again neither loses them nor reports them twice.
  let lostWrites: ReadonlyArray<{ readonly seq: number; readonly write: internal.Write }> = []
  const unreadable = new Map<string, internal.Write | undefined>()

  // From the first replayed batch until the handover: the journal may be empty between two batches while a writer is
  // still journaling an entry, and until the handover the fallback serves everything.
  let replaying = false

  const compute = (): State =>
    pending.length > 0 || lostWrites.length > 0 || replaying
      ? "Fallback"
      : !connected
      ? "Connecting"
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

  // One Redis call through the breaker; its outcome feeds the health. A call that ends interrupted on its own (a store
  // of the user's) has failed, for the breaker too.
  const viaRedis = <A>(self: Effect.Effect<A, RedisStoreError>) =>
    breaker.protect(failIfInterrupted(
      self,
      () => new RedisStoreError({ operation: "command", message: "the Redis command ended interrupted" })
    )).pipe(
      Effect.result,
      Effect.tap((result) => {
        if (Result.isSuccess(result)) {
          failures = 0
          connected = true
        } else if (result.failure._tag === "RedisStoreError") {
          if (internal.isRefusal(result.failure)) connected = true
          else failures++
        }
        return refresh
      })
    )

  const readFallback = (key: string) =>
    fallback.get(valueKey(key)).pipe(
      Effect.map(Option.map((stored) => internal.decodeCopy(stored).copy)),
      Effect.tap(() => Effect.sync(() => counts.fallbackOps++)),
      Effect.mapError(bothFailed("get", key))
    )

  // The fallback's copy of a write, stamped with its time (and seq, when journaled) for a replay or a re-seed. A
  // remove leaves a tombstone for as long as Redis keeps its time: without it, a Redis that lost its data would be
  // re-seeded with another instance's older copy, and the removed key would be back.
  const copyToFallback = (
    key: string,
    value: string | null,
    at: number,
    expiresAt: number | null,
    seq: number | null
  ): Effect.Effect<void, FallbackStore.FallbackStoreError> =>
    Effect.flatMap(Clock.currentTimeMillis, (now) => {
      if (value === null) {
        const left = at + tombstoneMillis - now
        // The copy goes first: a tombstone that cannot be written must not leave the removed value served.
        return Effect.andThen(
          removeCopy(key),
          left > 0
            ? fallback.set(tombstoneKey(key), internal.encodeTombstone({ at, seq }), { ttl: left })
            : Effect.void
        )
      }
      if (expiresAt !== null && expiresAt <= now) return removeCopy(key)
      const copy = internal.encodeCopy({ copy: value, at, expiresAt, seq })
      return fallback.set(valueKey(key), copy, expiresAt === null ? undefined : { ttl: expiresAt - now }).pipe(
        Effect.andThen(Effect.sync(() => copyWritten(key, expiresAt))),
        Effect.andThen(evictCopies)
      )
    })

  // Journal first, then the fallback's copy: a crash in between replays a write nobody read yet, never the reverse.
  const journal = (operation: "set" | "remove", key: string, value: string | null, ttl: number | undefined) =>
    Effect.gen(function*() {
      const at = yield* Clock.currentTimeMillis
      const seq = nextSeq
      const entry: internal.Entry = { op: operation, key, value, expiresAt: ttl === undefined ? null : at + ttl, at }
      const name = internal.entryName(journalPrefix, seq, key)
      if (pending.length === 0) {
        // An outage starts: record where the journal stands, so that an entry lost before the replay is noticed.
        replayedUpTo = seq - 1
        yield* Effect.mapError(fallback.set(replayedKey, String(replayedUpTo)), bothFailed(operation, key))
      }
      yield* Effect.mapError(fallback.set(name, internal.encodeEntry(entry)), bothFailed(operation, key))
      nextSeq++
      pending.push(name)
      counts.journaled++
      counts.fallbackOps++
      // Best effort: the start recomputes it from the entries anyway.
      yield* Effect.ignore(fallback.set(seqKey, String(nextSeq)))
      yield* copyToFallback(key, operation === "remove" ? null : value, at, entry.expiresAt, seq).pipe(
        Effect.catch((error) =>
          Effect.logWarning(
            `ResilientRedis: journaled ${operation} of ${key} not applied to the fallback: ${error.message}`
          )
        )
      )
      yield* refresh
    })

  // A write straight to Redis, stamped with its time (see the internal module).
  const writeRedis = (op: "s" | "d", key: string, value: string, at: number, ttl: number | undefined) =>
    viaRedis(store.eval(internal.write)([store.key(key), redisTime(key)], [op, value, at, ttl ?? 0, tombstoneMillis]))

  const get = (key: string): Effect.Effect<Option.Option<string>, ResilientRedisError> =>
    Effect.suspend(() => {
      const refused = brokenText("get", key)
      if (refused !== undefined) return refused
      if (pending.length > 0) return readFallback(key)
      return Effect.flatMap(viaRedis(store.get(key)), (result) => {
        if (Result.isFailure(result)) return readFallback(key)
        counts.redisOps++
        return Effect.succeed(result.success)
      })
    })

  // A write holding the lock runs with interruption masked, so that Redis and the fallback's copy, or the journal and
  // memory, never end apart. Only the Redis command may be interrupted (it can take up to the store's timeout): it may
  // or may not have landed then, so the fallback's copy of the key goes rather than stay behind what Redis may hold.
  const redisWrite = (
    restore: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>,
    op: "s" | "d",
    key: string,
    value: string,
    at: number,
    ttl: number | undefined
  ) =>
    Effect.onInterrupt(
      restore(writeRedis(op, key, value, at, ttl)),
      () => Effect.ignore(removeCopy(key))
    )

  const set = (
    key: string,
    value: string,
    opts?: { readonly ttl?: Duration.Input | undefined }
  ): Effect.Effect<void, ResilientRedisError> =>
    writeLock.withPermits(1)(Effect.uninterruptibleMask((restore) =>
      Effect.suspend(() => {
        const millis = ttlMillis(opts?.ttl)
        if (millis === undefined) {
          return Effect.fail(new ResilientRedisError({ operation: "set", key, description: ttlIssue(opts?.ttl) }))
        }
        const refused = brokenText("set", key, value)
        if (refused !== undefined) return refused
        const ttl = millis === 0 ? undefined : millis
        if (pending.length > 0) return journal("set", key, value, ttl)
        return Effect.flatMap(Clock.currentTimeMillis, (at) =>
          Effect.flatMap(redisWrite(restore, "s", key, value, at, ttl), (result) => {
            if (Result.isFailure(result)) {
              return journal("set", key, value, ttl)
            }
            counts.redisOps++
            // A copy that could not be updated goes: left, it would be served as current in the next outage.
            return copyToFallback(key, value, at, ttl === undefined ? null : at + ttl, null).pipe(
              Effect.catch(() =>
                Effect.ignore(removeCopy(key))
              )
            )
          }))
      })
    ))

  const remove = (key: string): Effect.Effect<boolean, ResilientRedisError> =>
    writeLock.withPermits(1)(Effect.uninterruptibleMask((restore) =>
      Effect.suspend(() => {
        const refused = brokenText("remove", key)
        if (refused !== undefined) return refused
        const onFallback = Effect.flatMap(
          Effect.orElseSucceed(fallback.has(valueKey(key)), () => false),
          (existed) => Effect.as(journal("remove", key, null, undefined), existed)
        )
        if (pending.length > 0) return onFallback
        return Effect.flatMap(
          Clock.currentTimeMillis,
          (at) =>
            Effect.flatMap(redisWrite(restore, "d", key, "", at, undefined), (result) => {
              if (Result.isFailure(result)) return onFallback
              counts.redisOps++
              return Effect.as(Effect.ignore(copyToFallback(key, null, at, null, null)), result.success > 0)
            })
        )
      })
    ))

  // Writes to Redis in order, in one compare-and-set per round trip. A write Redis refuses (its error is about that
  // write: a time key of another type, say, which fails it every time) is set aside and the next round trip goes on
  // after it; it is not a Redis failure, so it neither trips the breaker nor stops the others. When the call fails
  // (Redis down, a timeout) or Redis takes no writes now (out of memory, read-only), `failure` says so and `done` how
  // many writes are behind: they were applied, stale or refused, and the rest wait.
  const applyWrites = (writes: ReadonlyArray<internal.Write>) =>
    Effect.gen(function*() {
      let applied = 0
      let stale = 0
      const refused: Array<{ readonly index: number; readonly message: string }> = []
      let from = 0
      while (from < writes.length) {
        const keys: Array<string> = []
        const args: Array<string | number> = [tombstoneMillis]
        for (let i = from; i < writes.length; i++) {
          const w = writes[i]!
          keys.push(store.key(w.key), redisTime(w.key))
          args.push(w.op, w.value, w.at, w.ttl)
        }
        const result = yield* viaRedis(store.eval(internal.apply)(keys, args))
        if (Result.isFailure(result)) return { applied, stale, refused, done: from, failure: result.failure }
        applied += Number(result.success[0])
        stale += Number(result.success[1])
        if (result.success.length === 2) break
        const index = from + Number(result.success[2]) - 1
        const message = String(result.success[3])
        if (internal.isUnavailable(message)) {
          const failure = new RedisStoreError({ operation: "eval", message: `Redis took no writes: ${message}` })
          return { applied, stale, refused, done: index, failure }
        }
        refused.push({ index, message })
        from = index + 1
      }
      return { applied, stale, refused, done: writes.length, failure: undefined }
    })

  // Journal entries Redis refused leave the journal (the caller removes them): each is counted, published and logged
  // with Redis' error. The fallback's copy of the key (or its tombstone) goes too when it records that very write
  // (same seq): kept, the next outage would serve, and a re-seed write back, a value Redis never took; without it
  // the key reads as unknown (`None`) in an outage. Under the writers' lock (unless the caller holds it), so that a
  // later write of the key being journaled meanwhile keeps its copy.
  const setAside = (
    refused: ReadonlyArray<{ readonly seq: number; readonly key: string; readonly message: string }>,
    locked: boolean
  ) =>
    Effect.gen(function*() {
      for (const { key, message, seq } of refused) {
        const copy = Option.map(yield* readStored(valueKey(key)), internal.decodeCopy)
        if (Option.isSome(copy) && copy.value.seq === seq) yield* Effect.ignore(removeCopy(key))
        const tombstone = Option.flatMap(yield* readStored(tombstoneKey(key)), internal.decodeTombstone)
        if (Option.isSome(tombstone) && tombstone.value.seq === seq) {
          yield* Effect.ignore(fallback.remove(tombstoneKey(key)))
        }
        counts.refused++
        yield* PubSub.publish(eventHub, { _tag: "JournalEntryRefused", seq, key, message })
        yield* Effect.logWarning(
          `ResilientRedis: Redis refused journal entry ${seq} (key ${JSON.stringify(key)}); set aside: ${message}`
        )
      }
    }).pipe((effect) => locked || refused.length === 0 ? effect : writeLock.withPermits(1)(effect))

  const readStored = (name: string) => Effect.orElseSucceed(fallback.get(name), () => Option.none<string>())

  // A journal entry that cannot be read: rebuilt from the fallback's copy of its key, or its tombstone, when that is
  // the very write (same seq), otherwise dropped; either way counted and published.
  const dropped = (seq: number, key: string | undefined, entry: string | undefined, now: number) =>
    Effect.gen(function*() {
      let write: internal.Write | undefined
      let from = "copy"
      if (key !== undefined) {
        const copy = Option.map(yield* readStored(valueKey(key)), internal.decodeCopy)
        const tombstone = Option.flatMap(yield* readStored(tombstoneKey(key)), internal.decodeTombstone)
        if (Option.isSome(copy) && copy.value.seq === seq) {
          write = toWrite(key, copy.value.copy, copy.value.at, copy.value.expiresAt, now)
        } else if (Option.isSome(tombstone) && tombstone.value.seq === seq) {
          write = toWrite(key, null, tombstone.value.at, null, now)
          from = "tombstone"
        }
      }
      counts.dropped++
      yield* PubSub.publish(eventHub, { _tag: "JournalEntryDropped", seq, key, entry, recovered: write !== undefined })
      yield* Effect.logWarning(
        `ResilientRedis: journal entry ${seq}${key === undefined ? "" : ` (key ${JSON.stringify(key)})`} ${
          write === undefined ? "is unreadable and was dropped" : `is unreadable; replayed from the fallback's ${from}`
        }`
      )
      return write
    })

  // The keys of the entries lost before this start, found by their seq in the fallback's copies and tombstones (read
  // only when some are missing).
  const reportMissing = Effect.gen(function*() {
    if (missing.length === 0) return []
    const now = yield* Clock.currentTimeMillis
    const keyBySeq = new Map<number, string>()
    const names = yield* fallback.keys
    // Copies and tombstones hold the seq of the journaled write they record (null for a write Redis took).
    const scan = (namePrefix: string, seqIn: (stored: string) => number | null) =>
      Effect.forEach(
        names.filter((k) => k.startsWith(namePrefix)),
        (name) =>
          Effect.map(readStored(name), (stored) => {
            const seq = Option.isSome(stored) ? seqIn(stored.value) : null
            if (seq !== null) keyBySeq.set(seq, name.slice(namePrefix.length))
          }),
        { concurrency: fileConcurrency, discard: true }
      )
    yield* scan(copyPrefix, (stored) => internal.decodeCopy(stored).seq)
    yield* scan(
      tombstonePrefix,
      (stored) => Option.getOrNull(Option.map(internal.decodeTombstone(stored), (t) => t.seq))
    )
    const writes: Array<{ readonly seq: number; readonly write: internal.Write }> = []
    for (const seq of missing.splice(0)) {
      const write = yield* dropped(seq, keyBySeq.get(seq), undefined, now)
      if (write !== undefined) writes.push({ seq, write })
    }
    return writes
  })

  // The oldest `batchSize` entries, applied to Redis in one round trip (one more per entry Redis refuses) and then
  // removed. It does not take the write lock (`locked`: the handover holds it): writers only append to the journal
  // meanwhile, so they never hold the replay back.
  const replayBatch = (locked: boolean) =>
    Effect.gen(function*() {
      const names = pending.slice(0, batchSize)
      const now = yield* Clock.currentTimeMillis
      const stored = yield* Effect.forEach(names, (name) => fallback.get(name), { concurrency: fileConcurrency })
      const writes: Array<internal.Write> = []
      // Per write: the index in `names` of the entry it replays, and whether that entry was read (not recovered).
      const sources: Array<{ readonly at: number; readonly read: boolean }> = []
      for (let i = 0; i < names.length; i++) {
        const entry = Option.flatMap(stored[i]!, internal.decodeEntry)
        if (Option.isSome(entry)) {
          const e = entry.value
          writes.push(toWrite(e.key, e.op === "remove" ? null : e.value, e.at, e.expiresAt, now))
          sources.push({ at: i, read: true })
        } else {
          const name = names[i]!
          if (!unreadable.has(name)) {
            const { key, seq } = internal.parseName(journalPrefix, name)
            unreadable.set(name, yield* dropped(seq, key, name, now))
          }
          const write = unreadable.get(name)
          if (write !== undefined) {
            writes.push(write)
            sources.push({ at: i, read: false })
          }
        }
      }
      const { done, failure, refused, stale } = yield* applyWrites(writes)
      // The entries behind the writes Redis is done with go; from a failure on, they wait for the next replay.
      const replayed = done === writes.length ? names : names.slice(0, sources[done]!.at)
      yield* setAside(
        refused.map(({ index, message }) => ({
          seq: seqOf(names[sources[index]!.at]!),
          key: writes[index]!.key,
          message
        })),
        locked
      )
      if (replayed.length > 0) {
        // Recorded before the entries go: a crash in between replays them again rather than reporting them lost.
        replayedUpTo = seqOf(replayed[replayed.length - 1]!)
        yield* fallback.set(replayedKey, String(replayedUpTo))
        yield* Effect.forEach(replayed, (name) => fallback.remove(name), {
          concurrency: fileConcurrency,
          discard: true
        })
        pending.splice(0, replayed.length)
        for (const name of replayed) unreadable.delete(name)
      }
      let read = 0
      for (let i = 0; i < done; i++) if (sources[i]!.read) read++
      for (const { index } of refused) if (sources[index]!.read) read--
      counts.replayed += read - Math.min(stale, read)
      counts.stale += stale
      if (failure !== undefined) return yield* Effect.fail(failure)
    })

  // The drain rate spans every replay from the first after an outage until the journal is empty.
  let drainStart: number | undefined
  let drainBase = 0
  const replay = Effect.gen(function*() {
    replaying = true
    if (drainStart === undefined) {
      drainStart = yield* Clock.currentTimeMillis
      drainBase = counts.replayed + counts.stale
    }
    const started = drainStart
    const before = drainBase
    lostWrites = [...lostWrites, ...(yield* reportMissing)]
    if (lostWrites.length > 0) {
      const lost = lostWrites
      const { done, failure, refused, stale } = yield* applyWrites(lost.map(({ write }) => write))
      yield* setAside(
        refused.map(({ index, message }) => ({ seq: lost[index]!.seq, key: lost[index]!.write.key, message })),
        false
      )
      lostWrites = lost.slice(done)
      counts.stale += stale
      if (failure !== undefined) return yield* Effect.fail(failure)
    }
    const drainBatch = (locked: boolean) =>
      Effect.andThen(
        replayBatch(locked),
        Effect.map(Clock.currentTimeMillis, (now) => {
          drainRate = ((counts.replayed + counts.stale - before) * 1000) / Math.max(1, now - started)
        })
      )
    while (pending.length > 0) yield* drainBatch(false)
    // The handover, under the writers' lock: a write being journaled as the last batch went finishes first, and
    // what it left is replayed before any write goes to Redis directly. Under the lock the journal cannot grow, so
    // this is one batch or two, not a chase.
    yield* writeLock.withPermits(1)(Effect.andThen(
      Effect.whileLoop({
        while: () => pending.length > 0,
        body: () => drainBatch(true),
        step: () => undefined
      }),
      // The journaled writes are in Redis: their copies are a cache again, and those past the bound go.
      evictCopies
    ))
    drainStart = undefined
  }).pipe(
    Effect.ignore,
    Effect.ensuring(Effect.sync(() => {
      replaying = false
    })),
    Effect.andThen(refresh)
  )

  // Redis lost its data (its marker changed): every value this instance copied to its fallback goes back, where
  // Redis holds nothing newer, and so does every remove it still keeps a tombstone of, so that the compare and set
  // drops another instance's older copy of a removed key whichever instance re-seeds first. Values written only by
  // other instances are gone; the event says how many values came back.
  const reseed = (marker: string) =>
    Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      const names = yield* fallback.keys
      const copies = names.filter((k) => k.startsWith(copyPrefix))
      const tombstones = names.filter((k) => k.startsWith(tombstonePrefix))
      const stored = yield* Effect.forEach(copies, (name) => fallback.get(name), { concurrency: fileConcurrency })
      const writes: Array<internal.Write> = []
      for (let i = 0; i < copies.length; i++) {
        const value = stored[i]!
        if (Option.isNone(value)) continue
        const copy = internal.decodeCopy(value.value)
        if (copy.expiresAt !== null && copy.expiresAt <= now) continue
        writes.push(toWrite(copies[i]!.slice(copyPrefix.length), copy.copy, copy.at, copy.expiresAt, now))
      }
      const buried = yield* Effect.forEach(tombstones, readStored, { concurrency: fileConcurrency })
      const removes: Array<internal.Write> = []
      for (let i = 0; i < tombstones.length; i++) {
        const tombstone = Option.flatMap(buried[i]!, internal.decodeTombstone)
        if (Option.isNone(tombstone) || tombstone.value.at + tombstoneMillis <= now) continue
        removes.push(toWrite(tombstones[i]!.slice(tombstonePrefix.length), null, tombstone.value.at, null, now))
      }
      // A key Redis refuses (its time key of another type, say) is left out, as it would be every time.
      const refused: Array<string> = []
      const applyAll = (all: ReadonlyArray<internal.Write>) =>
        Effect.gen(function*() {
          let applied = 0
          for (let i = 0; i < all.length; i += batchSize) {
            const batch = all.slice(i, i + batchSize)
            const result = yield* applyWrites(batch)
            for (const { index, message } of result.refused) refused.push(`${batch[index]!.key} (${message})`)
            if (result.failure !== undefined) return yield* Effect.fail(result.failure)
            applied += result.applied
          }
          return applied
        })
      yield* applyAll(removes)
      const reseeded = yield* applyAll(writes)
      counts.reseeded += reseeded
      yield* PubSub.publish(eventHub, { _tag: "RedisDataLost", reseeded, at: now })
      yield* Effect.logWarning(
        `ResilientRedis: Redis lost its data; re-seeded ${reseeded} keys (and ${removes.length} removes) from this ` +
          `instance's fallback${refused.length === 0 ? "" : `; Redis refused ${refused.join(", ")}`}`
      )
      markerSeen = marker
      yield* Effect.ignore(fallback.set(markerSeenKey, marker))
    })

  // The ping is the marker's round trip: it tells whether Redis answers, and whether it still holds its data.
  const tick = Effect.gen(function*() {
    const candidate = `${yield* Clock.currentTimeMillis}:${yield* Random.nextIntBetween(0, 36 ** 6)}`
    const result = yield* viaRedis(store.eval(internal.marker)(redisMarker, candidate))
    if (Result.isFailure(result)) return
    const marker = String(result.success)
    if (markerSeen === undefined) {
      markerSeen = marker
      yield* Effect.ignore(fallback.set(markerSeenKey, marker))
    } else if (marker !== markerSeen) {
      yield* reseed(marker)
    }
    if (pending.length > 0 || missing.length > 0 || lostWrites.length > 0) yield* replay
  })

  yield* tick.pipe(
    Effect.ignoreCause,
    Effect.repeat(Schedule.spaced(options.pingInterval ?? "1 second")),
    Effect.forkScoped
  )

  const by = { name: breaker.name }
  const stateCodes: Record<State, number> = { Healthy: 0, Degraded: 1, Failed: 2, Fallback: 3, Connecting: 4 }
  yield* PullMetric.register([
    PullMetric.gauge(
      "resilient_redis_state",
      "Health: 0 Healthy, 1 Degraded, 2 Failed, 3 Fallback, 4 Connecting",
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
    PullMetric.counter(
      "resilient_redis_stale_total",
      "Journal entries not replayed because Redis held a newer write of the key",
      by,
      () => counts.stale
    ),
    PullMetric.counter(
      "resilient_redis_dropped_total",
      "Journal entries that could not be read (each also published as a JournalEntryDropped event)",
      by,
      () => counts.dropped
    ),
    PullMetric.counter(
      "resilient_redis_refused_total",
      "Journal entries Redis refused, set aside (each also published as a JournalEntryRefused event)",
      by,
      () => counts.refused
    ),
    PullMetric.counter(
      "resilient_redis_reseeded_total",
      "Keys written back from the fallback to a Redis that lost its data",
      by,
      () => counts.reseeded
    ),
    PullMetric.gauge(
      "resilient_redis_drain_rate",
      "Journal entries replayed per second, over the current or last replay",
      by,
      () => drainRate
    ),
    PullMetric.gauge("resilient_redis_pending", "Journal entries waiting for Redis", by, () => pending.length)
  ])

  return ResilientRedis.of({
    get,
    set,
    remove,
    health: refresh,
    changes: Stream.fromPubSub(hub),
    events: Stream.fromPubSub(eventHub),
    snapshot: Effect.map(refresh, (state) => ({
      state,
      breaker: breakerState,
      consecutiveFailures: failures,
      ...counts,
      drainRate,
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
 *   Layer.provide(RedisStore.layer({ url: "redis://127.0.0.1:6379", lazy: true })),
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
