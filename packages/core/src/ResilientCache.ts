/**
 * A cache whose failures never reach the caller: it wraps any cache (the backend: Redis, a `FallbackStore`, a
 * client of your own), optionally behind an in-memory L1, with a timeout and a circuit breaker of its own, so that a
 * dead or hanging cache costs a miss, not an error and not a wait.
 *
 * **Details**
 *
 * - Every backend call runs under `timeout` (default 250 millis) inside the cache's own `CircuitBreaker` (options
 *   in `circuitBreaker`, name `name`). A failure, a defect or a timeout counts against the breaker; once it opens,
 *   calls skip the backend at once until it lets a probe through. With `retry`, a failed call is retried by that
 *   policy, each attempt under `timeout` of its own: the breaker sees one outcome per call, its retries included.
 * - Per operation, what the caller gets instead of an error: a failing or skipped `get` is a miss (`None`), a failing
 *   or skipped `set` gives `false` (the value was not stored in the backend), a failing or skipped `invalidate`
 *   gives `0`. Failures (not the breaker's skips) go to `onFailure`, a warning log by default. A backend call that
 *   ends interrupted on its own (it joined a fiber something else interrupted) is a failure of kind `Defect`; an
 *   interrupted caller stays interrupted.
 * - With `l1`, a bounded in-memory map (least recently used out, `l1.ttl` per entry, capped at the cache's `ttl` so
 *   that a value `set` is not served past it) sits in front: `get` reads it first and fills it from backend hits,
 *   `set` writes it whatever the backend does, `invalidate` clears the key in it. A hit read while a `set` or
 *   `invalidate` of its key was under way does not fill it: what it read may be the value the write replaced or
 *   removed. While the backend is down, the L1 keeps serving what it holds: the seeds' "L1 cache only" degraded mode.
 * - `snapshot` combines the cache's figures (hits, L1 hits, misses, hit rate, errors by operation, timeouts, skips,
 *   L1 entries) with the breaker's snapshot. The same figures are exported as pull metrics
 *   (`resilient_cache_reads_total{outcome}`, `resilient_cache_errors_total{operation}`, `resilient_cache_skipped_total`,
 *   `resilient_cache_l1_entries`, attribute `policy` = `name`) while the cache's scope is open.
 *
 * **Gotchas**
 *
 * - A failed `invalidate` clears the L1 but not the backend, so the stale value can come back from the backend
 *   into the L1 on a later miss: `invalidate` gives `0` so that the caller can tell.
 * - The L1 is per process: instances do not see each other's `set`s before the backend answers again, and a value
 *   written while the backend was down lives only in the L1 of the instance that wrote it.
 *
 * **Example** (Sessions: L1 in front of Redis, an empty session when both miss)
 *
 * ```ts
 * import { ResilientCache } from "@effect-resilience/core"
 * import { Effect, Option } from "effect"
 *
 * declare const redisSessions: ResilientCache.Backend<string>
 *
 * const program = Effect.gen(function*() {
 *   const sessions = yield* ResilientCache.make({
 *     name: "sessions",
 *     backend: redisSessions,
 *     ttl: "1 day",
 *     l1: { maxEntries: 10_000, ttl: "5 minutes" }
 *   })
 *   const session = yield* sessions.get("user-42") // never fails
 *   return Option.getOrElse(session, () => "{}")
 * }).pipe(Effect.scoped)
 * ```
 *
 * @since 0.2.0
 */
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as CircuitBreaker from "./CircuitBreaker.ts"
import type * as FallbackStore from "./FallbackStore.ts"
import { callUser } from "./internal/callUser.ts"
import { admissions } from "./internal/guard.ts"
import * as metrics from "./internal/metrics.ts"
import * as internal from "./internal/resilientCache.ts"
import { retriers } from "./internal/retry.ts"
import * as timeoutInternal from "./internal/timeout.ts"
import { decode, DurationInput, millisOf, orDefault, type PolicyConfigError, PositiveInt } from "./PolicyConfig.ts"
import * as Retry from "./Retry.ts"
import * as Timeout from "./Timeout.ts"

