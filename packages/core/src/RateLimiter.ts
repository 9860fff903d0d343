/**
 * Rate limiting as a policy: at most `limit` calls per `window` reach a dependency, and the calls over the limit
 * fail at once with a typed `RateLimiterError` (reason `RateLimited`, carrying `retryAfter`), or wait for their turn.
 *
 * The limiting itself is Effect's: `effect/persistence/RateLimiter`, with its token-bucket and fixed-window
 * algorithms and its stores. This module adds the policy around it: typed errors, a waiting mode, a slot in the
 * pipeline, metrics and snapshots. The store is chosen by layer: `layerStoreMemory` for one process, Effect's
 * `RateLimiter.layerStoreRedis` to share the budget between instances.
 *
 * **Details**
 *
 * - Every call takes `tokens` (default 1) from the budget of `key` (default: the limiter's name) before it runs.
 * - `"fixed-window"` (the default, as in Effect): a window opens with the first admitted call and lasts `window`;
 *   it admits `limit` tokens and rejects what is over them until it closes, however the calls were spread over it.
 *   `retryAfter` is the time until it closes. In `"delay"` mode each call reserves a place instead: the first
 *   `limit` calls of a burst run at once, the next `limit` one `window` after the burst began, and so on.
 * - `"token-bucket"`: a bucket of `limit` tokens, full at first, refilled by one token every `window / limit`.
 *   A burst of `limit` calls is admitted, then one call per `window / limit`. `retryAfter` is the time until
 *   enough tokens are back.
 * - `onExceeded: "fail"` (the default): a call over the limit fails at once with `RateLimiterError` (reason
 *   `RateLimited`) and takes no token. `onExceeded: "delay"`: every call is admitted and reserves its tokens; a
 *   call over the limit sleeps (on `Clock`) exactly the delay the limiter reports, then runs. A hedged attempt (a
 *   `Hedge` inside which the limiter runs, as in a `Policy`) never waits: with no token now, it fails and takes
 *   none, while its call's other attempts run on. One admitted takes its place as a waiting call would, so that
 *   the calls after it wait for it (a fixed window asks the store twice for a hedge: whether there is room, then
 *   for its place; a hedge that loses the room to another call in between keeps the later place, and fails).
 * - Store failures (Redis down): with `onStoreError: "allow"` (the default) the call runs and is counted in
 *   `storeErrors`, so that the limiter never turns a store outage into an outage of the dependency; with
 *   `"fail"` the call fails with `RateLimiterError` (reason `RateLimiterStoreError`) instead.
 * - `protectKey(key)` limits each key separately (per client, per tenant): the store key is
 *   `${options.key}:${key}`.
 * - One error, `RateLimiterError`, for every rejection: `Effect.catchTag("RateLimiterError", f)` handles both
 *   reasons, `Effect.catchReason("RateLimiterError", "RateLimited", f)` one of them. It is a local rejection: a
 *   circuit breaker around the limiter never counts it as a failure of the dependency. Its `retryAfter` (the
 *   reason's, zero for a store failure) is what a retry policy waits for.
 *
 * **Gotchas**
 *
 * - Limiters that share a store and a key share one budget, across processes with the Redis store. Two
 *   limiters with the same name and no `key` share one.
 * - In `"delay"` mode a waiting call keeps its reservation when it is interrupted: the store cannot give tokens
 *   back. Nothing bounds the wait; put a timeout outside the limiter if callers must not queue for long.
 * - The limiter counts calls as they start, not as they finish: it bounds the rate of calls, not concurrency
 *   (that is a bulkhead's job).
 * - Effect's memory store never forgets a key: with `protectKey` over unbounded keys (client IPs), use the Redis
 *   store, whose keys expire.
 *
 * **Example** (Failing fast over the limit)
 *
 * ```ts
 * import { RateLimiter } from "@effect-resilience/core"
 * import { Duration, Effect } from "effect"
 *
 * const program = Effect.gen(function*() {
 *   const limiter = yield* RateLimiter.make({ name: "geocoder", limit: 2, window: "1 second" })
 *   const geocode = Effect.succeed("51.5, -0.1").pipe(limiter.protect)
 *   yield* geocode
 *   yield* geocode
 *   return yield* geocode.pipe(
 *     Effect.catchReason("RateLimiterError", "RateLimited", (e) =>
 *       Effect.succeed(`busy, retry in ${Duration.format(e.retryAfter)}`))
 *   ) // "busy, retry in 1s"
 * }).pipe(Effect.scoped, Effect.provide(RateLimiter.layerStoreMemory))
 * ```
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import { dual } from "effect/Function"
import * as Layer from "effect/Layer"
import * as EffectRateLimiter from "effect/persistence/RateLimiter"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import { HedgedAttempt } from "./internal/hedge.ts"
import * as metrics from "./internal/metrics.ts"
import { LocalRejectionTypeId } from "./internal/rejection.ts"
import { stackless } from "./internal/stackless.ts"
import { decode, DurationInput, millisOf, orDefault, type PolicyConfigError, PositiveInt } from "./PolicyConfig.ts"

/**
 * @example
 * ```ts
 * import { RateLimiter } from "@effect-resilience/core"
 *
 * const isRateLimiter = (u: object) => RateLimiter.TypeId in u
 * ```
 *
 * @since 0.1.0
 * @category type IDs
 */
export const TypeId: TypeId = "~@effect-resilience/core/RateLimiter"

/**
 * @example
 * ```ts
 * import type { RateLimiter } from "@effect-resilience/core"
 *
 * type Id = RateLimiter.TypeId // "~@effect-resilience/core/RateLimiter"
 * ```
 *
 * @since 0.1.0
 * @category type IDs
 */
export type TypeId = "~@effect-resilience/core/RateLimiter"

// -----------------------------------------------------------------------------
// models
// -----------------------------------------------------------------------------

/**
 * How the budget is kept; see the module docs for the exact semantics of each.
 *
 * @example
 * ```ts
 * import type { RateLimiter } from "@effect-resilience/core"
 *
 * const smooth: RateLimiter.Algorithm = "token-bucket"
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type Algorithm = "fixed-window" | "token-bucket"

/**
 * Options for `make`. `name`, `limit` and `window` are required.
 *
 * @example
 * ```ts
 * import type { RateLimiter } from "@effect-resilience/core"
 *
 * const options: RateLimiter.Options = {
 *   name: "github",
 *   limit: 5000,
 *   window: "1 hour",
 *   algorithm: "token-bucket",
 *   onExceeded: "delay"
 * }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** Names the limiter in errors, metrics and snapshots. */
  readonly name: string
  /** Tokens per window: a positive integer. */
  readonly limit: number
  /** The window the limit applies to: a positive duration. */
  readonly window: Duration.Input
  /** Default: `"fixed-window"`, as in Effect. */
  readonly algorithm?: Algorithm | undefined
  /** The store key of the budget. Default: the name. */
  readonly key?: string | undefined
  /** Over the limit, fail at once (reason `RateLimited`) or wait for a slot. Default: `"fail"`. */
  readonly onExceeded?: "fail" | "delay" | undefined
  /** Tokens each call takes, in (0, limit]. Default: 1. */
  readonly tokens?: number | undefined
  /** When the store fails, run the call (and count it) or fail (reason `RateLimiterStoreError`). Default: "allow". */
  readonly onStoreError?: "allow" | "fail" | undefined
}