/**
 * The brand every resilient cache carries.
 *
 * @example
 * ```ts
 * import { ResilientCache } from "@effect-resilience/core"
 *
 * const isResilientCache = (u: object) => ResilientCache.TypeId in u
 * ```
 *
 * @since 0.2.0
 * @category type IDs
 */
export const TypeId: TypeId = "~@effect-resilience/core/ResilientCache"

/**
 * The type of `TypeId`.
 *
 * @example
 * ```ts
 * import type { ResilientCache } from "@effect-resilience/core"
 *
 * type Id = ResilientCache.TypeId // "~@effect-resilience/core/ResilientCache"
 * ```
 *
 * @since 0.2.0
 * @category type IDs
 */
export type TypeId = "~@effect-resilience/core/ResilientCache"

// -----------------------------------------------------------------------------
// models
// -----------------------------------------------------------------------------

/**
 * The cache being wrapped: three operations that may fail, hang or die. `ttl` is the cache's `ttl` option, passed on
 * every `set` (undefined without one).
 *
 * @example
 * ```ts
 * import type { ResilientCache } from "@effect-resilience/core"
 * import { Effect, Option } from "effect"
 *
 * const map = new Map<string, string>()
 * const inMemory: ResilientCache.Backend<string> = {
 *   get: (key) => Effect.sync(() => Option.fromNullishOr(map.get(key))),
 *   set: (key, value) => Effect.sync(() => void map.set(key, value)),
 *   invalidate: (key) => Effect.sync(() => (map.delete(key) ? 1 : 0))
 * }
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export interface Backend<A, E = unknown> {
  readonly get: (key: string) => Effect.Effect<Option.Option<A>, E>
  readonly set: (key: string, value: A, ttl: Duration.Duration | undefined) => Effect.Effect<void, E>
  /** Removes `key`; gives how many entries it removed. */
  readonly invalidate: (key: string) => Effect.Effect<number, E>
}

/**
 * A backend call that failed, as `onFailure` receives it: the operation, the key, and whether it failed, died or
 * timed out (`cause` is the error, the defect, or a `Timeout.TimeoutError` whose `operation` is the cache's name).
 *
 * @example
 * ```ts
 * import type { ResilientCache } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * const onFailure = (failure: ResilientCache.Failure) =>
 *   Effect.logError(`cache ${failure.operation} ${failure.key}: ${failure.kind}`)
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export interface Failure {
  readonly cache: string
  readonly operation: "get" | "set" | "invalidate"
  readonly key: string
  readonly kind: "Error" | "Defect" | "Timeout"
  readonly cause: unknown
}

/**
 * Options of `make`.
 *
 * @example
 * ```ts
 * import type { ResilientCache } from "@effect-resilience/core"
 *
 * declare const backend: ResilientCache.Backend<string>
 *
 * const options: ResilientCache.Options<string> = {
 *   name: "answers",
 *   backend,
 *   timeout: "100 millis",
 *   circuitBreaker: { openDuration: "10 seconds" }
 * }
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export interface Options<A, E = unknown> {
  /** Names the cache in logs, metrics and its breaker. */
  readonly name: string
  /** The cache being wrapped. */
  readonly backend: Backend<A, E>
  /** Passed to the backend's `set` (positive). Default: none (the backend's own default). */
  readonly ttl?: Duration.Input | undefined
  /**
   * Each backend call gets this long before it counts as failed (positive); with `retry`, each attempt does.
   * Default: 250 millis.
   */
  readonly timeout?: Duration.Input | undefined
  /**
   * Retries a failed backend call (a timed-out attempt included) as this policy says, inside the breaker: made by
   * `Retry.make`, so that its counts and events are there to read. Default: none, one attempt per call.
   */
  readonly retry?: Retry.Retry<unknown, unknown> | undefined
  /** Options of the cache's own breaker (its name is `name`). Default: the breaker's defaults. */
  readonly circuitBreaker?: Omit<CircuitBreaker.Options, "name"> | undefined
  /**
   * An in-memory L1 in front of the backend: at most `maxEntries`, each kept for `ttl` (at most the cache's `ttl`).
   * Default: none.
   */
  readonly l1?: {
    readonly maxEntries: number
    readonly ttl: Duration.Input
  } | undefined
  /**
   * Told of every failed backend call (never of the breaker's skips). Default: a warning log. One that throws or
   * dies is logged as a warning; the call still answers.
   */
  readonly onFailure?: ((failure: Failure) => Effect.Effect<void>) | undefined
}