/**
 * A limiter's configuration and counts since it was made, as plain serializable data.
 *
 * **Details**
 *
 * `calls` = `admitted` + `rejected` + store failures that failed the call. `admitted` includes the calls that
 * waited (`delayed`) and those let through on a store failure.
 *
 * @example
 * ```ts
 * import type { RateLimiter } from "@effect-resilience/core"
 *
 * const rejectionRate = (s: RateLimiter.Snapshot) => s.calls === 0 ? 0 : s.rejected / s.calls
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Snapshot {
  readonly name: string
  readonly key: string
  readonly algorithm: Algorithm
  readonly limit: number
  readonly windowMillis: number
  readonly tokens: number
  readonly onExceeded: "fail" | "delay"
  readonly onStoreError: "allow" | "fail"
  readonly calls: number
  readonly admitted: number
  readonly rejected: number
  readonly delayed: number
  readonly storeErrors: number
}

/**
 * A rate limiter. See the module docs for the semantics.
 *
 * @example
 * ```ts
 * import { RateLimiter } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * const perTenant = (limiter: RateLimiter.RateLimiter, tenant: string) =>
 *   Effect.succeed("report").pipe(limiter.protectKey(tenant))
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface RateLimiter {
  readonly [TypeId]: TypeId
  readonly name: string
  /** Runs an effect once the limiter admits it: `effect.pipe(limiter.protect)`. */
  readonly protect: <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E | Rejection, R>
  /**
   * Runs an effect against the budget of `key` (store key `${options.key}:${key}`):
   * `effect.pipe(limiter.protectKey(tenant))`, or `limiter.protectKey(effect, tenant)`.
   */
  readonly protectKey: {
    (key: string): <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E | Rejection, R>
    <A, E, R>(self: Effect.Effect<A, E, R>, key: string): Effect.Effect<A, E | Rejection, R>
  }
  /** Configuration and counts since the limiter was made (all keys together). */
  readonly snapshot: Effect.Effect<Snapshot>
}

/**
 * The `RateLimiter` in context, for programs that limit one dependency and want to swap the limiter in tests.
 *
 * @example
 * ```ts
 * import { RateLimiter } from "@effect-resilience/core"
 * import { Effect, Layer } from "effect"
 *
 * const program = Effect.gen(function*() {
 *   const limiter = yield* RateLimiter.RateLimiter
 *   return yield* limiter.protect(Effect.succeed("ok"))
 * }).pipe(
 *   Effect.provide(
 *     RateLimiter.layer({ name: "api", limit: 10, window: "1 second" }).pipe(
 *       Layer.provide(RateLimiter.layerStoreMemory)
 *     )
 *   )
 * )
 * ```
 *
 * @since 0.1.0
 * @category services
 */
export const RateLimiter: Context.Service<RateLimiter, RateLimiter> = Context.Service<RateLimiter>(
  "@effect-resilience/core/RateLimiter"
)

// -----------------------------------------------------------------------------
// errors
// -----------------------------------------------------------------------------

/**
 * The reason of a rejection over the limit. `retryAfter` is the wait the limiter reported (for a fixed window:
 * until it resets; for a token bucket: until enough tokens are back), rounded up to a whole millisecond; `key` is
 * the store key.
 *
 * @example
 * ```ts
 * import type { RateLimiter } from "@effect-resilience/core"
 * import { Duration } from "effect"
 *
 * const retryAfterHeader = (e: RateLimiter.RateLimited) => String(Math.ceil(Duration.toSeconds(e.retryAfter)))
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export class RateLimited extends Schema.TaggedError<RateLimited>()("RateLimited", {
  policy: Schema.String,
  key: Schema.String,
  limit: Schema.Finite,
  window: Schema.DurationFromMillis,
  retryAfter: Schema.DurationFromMillis
}) {
  override get message(): string {
    return `Rate limiter "${this.policy}" (key "${this.key}") allows ${this.limit} per ${
      Duration.format(this.window)
    }; retry after ${Duration.format(this.retryAfter)}`
  }
}

/**
 * The reason of a rejection when the limiter's store failed, raised only with `onStoreError: "fail"`.
 *
 * @example
 * ```ts
 * import { RateLimiter } from "@effect-resilience/core"
 *
 * const error = new RateLimiter.RateLimiterStoreError({ policy: "api", key: "api", detail: "connection refused" })
 * error.message // 'Rate limiter "api" (key "api") could not reach its store: connection refused'
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export class RateLimiterStoreError extends Schema.TaggedError<RateLimiterStoreError>()("RateLimiterStoreError", {
  policy: Schema.String,
  key: Schema.String,
  detail: Schema.String,
  cause: Schema.optional(Schema.Defect())
}) {
  override get message(): string {
    return `Rate limiter "${this.policy}" (key "${this.key}") could not reach its store: ${this.detail}`
  }
}

/**
 * Why a limiter turned a call away.
 *
 * @example
 * ```ts
 * import type { RateLimiter } from "@effect-resilience/core"
 *
 * const overLimit = (reason: RateLimiter.RateLimiterErrorReason) => reason._tag === "RateLimited"
 * ```
 *
 * @since 0.2.0
 * @category errors
 */