/**
 * What `snapshot` gives: `hits` counts L1 and backend hits, `hitRate` is `hits / (hits + misses)` (0 before any
 * read), `errors` counts failed backend calls by operation (timeouts included, also counted in `timeouts`),
 * `skipped` the calls the breaker kept from the backend.
 *
 * @example
 * ```ts
 * import type { ResilientCache } from "@effect-resilience/core"
 *
 * const degraded = (s: ResilientCache.Snapshot) => s.breaker.state !== "Closed" || s.hitRate < 0.5
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export interface Snapshot {
  readonly name: string
  readonly hits: number
  readonly l1Hits: number
  readonly misses: number
  readonly hitRate: number
  readonly errors: {
    readonly get: number
    readonly set: number
    readonly invalidate: number
  }
  readonly timeouts: number
  readonly skipped: number
  readonly l1Entries: number
  readonly breaker: CircuitBreaker.Snapshot
}

/**
 * A resilient cache. See the module docs for the semantics.
 *
 * @example
 * ```ts
 * import type { ResilientCache } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * const quote = (cache: ResilientCache.ResilientCache<string>, sku: string, fetch: Effect.Effect<string>) =>
 *   cache.getOrCompute(sku, fetch)
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export interface ResilientCache<A> {
  readonly [TypeId]: TypeId
  readonly name: string
  /** The value of `key`, from the L1 or the backend; `None` on a miss, a failure, a timeout or an open breaker. */
  readonly get: (key: string) => Effect.Effect<Option.Option<A>>
  /** Stores `value` (L1 and backend); `true` when the backend stored it. */
  readonly set: (key: string, value: A) => Effect.Effect<boolean>
  /** Removes `key` (L1 and backend); gives the backend's count, `0` when the backend could not be reached. */
  readonly invalidate: (key: string) => Effect.Effect<number>
  /** `get`, and on a miss runs `compute` and `set`s its value; `compute`'s errors are the caller's. */
  readonly getOrCompute: <E, R>(key: string, compute: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
  /** The cache's own breaker. */
  readonly breaker: CircuitBreaker.CircuitBreaker
  /** The cache's figures and its breaker's snapshot. */
  readonly snapshot: Effect.Effect<Snapshot>
}

// -----------------------------------------------------------------------------
// backends
// -----------------------------------------------------------------------------

/**
 * A backend over a `FallbackStore` (values as strings; `toSchemaStore` first for others): the file store is a local
 * L2 that survives restarts.
 *
 * @example
 * ```ts
 * import { FallbackStore, ResilientCache } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * const program = Effect.gen(function*() {
 *   const store = yield* FallbackStore.makeMemory()
 *   const cache = yield* ResilientCache.make({ name: "pages", backend: ResilientCache.fromFallbackStore(store) })
 *   yield* cache.set("/", "<h1>home</h1>")
 *   return yield* cache.get("/")
 * }).pipe(Effect.scoped)
 * ```
 *
 * @since 0.2.0
 * @category constructors
 */
export const fromFallbackStore = <E>(
  store: Pick<FallbackStore.FallbackStore, "get" | "remove" | "has"> & {
    readonly set: (key: string, value: string, options?: FallbackStore.SetOptions) => Effect.Effect<void, E>
  }
): Backend<string, E | FallbackStore.FallbackStoreError> => ({
  get: store.get,
  set: (key, value, ttl) => store.set(key, value, ttl === undefined ? undefined : { ttl }),
  invalidate: (key) =>
    Effect.flatMap(store.has(key), (had) => had ? Effect.as(store.remove(key), 1) : Effect.succeed(0))
})

// -----------------------------------------------------------------------------
// constructors
// -----------------------------------------------------------------------------