export type RateLimiterErrorReason = RateLimited | RateLimiterStoreError

/**
 * The schema of a `RateLimiterError`'s reason.
 *
 * @example
 * ```ts
 * import { RateLimiter } from "@effect-resilience/core"
 * import { Schema } from "effect"
 *
 * const isReason = Schema.is(RateLimiter.RateLimiterErrorReason)
 * ```
 *
 * @since 0.2.0
 * @category errors
 */
export const RateLimiterErrorReason: Schema.Union<readonly [typeof RateLimited, typeof RateLimiterStoreError]> = Schema
  .Union([RateLimited, RateLimiterStoreError])

/**
 * The one error a limiter adds to a call: `Effect.catchTag("RateLimiterError", f)` handles every rejection,
 * `Effect.catchReason("RateLimiterError", "RateLimited", f)` one kind. It is a local rejection: a circuit breaker
 * outside the limiter never counts it. `policy`, `key` and `retryAfter` read the reason's (`retryAfter` is zero for
 * a store failure), so a retry policy waits out a rate limit.
 *
 * @example
 * ```ts
 * import { RateLimiter } from "@effect-resilience/core"
 * import { Duration, Effect } from "effect"
 *
 * const call = (limiter: RateLimiter.RateLimiter) =>
 *   Effect.succeed("ok").pipe(
 *     limiter.protect,
 *     Effect.catchReason("RateLimiterError", "RateLimited", (reason) =>
 *       Effect.succeed(`busy for ${Duration.format(reason.retryAfter)}`)),
 *     Effect.catchTag("RateLimiterError", (error) => Effect.succeed(`limiter down: ${error.message}`))
 *   )
 * ```
 *
 * @since 0.2.0
 * @category errors
 */
export class RateLimiterError extends Schema.TaggedError<RateLimiterError>()("RateLimiterError", {
  reason: RateLimiterErrorReason
}) {
  /** A local rejection: a circuit breaker outside the limiter never counts it. */
  readonly [LocalRejectionTypeId]: LocalRejectionTypeId = LocalRejectionTypeId

  /** The limiter's name. */
  get policy(): string {
    return this.reason.policy
  }

  /** The store key. */
  get key(): string {
    return this.reason.key
  }

  /** How long to wait before the call can be admitted: the rate limit's, zero for a store failure. */
  get retryAfter(): Duration.Duration {
    return this.reason._tag === "RateLimited" ? this.reason.retryAfter : Duration.zero
  }

  override get message(): string {
    return this.reason.message
  }
}

/**
 * What a limiter adds to a call's error channel: `RateLimiterError`.
 *
 * @example
 * ```ts
 * import type { RateLimiter } from "@effect-resilience/core"
 *
 * const retryable = (e: RateLimiter.Rejection) => e.reason._tag === "RateLimited"
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export type Rejection = RateLimiterError

// -----------------------------------------------------------------------------
// stores
// -----------------------------------------------------------------------------

/**
 * Effect's store service (`effect/persistence/RateLimiter.RateLimiterStore`), which `make` requires: provide
 * `layerStoreMemory`, or Effect's `layerStoreRedis` to share budgets between processes.
 *
 * @example
 * ```ts
 * import { RateLimiter } from "@effect-resilience/core"
 * import { Effect, Layer } from "effect"
 * import { RateLimiter as EffectRateLimiter } from "effect/persistence"
 *
 * // A store that is down, to test what `onStoreError` does.
 * const StoreDown = Layer.succeed(RateLimiter.RateLimiterStore, {
 *   fixedWindow: () => Effect.fail(storeDown),
 *   tokenBucket: () => Effect.fail(storeDown),
 *   adaptiveConsume: () => Effect.fail(storeDown),
 *   adaptiveFeedback: () => Effect.fail(storeDown)
 * })
 * const storeDown = new EffectRateLimiter.RateLimiterError({
 *   reason: new EffectRateLimiter.RateLimitStoreError({ message: "connection refused" })
 * })
 * ```
 *
 * @since 0.1.0
 * @category stores
 */
export const RateLimiterStore: typeof EffectRateLimiter.RateLimiterStore = EffectRateLimiter.RateLimiterStore

/**
 * @example
 * ```ts
 * import type { RateLimiter } from "@effect-resilience/core"
 * import type { Layer } from "effect"
 *
 * type StoreLayer = Layer.Layer<RateLimiter.RateLimiterStore>
 * ```
 *
 * @since 0.1.0
 * @category stores
 */
export type RateLimiterStore = EffectRateLimiter.RateLimiterStore

/**
 * Effect's in-memory store (`effect/persistence/RateLimiter.layerStoreMemory`): budgets held in this process.
 * Each time the layer is built it starts empty.
 *
 * @example
 * ```ts
 * import { RateLimiter } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * const program = RateLimiter.make({ name: "api", limit: 10, window: "1 second" }).pipe(
 *   Effect.scoped,
 *   Effect.provide(RateLimiter.layerStoreMemory)
 * )
 * ```
 *
 * @since 0.1.0
 * @category stores
 */
export const layerStoreMemory: Layer.Layer<RateLimiterStore> = EffectRateLimiter.layerStoreMemory

// -----------------------------------------------------------------------------
// validation
// -----------------------------------------------------------------------------

const OptionsSchema = Schema.Struct({
  name: Schema.NonEmptyString,
  limit: PositiveInt,
  window: DurationInput({ positive: true }),
  algorithm: Schema.Literals(["fixed-window", "token-bucket"]),
  key: Schema.optional(Schema.NonEmptyString),
  onExceeded: Schema.Literals(["fail", "delay"]),
  tokens: Schema.Finite.check(Schema.isGreaterThan(0)),
  onStoreError: Schema.Literals(["allow", "fail"])
}).check(Schema.makeFilter((o: { readonly tokens: number; readonly limit: number }) =>
  // More tokens than the limit could never be admitted (Effect rejects them outright).
  o.tokens <= o.limit
    ? undefined
    : { path: ["tokens"], issue: `Expected at most the limit (${o.limit}), got ${o.tokens}` }
))

interface Config {
  readonly name: string
  readonly key: string
  readonly limit: number
  readonly window: Duration.Duration
  readonly algorithm: Algorithm
  readonly onExceeded: "fail" | "delay"
  readonly tokens: number
  readonly onStoreError: "allow" | "fail"
}

const resolve = (options: Options): Effect.Effect<Config, PolicyConfigError> => {
  const raw = {
    name: options.name,
    limit: options.limit,
    window: options.window,
    algorithm: orDefault(options.algorithm, "fixed-window"),
    key: options.key,
    onExceeded: orDefault(options.onExceeded, "fail"),
    tokens: orDefault(options.tokens, 1),
    onStoreError: orDefault(options.onStoreError, "allow")
  }
  return decode(OptionsSchema, raw, { kind: "rate limiter", policy: String(options.name) }).pipe(
    Effect.map((): Config => ({ ...raw, key: raw.key ?? raw.name, window: Duration.millis(millisOf(raw.window)) }))
  )
}