const OptionsSchema = Schema.Struct({
  name: Schema.NonEmptyString,
  ttl: Schema.optional(DurationInput({ positive: true })),
  timeout: DurationInput({ positive: true }),
  retry: Schema.optional(Schema.Unknown.check(
    Schema.makeFilter((input) =>
      typeof input === "object" && input !== null && Retry.TypeId in input
        ? undefined
        : "Expected a retry policy made by Retry.make"
    )
  )),
  l1: Schema.optional(Schema.Struct({
    maxEntries: PositiveInt,
    ttl: DurationInput({ positive: true })
  }))
})

class Stats {
  hits = 0
  l1Hits = 0
  misses = 0
  timeouts = 0
  skipped = 0
  readonly errors = { get: 0, set: 0, invalidate: 0 }
}

const defaultOnFailure = (failure: Failure): Effect.Effect<void> =>
  Effect.logWarning(`Resilient cache "${failure.cache}": ${failure.operation} failed (${failure.kind}); degraded`)
    .pipe(Effect.annotateLogs({ cache: failure.cache, key: failure.key, cause: String(failure.cause) }))

/**
 * Makes a resilient cache around `backend`. Fails with `PolicyConfigError` naming the field when an option is out of
 * range (the breaker's options included). The breaker and the metrics live as long as the scope.
 *
 * @example
 * ```ts
 * import { FallbackStore, ResilientCache } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * const program = Effect.gen(function*() {
 *   const cache = yield* ResilientCache.make({
 *     name: "search",
 *     backend: ResilientCache.fromFallbackStore(yield* FallbackStore.makeMemory()),
 *     timeout: "100 millis",
 *     l1: { maxEntries: 1_000, ttl: "1 minute" }
 *   })
 *   return yield* cache.getOrCompute("effect", Effect.succeed("https://effect.website"))
 * }).pipe(Effect.scoped)
 * ```
 *
 * @since 0.2.0
 * @category constructors
 */