// -----------------------------------------------------------------------------
// constructors
// -----------------------------------------------------------------------------

/**
 * Makes a rate limiter on the `RateLimiterStore` in context. Options are validated with Schema; a bad value
 * fails with `PolicyConfigError`.
 *
 * **Metrics** (Effect `Metric`s, attribute `policy`, read when exported so the call path pays nothing):
 * `rate_limiter_calls_total`, `rate_limiter_rejections_total`, `rate_limiter_delayed_total` and
 * `rate_limiter_store_errors_total`.
 *
 * @example
 * ```ts
 * import { RateLimiter } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * const program = Effect.gen(function*() {
 *   // Smooth a batch job to 100 calls a minute: calls over the limit wait for their turn.
 *   const limiter = yield* RateLimiter.make({
 *     name: "crm",
 *     limit: 100,
 *     window: "1 minute",
 *     algorithm: "token-bucket",
 *     onExceeded: "delay"
 *   })
 *   return yield* Effect.forEach([1, 2, 3], (id) => Effect.succeed(id).pipe(limiter.protect))
 * }).pipe(Effect.scoped, Effect.provide(RateLimiter.layerStoreMemory))
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: (
  options: Options
) => Effect.Effect<RateLimiter, PolicyConfigError, Scope.Scope | RateLimiterStore> = Effect.fnUntraced(
  function*(options: Options) {
    const config = yield* resolve(options)
    const { algorithm, limit, name, onExceeded, tokens, window } = config
    const limiter = yield* EffectRateLimiter.make
    const allowOnStoreError = config.onStoreError === "allow"
    const totals = { calls: 0, admitted: 0, rejected: 0, delayed: 0, storeErrors: 0 }

    const onConsumed = (result: EffectRateLimiter.ConsumeResult): Effect.Effect<void> => {
      totals.calls++
      totals.admitted++
      // In "fail" mode the delay is always zero; in "delay" mode it is the wait for the reserved slot.
      if (Duration.isZero(result.delay)) return Effect.void
      totals.delayed++
      return Effect.sleep(result.delay)
    }

    const overLimit = (key: string, retryAfter: Duration.Duration): Effect.Effect<never, Rejection> => {
      totals.calls++
      totals.rejected++
      return Effect.fail(rejectOverLimit(name, key, limit, window, Duration.toMillis(retryAfter)))
    }

    const onRefused = (error: EffectRateLimiter.RateLimiterError, key: string): Effect.Effect<void, Rejection> => {
      const reason = error.reason
      if (reason._tag === "RateLimitExceeded") return overLimit(key, reason.retryAfter)
      totals.calls++
      totals.storeErrors++
      if (allowOnStoreError) {
        // Fail open: a store outage must not become an outage of the dependency.
        totals.admitted++
        return Effect.void
      }
      return Effect.fail(
        new RateLimiterError({
          reason: new RateLimiterStoreError({
            policy: name,
            key,
            detail: reason.message,
            ...(reason.cause === undefined ? {} : { cause: reason.cause })
          })
        })
      )
    }

    const take = (key: string, mode: "fail" | "delay") =>
      limiter.consume({ key, limit, window, algorithm, onExceeded: mode, tokens })
    const consume = (key: string, mode: "fail" | "delay"): Effect.Effect<void, Rejection> =>
      Effect.matchEffect(take(key, mode), {
        onSuccess: onConsumed,
        onFailure: (error) => onRefused(error, key)
      })
    // A fixed window's waiting calls reckon their slots from the window's length, which each reservation lengthens
    // by its share and an admission in "fail" mode does not: a hedge admitted so would be a call they missed (the
    // next caller ran in its window) or a window opened whole (the next caller waited for it to end). So a hedge
    // looks for room without taking any, then reserves as they do; if another call took the room in between, it
    // keeps the later slot it got, as an interrupted waiter does, and is refused.
    const hedgeInWindow = (key: string): Effect.Effect<void, Rejection> =>
      Effect.matchEffect(limiter.consume({ key, limit, window, algorithm, onExceeded: "fail", tokens: 0 }), {
        onFailure: (error) => onRefused(error, key),
        onSuccess: (room) =>
          room.remaining < tokens
            ? overLimit(key, room.resetAfter)
            : Effect.matchEffect(take(key, "delay"), {
              onFailure: (error) => onRefused(error, key),
              onSuccess: (reserved) =>
                Duration.isZero(reserved.delay) ? onConsumed(reserved) : overLimit(key, reserved.delay)
            })
      })
    // An admission is a description: built once for the default key and run by every call. A hedged attempt never
    // waits for a token: without one now it is refused, and takes none (see `HedgedAttempt`).
    const admission = (key: string): Effect.Effect<void, Rejection> => {
      const asConfigured = consume(key, onExceeded)
      if (onExceeded === "fail") return asConfigured
      const asHedge = algorithm === "fixed-window" ? hedgeInWindow(key) : consume(key, "fail")
      return Effect.flatMap(HedgedAttempt, (hedged) => hedged ? asHedge : asConfigured)
    }
    const defaultAdmission = admission(config.key)

    const protect = <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E | Rejection, R> =>
      Effect.andThen(defaultAdmission, self)
    const protectKey: RateLimiter["protectKey"] = dual(
      2,
      <A, E, R>(self: Effect.Effect<A, E, R>, key: string): Effect.Effect<A, E | Rejection, R> =>
        Effect.andThen(admission(`${config.key}:${key}`), self)
    )

    const windowMillis = Duration.toMillis(window)
    const rateLimiter: RateLimiter = {
      [TypeId]: TypeId,
      name,
      protect,
      protectKey,
      snapshot: Effect.sync((): Snapshot => ({
        name,
        key: config.key,
        algorithm,
        limit,
        windowMillis,
        tokens,
        onExceeded,
        onStoreError: config.onStoreError,
        ...totals
      }))
    }

    // Pull-based metrics: the registry reads these counters when it exports, so calls never touch a metric.
    const by = { policy: name }
    yield* metrics.register([
      metrics.counter("rate_limiter_calls_total", "Calls through the limiter", by, () => totals.calls),
      metrics.counter("rate_limiter_rejections_total", "Calls rejected over the limit", by, () => totals.rejected),
      metrics.counter("rate_limiter_delayed_total", "Calls that waited for a slot", by, () => totals.delayed),
      metrics.counter(
        "rate_limiter_store_errors_total",
        "Store failures (the call ran or failed, per onStoreError)",
        by,
        () => totals.storeErrors
      )
    ])
    return rateLimiter
  }
)

// Rejections are built without capturing a stack: a fast-fail path must stay fast, and the stack of a rejection
// only says where the limiter is, which its fields already do.
const rejectOverLimit = (
  policy: string,
  key: string,
  limit: number,
  window: Duration.Duration,
  retryAfterMillis: number
): RateLimiterError =>
  stackless(() =>
    new RateLimiterError({
      reason: new RateLimited({
        policy,
        key,
        limit,
        window,
        // Effect's limiter keeps nanoseconds, so a third of a second comes back as 999.999999 ms; rounded up, a
        // caller that waits `retryAfter` out is admitted.
        retryAfter: Duration.millis(Math.ceil(retryAfterMillis))
      }, { disableChecks: true })
    }, { disableChecks: true })
  )

/**
 * Provides `RateLimiter` made with `options`, on the `RateLimiterStore` the layer is given.
 *
 * @example
 * ```ts
 * import { RateLimiter } from "@effect-resilience/core"
 * import { Layer } from "effect"
 *
 * const LimiterLive = RateLimiter.layer({ name: "api", limit: 100, window: "1 minute" }).pipe(
 *   Layer.provide(RateLimiter.layerStoreMemory)
 * )
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options): Layer.Layer<RateLimiter, PolicyConfigError, RateLimiterStore> =>
  Layer.effect(RateLimiter, make(options))