export const make = <A, E = unknown>(
  options: Options<A, E>
): Effect.Effect<ResilientCache<A>, PolicyConfigError, Scope.Scope> =>
  Effect.gen(function*() {
    const settings = yield* decode(OptionsSchema, {
      name: options.name,
      ...(options.ttl === undefined ? {} : { ttl: options.ttl }),
      timeout: orDefault(options.timeout, "250 millis"),
      ...(options.retry === undefined ? {} : { retry: options.retry }),
      ...(options.l1 === undefined ? {} : { l1: options.l1 })
    }, { kind: "resilient cache", policy: String(options.name) })
    const name = settings.name
    const backend = options.backend
    const ttl = settings.ttl === undefined ? undefined : Duration.fromInputUnsafe(settings.ttl as Duration.Input)
    const timeoutMillis = millisOf(settings.timeout as Duration.Input)
    // The timeout policy's shared deadlines, not `Effect.timeout` (two fibers and a timer per call, about 1 µs).
    const limiter = new timeoutInternal.Limiter(
      yield* Clock.clockWith(Effect.succeed),
      yield* Effect.context<never>(),
      timeoutMillis,
      () => new Timeout.TimeoutError({ operation: name, duration: Duration.millis(timeoutMillis) })
    )
    const onFailure = options.onFailure ?? defaultOnFailure
    // The user's hook must not make a call fail: one that throws or dies is logged, and the call answers as usual.
    const report = (failure: Failure): Effect.Effect<void> =>
      Effect.catchCause(
        Effect.suspend(() => onFailure(failure)),
        (cause) =>
          Effect.logWarning(`Resilient cache "${name}": onFailure failed on ${failure.operation}`, cause).pipe(
            Effect.annotateLogs({ cache: name, key: failure.key })
          )
      )
    const breaker = yield* CircuitBreaker.make({ ...options.circuitBreaker, name })
    // An L1 entry lives no longer than the cache's `ttl`: past it, the backend no longer serves the value either.
    const l1 = settings.l1 === undefined ? undefined : new internal.L1<A>(
      settings.l1.maxEntries,
      Math.min(millisOf(settings.l1.ttl as Duration.Input), ttl === undefined ? Infinity : Duration.toMillis(ttl))
    )
    const stats = new Stats()

    // One backend call: timed out (each attempt, with a retry), guarded by the breaker, and never failing: `orElse`
    // stands in for its result. A backend that throws instead of returning an effect (a driver's closed client, say)
    // fails it with a defect (`callUser`), reported like any other. While the breaker's circuit is closed, the
    // breaker, the retry and the timeout are one callback (see `Limiter.startGuarded`), and the call's handler joins
    // it; a retry that classifies values (`isFailureValue`) cannot join, and its calls take the composed path.
    const admission = admissions.get(breaker)!
    const retry = options.retry
    const retrier = retry === undefined ? undefined : retriers.get(retry)
    const fusable = retry === undefined || retrier !== undefined
    const attempts = <X>(self: Effect.Effect<X, E>): Effect.Effect<X, unknown> =>
      retry === undefined
        ? limiter.run<X, E, never, Timeout.TimeoutError>(self)
        : retrier === undefined
        ? retry.protect(limiter.run<X, E, never, Timeout.TimeoutError>(self))
        : limiter.runRetried(self, retrier)
    const composed = <X>(self: Effect.Effect<X, E>) => breaker.protect(attempts(self))
    // An interrupted caller never gets here (its callback is cancelled, or Effect runs no recovery for it), so an
    // interruption here is the backend's own (it joined a fiber something else interrupted): a failed call.
    const failedCall = <X>(operation: Failure["operation"], key: string, orElse: X, cause: Cause.Cause<unknown>) => {
      const error = Cause.findErrorOption(cause)
      // A skip is the cache's own breaker's rejection; the backend's own (its pool's bulkhead, another breaker) is a
      // failed call like any other.
      if (
        Option.isSome(error) && error.value instanceof CircuitBreaker.CircuitBreakerError &&
        error.value.breaker === name
      ) {
        stats.skipped++
        return Effect.succeed(orElse)
      }
      stats.errors[operation]++
      // Ours, or Effect's from a backend that times out on its own.
      const timedOut = Option.isSome(error) &&
        (Timeout.isTimeoutError(error.value) || Cause.isTimeoutError(error.value))
      if (timedOut) stats.timeouts++
      const failure: Failure = {
        cache: name,
        operation,
        key,
        kind: timedOut ? "Timeout" : Option.isSome(error) ? "Error" : "Defect",
        cause: Option.isSome(error) ? error.value : Cause.squash(cause)
      }
      return Effect.as(report(failure), orElse)
    }
    // Starts a backend call for `caller` from a callback: `resume` hears its value, or `orElse` once it failed. A call
    // that succeeds at once costs the callback alone.
    const start = <X>(
      caller: Fiber.Fiber<unknown, unknown>,
      operation: Failure["operation"],
      key: string,
      call: Effect.Effect<X, E>,
      orElse: X,
      resume: (effect: Effect.Effect<X>) => void
    ): Effect.Effect<void> | undefined => {
      const answer = (effect: Effect.Effect<unknown, unknown>) => {
        const result = effect as Effect.Effect<X, unknown>
        resume(
          timeoutInternal.isSucceeded(result)
            ? result as Exit.Exit<X>
            : Effect.catchCause(result, (cause) => failedCall(operation, key, orElse, cause))
        )
      }
      if (fusable) return limiter.startGuarded(caller, call, retrier, admission, composed, answer)
      answer(composed(call))
      return undefined
    }
    const guarded = <X>(operation: Failure["operation"], key: string, call: Effect.Effect<X, E>, orElse: X) =>
      Effect.callback<X>((resume) => start(Fiber.getCurrent()!, operation, key, call, orElse, resume))

    const count = (found: Option.Option<A>): Option.Option<A> => {
      if (Option.isSome(found)) stats.hits++
      else stats.misses++
      return found
    }

    const none = Option.none<A>()
    // The fiber's clock (a `TestClock` in tests) is read synchronously: an L1 hit costs one effect step.
    const get = (key: string): Effect.Effect<Option.Option<A>> =>
      Effect.withFiber((fiber) => {
        const clock = fiber.getRef(Clock.Clock)
        const cached = l1?.get(key, clock.currentTimeMillisUnsafe())
        if (cached !== undefined) {
          stats.l1Hits++
          stats.hits++
          return Effect.succeedSome(cached)
        }
        if (l1 === undefined) return Effect.map(guarded("get", key, callUser(() => backend.get(key)), none), count)
        // A read that a `set` or `invalidate` of the key overtook keeps nothing in the L1 (see `L1.reads`). It starts
        // in the callback, under the handler that settles it: an interruption that lands before (the fiber yielded
        // between two steps) has started no read, and would otherwise leave its key's `Reads` in the map for good.
        let reads: internal.Reads | undefined
        let version = 0
        const read = Effect.callback<Option.Option<A>>((resume) => {
          reads = l1.startRead(key)
          version = reads.version
          return start(fiber, "get", key, callUser(() => backend.get(key)), none, resume)
        })
        const tracked = Effect.onExitPrimitive(read, () => {
          if (reads !== undefined) l1.settle(key, reads)
          return undefined
        })
        return Effect.map(tracked, (found) => {
          if (Option.isSome(found)) l1.fill(key, found.value, clock.currentTimeMillisUnsafe(), reads!, version)
          return count(found)
        })
      })

    const set = (key: string, value: A): Effect.Effect<boolean> =>
      Effect.callback<boolean>((resume) => {
        const fiber = Fiber.getCurrent()!
        if (l1 !== undefined) l1.set(key, value, fiber.getRef(Clock.Clock).currentTimeMillisUnsafe())
        return start(fiber, "set", key, Effect.as(callUser(() => backend.set(key, value, ttl)), true), false, resume)
      })

    const invalidate = (key: string): Effect.Effect<number> =>
      Effect.suspend(() => {
        const call = guarded("invalidate", key, callUser(() => backend.invalidate(key)), 0)
        if (l1 === undefined) return call
        l1.delete(key)
        const since = l1.writes
        // A read that started meanwhile may have read the value before the backend dropped it: cleared again, however
        // the call ends (an interrupted one may have reached the backend all the same), unless a later `set` wrote it.
        return Effect.onExitPrimitive(call, () => {
          l1.deleteUnlessSetSince(key, since)
          return undefined
        })
      })

    const getOrCompute = <E2, R>(key: string, compute: Effect.Effect<A, E2, R>): Effect.Effect<A, E2, R> =>
      Effect.flatMap(
        get(key),
        Option.match({
          onSome: Effect.succeed,
          onNone: () => Effect.tap(compute, (value) => set(key, value))
        })
      )

    const figures = (at: number) => {
      const reads = stats.hits + stats.misses
      return {
        name,
        hits: stats.hits,
        l1Hits: stats.l1Hits,
        misses: stats.misses,
        hitRate: reads === 0 ? 0 : stats.hits / reads,
        errors: { ...stats.errors },
        timeouts: stats.timeouts,
        skipped: stats.skipped,
        l1Entries: l1?.size(at) ?? 0
      }
    }

    const clock = yield* Clock.Clock
    const by = { policy: name }
    yield* metrics.register([
      metrics.counter("resilient_cache_reads_total", "Reads, by outcome", { ...by, outcome: "L1Hit" }, () =>
        stats.l1Hits),
      metrics.counter(
        "resilient_cache_reads_total",
        "Reads, by outcome",
        { ...by, outcome: "Hit" },
        () =>
          stats.hits - stats.l1Hits
      ),
      metrics.counter("resilient_cache_reads_total", "Reads, by outcome", { ...by, outcome: "Miss" }, () =>
        stats.misses),
      ...(["get", "set", "invalidate"] as const).map((operation) =>
        metrics.counter(
          "resilient_cache_errors_total",
          "Backend calls that failed or timed out, by operation",
          { ...by, operation },
          () =>
            stats.errors[operation]
        )
      ),
      metrics.counter(
        "resilient_cache_skipped_total",
        "Backend calls the open breaker skipped",
        by,
        () => stats.skipped
      ),
      metrics.gauge("resilient_cache_l1_entries", "Live L1 entries", by, () =>
        l1?.size(clock.currentTimeMillisUnsafe()) ?? 0)
    ])

    return {
      [TypeId]: TypeId,
      name,
      get,
      set,
      invalidate,
      getOrCompute,
      breaker,
      snapshot: Effect.flatMap(Clock.currentTimeMillis, (at) =>
        Effect.map(breaker.snapshot, (snapshot): Snapshot => ({ ...figures(at), breaker: snapshot })))
    } satisfies ResilientCache<A>
  })
