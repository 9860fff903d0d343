/**
 * Retries for calls that fail transiently: backoff schedules with a base, a cap and a number of retries, jitter
 * driven by Effect's seedable `Random`, and a retry policy that honours `Retry-After`, stops early on errors not
 * worth retrying, and shares a retry budget so that retries cannot multiply load during an outage.
 *
 * The backoff constructors and jitter combinators return plain `Schedule`s: they work with `Effect.retry` as well
 * as with the policy. The policy (`make`) adds what a bare `Effect.retry` lacks: the error decides, a budget
 * caps retries, and every retry and give-up is an event, a metric and a count in `snapshot`.
 *
 * **Details**
 *
 * - Only typed failures are retried. A defect is never retried, and an interruption (of the attempt or of the
 *   caller) propagates at once: no event, no further attempt.
 * - `while` decides per typed error. By default (`isRetryable`) every typed error is retried except the ones that
 *   cannot get better by waiting: a forced-open circuit, a `RetryBudgetExhausted` from a nested policy and
 *   a `PolicyConfigError`. A `while` you give replaces that default; combine the two with `&&` to keep it.
 * - Each retry waits the schedule's next delay. The schedule's input is the error, and the number of retries is
 *   the number of schedule steps: `times: 3` is 3 retries, 4 attempts in all.
 * - `Retry-After`: when the error has a `retryAfter` field that is a `Duration` (a breaker's `CircuitBreakerError`,
 *   a rate limiter's `RateLimiterError`, your own HTTP 429 or 503 error), the retry waits at least that long: the
 *   longer of the two waits. When the `retryAfter` is the longer one and exceeds `maxRetryAfter`, is infinite, or
 *   would start the retry past `maxElapsed`, the policy gives up at once (`RetryAfterTooLong`) and fails with that
 *   error.
 * - `maxElapsed` bounds the whole call, counted from the start of its first attempt: a retry that would start
 *   past it is not made (`ScheduleDone`), so the policy never sleeps only to give up. It is measured on the
 *   monotonic time of the `Clock`, as the budget's window is: a wall clock that steps (an NTP correction) moves
 *   neither. Events' `at` and the schedule's steps read the wall clock.
 * - Budget: with `budget`, every call deposits and every retry withdraws. A retry the budget cannot pay for is not
 *   made: the call fails at once with `RetryBudgetExhausted`, which carries the last error as `cause`. A caller
 *   interrupted while it waits to retry gets the retry back: it was never made, so it neither spends the budget nor
 *   counts in `retries`.
 * - Give-ups fail with the last attempt's own failure, unchanged, except `BudgetExhausted`.
 * - `isFailureResult` retries success values too (an HTTP 503 returned as a value): such a value is retried as a
 *   failure would be (`while` is not asked: the classifier already said it is worth another try), and when the
 *   policy gives up, for whatever reason, the call succeeds with the last value. A value classified by an enclosing
 *   `Policy` is retried the same way. Events show such a value's `errorTag` as `"FailureResult"`.
 * - Cost: a call that succeeds at once costs a counter and one error handler (and a clock read when the policy has
 *   a budget or `maxElapsed`); the schedule is only stepped, and the retry loop only built, after a failure.
 *
 * **Gotchas**
 *
 * - Put the retry inside a circuit breaker (`call.pipe(retry.protect, breaker.protect)`): the breaker then sees
 *   one outcome per call, not one per attempt, and an open circuit rejects the whole call at once instead of
 *   each attempt. A retry outside the breaker would retry an open circuit after its `retryAfter`, which holds
 *   callers for the whole open time (bound that with `maxRetryAfter`); a forced-open one is never retried.
 * - The policy cannot see limits inside the schedule (`Schedule.upTo({ duration })`): they end the schedule when
 *   stepped, after the failure. Use `maxElapsed` for a time budget the policy checks before sleeping.
 * - The schedule takes any input (`Schedule<unknown, unknown>`): decide on the error with `while`, not with a
 *   typed `Schedule.while`.
 * - The backoff constructors check their options when called and throw a `PolicyConfigError` for a bad value,
 *   as `Schedule.exponential` throws for a bad duration: they are meant to be called with constants.
 *
 * **Example** (Retrying 503s with capped, jittered backoff under a shared budget)
 *
 * ```ts
 * import { Retry } from "@effect-resilience/core"
 * import { Data, Effect } from "effect"
 *
 * class HttpError extends Data.TaggedError("HttpError")<{ readonly status: number }> {}
 *
 * const program = Effect.gen(function*() {
 *   const budget = yield* Retry.budget({ ratio: 0.2, minPerSecond: 10 })
 *   const retry = yield* Retry.make({
 *     name: "inventory",
 *     // 100ms, 200ms, 400ms (each jittered down to anywhere in [0, d)), then give up.
 *     schedule: Retry.exponential({ base: "100 millis", cap: "1 second", times: 3 }).pipe(Retry.fullJitter),
 *     while: (error) => error instanceof HttpError && error.status >= 500,
 *     budget
 *   })
 *   return yield* Effect.fail(new HttpError({ status: 404 })).pipe(
 *     retry.protect, // a 404 is not retried: it fails at once
 *     Effect.catchTag("HttpError", (e) => Effect.succeed(`HTTP ${e.status}`))
 *   )
 * }).pipe(Effect.scoped)
 * ```
 *
 * @since 0.1.0
 */
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Fiber from "effect/Fiber"
import * as PubSub from "effect/PubSub"
import type * as Pull from "effect/Pull"
import * as Random from "effect/Random"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { classifying, isFailureResult, unwrapping } from "./internal/failureResult.ts"
import * as metrics from "./internal/metrics.ts"
import * as internal from "./internal/retry.ts"
import { stackless } from "./internal/stackless.ts"
import { monotonicMillis } from "./internal/timeout.ts"
import {
  decode,
  DurationInput,
  maxEventBuffer,
  millisOf,
  NonNegativeInt,
  orDefault,
  type PolicyConfigError,
  PositiveIntUpTo
} from "./PolicyConfig.ts"

/**
 * @example
 * ```ts
 * import { Retry } from "@effect-resilience/core"
 *
 * const isRetry = (u: object) => Retry.TypeId in u
 * ```
 *
 * @since 0.1.0
 * @category type IDs
 */
export const TypeId: TypeId = "~@effect-resilience/core/Retry"

/**
 * @example
 * ```ts
 * import type { Retry } from "@effect-resilience/core"
 *
 * type Id = Retry.TypeId // "~@effect-resilience/core/Retry"
 * ```
 *
 * @since 0.1.0
 * @category type IDs
 */
export type TypeId = "~@effect-resilience/core/Retry"

/**
 * @example
 * ```ts
 * import { Retry } from "@effect-resilience/core"
 *
 * const isBudget = (u: object) => Retry.BudgetTypeId in u
 * ```
 *
 * @since 0.1.0
 * @category type IDs
 */
export const BudgetTypeId: BudgetTypeId = "~@effect-resilience/core/Retry/RetryBudget"

/**
 * @example
 * ```ts
 * import type { Retry } from "@effect-resilience/core"
 *
 * type Id = Retry.BudgetTypeId // "~@effect-resilience/core/Retry/RetryBudget"
 * ```
 *
 * @since 0.1.0
 * @category type IDs
 */
export type BudgetTypeId = "~@effect-resilience/core/Retry/RetryBudget"

// -----------------------------------------------------------------------------
// errors
// -----------------------------------------------------------------------------

/**
 * A retry the shared budget could not pay for: the call fails at once instead. `calls` and `retries` are the
 * budget's figures for its window when it refused; `cause` is the last attempt's error.
 *
 * @example
 * ```ts
 * import { Retry } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * // Without retries to spare, answer "unknown" rather than fail.
 * const price = (retry: Retry.Retry) =>
 *   Effect.succeed(42).pipe(
 *     retry.protect,
 *     Effect.catchTag("RetryBudgetExhausted", (e) => Effect.logWarning(e.message).pipe(Effect.as("unknown")))
 *   )
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export class RetryBudgetExhausted extends Schema.TaggedError<RetryBudgetExhausted>()("RetryBudgetExhausted", {
  policy: Schema.String,
  /** Attempts made before the budget refused the next one. */
  attempts: Schema.Number,
  /** First attempts in the budget's window. */
  calls: Schema.Number,
  /** Retries in the budget's window. */
  retries: Schema.Number,
  cause: Schema.Defect()
}) {
  override get message(): string {
    return `Retry policy "${this.policy}" gave up after ${this.attempts} attempt${
      this.attempts === 1 ? "" : "s"
    }: the retry budget is spent (${this.retries} retries for ${this.calls} calls in its window)`
  }
}

// -----------------------------------------------------------------------------
// models
// -----------------------------------------------------------------------------

/**
 * Why a call failed out of the policy.
 *
 * - `ScheduleDone`: the schedule ended, or the next retry would start past `maxElapsed`.
 * - `NotRetryable`: a defect, or a typed error `while` rejected.
 * - `RetryAfterTooLong`: the error's `retryAfter` was longer than `maxRetryAfter`, infinite, or past `maxElapsed`.
 * - `BudgetExhausted`: the retry budget was spent.
 *
 * @example
 * ```ts
 * import type { Retry } from "@effect-resilience/core"
 *
 * const alarming = (reason: Retry.GiveUpReason) => reason === "BudgetExhausted" || reason === "ScheduleDone"
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type GiveUpReason = "ScheduleDone" | "NotRetryable" | "RetryAfterTooLong" | "BudgetExhausted"

/**
 * The give-up reasons, for schemas and iteration.
 *
 * @example
 * ```ts
 * import { Retry } from "@effect-resilience/core"
 *
 * Retry.giveUpReasons.includes("BudgetExhausted") // true
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export const giveUpReasons: ReadonlyArray<GiveUpReason> = [
  "ScheduleDone",
  "NotRetryable",
  "RetryAfterTooLong",
  "BudgetExhausted"
]

/**
 * What a policy publishes on `events`. `attempt` counts attempts from 1 (the first call):
 *
 * - `Retrying`: attempt `attempt` failed with `errorTag`; the next starts after `delay`;
 * - `GaveUp`: the call fails after `attempt` attempts, for `reason`;
 * - `Succeeded`: attempt `attempt` (2 or more) succeeded. A call that succeeds at once publishes nothing.
 *
 * `at` is epoch milliseconds, from `Clock`.
 *
 * @example
 * ```ts
 * import type { Retry } from "@effect-resilience/core"
 * import { Duration } from "effect"
 *
 * const describe = (event: Retry.RetryEvent) =>
 *   event._tag === "Retrying"
 *     ? `${event.policy}: attempt ${event.attempt} failed (${event.errorTag}), retrying in ${Duration.format(event.delay)}`
 *     : event._tag === "GaveUp"
 *     ? `${event.policy}: gave up after ${event.attempt} attempts (${event.reason})`
 *     : `${event.policy}: succeeded on attempt ${event.attempt}`
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type RetryEvent =
  | {
    readonly _tag: "Retrying"
    readonly policy: string
    readonly attempt: number
    readonly delay: Duration.Duration
    readonly errorTag: string
    readonly at: number
  }
  | {
    readonly _tag: "GaveUp"
    readonly policy: string
    readonly attempt: number
    readonly reason: GiveUpReason
    readonly errorTag: string
    readonly at: number
  }
  | {
    readonly _tag: "Succeeded"
    readonly policy: string
    readonly attempt: number
    readonly at: number
  }

/**
 * A retry budget's figures for its current window, as plain data.
 *
 * @example
 * ```ts
 * import type { Retry } from "@effect-resilience/core"
 *
 * const retryShare = (b: Retry.BudgetSnapshot) => b.calls === 0 ? 0 : b.retries / b.calls
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface BudgetSnapshot {
  readonly ratio: number
  readonly minPerSecond: number
  readonly windowMillis: number
  /** First attempts in the window. */
  readonly calls: number
  /** Retries in the window. */
  readonly retries: number
  /** Retries the budget would still pay for now. */
  readonly available: number
}

/**
 * A policy's counts since it was made, as plain serializable data.
 *
 * @example
 * ```ts
 * import type { Retry } from "@effect-resilience/core"
 *
 * const retriesPerCall = (s: Retry.Snapshot) => s.calls === 0 ? 0 : s.retries / s.calls
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Snapshot {
  readonly name: string
  /** Calls made through the policy (first attempts). */
  readonly calls: number
  /** Retries made. */
  readonly retries: number
  /** Calls that succeeded after at least one retry. */
  readonly succeededAfterRetry: number
  /** Calls that failed out of the policy, by reason. */
  readonly giveUps: { readonly [Reason in GiveUpReason]: number }
  /** Retries the budget refused (each ends its call with `RetryBudgetExhausted`). */
  readonly budgetRejections: number
  /** The shared budget's figures, when the policy has one. */
  readonly budget: BudgetSnapshot | null
}

/**
 * A retry budget: caps retries to a share of recent calls, shared by every policy and caller given it.
 *
 * @example
 * ```ts
 * import { Retry } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * // One budget for every policy that calls the same backend.
 * const policies = Effect.gen(function*() {
 *   const budget = yield* Retry.budget({ ratio: 0.1 })
 *   const schedule = Retry.constant({ delay: "50 millis", times: 2 })
 *   const reads = yield* Retry.make({ name: "reads", schedule, budget })
 *   const writes = yield* Retry.make({ name: "writes", schedule, budget })
 *   return { reads, writes }
 * })
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface RetryBudget {
  readonly [BudgetTypeId]: BudgetTypeId
  /** The budget's figures for its current window. */
  readonly snapshot: Effect.Effect<BudgetSnapshot>
}

/**
 * Options for `budget`. All are optional.
 *
 * @example
 * ```ts
 * import type { Retry } from "@effect-resilience/core"
 *
 * const options: Retry.BudgetOptions = { ratio: 0.1, minPerSecond: 5, window: "30 seconds" }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface BudgetOptions {
  /** Retries allowed per call in the window. Default: 0.2. */
  readonly ratio?: number | undefined
  /** Retries allowed per second whatever the traffic, so that a quiet service can still retry. Default: 10. */
  readonly minPerSecond?: number | undefined
  /** How far back calls and retries count, in ten buckets. Default: 10 seconds. */
  readonly window?: Duration.Input | undefined
}

/**
 * Options for `make`. `name` and `schedule` are required.
 *
 * @example
 * ```ts
 * import { Retry } from "@effect-resilience/core"
 *
 * const options: Retry.Options<{ readonly status: number }> = {
 *   name: "payments",
 *   schedule: Retry.exponential({ base: "200 millis", cap: "5 seconds", times: 5 }).pipe(Retry.equalJitter),
 *   while: (error) => Retry.isRetryable(error) && (error as { readonly status?: number }).status !== 400,
 *   isFailureResult: (response) => response.status === 503,
 *   maxElapsed: "10 seconds",
 *   maxRetryAfter: "5 seconds"
 * }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Options<A = unknown> {
  /** Names the policy in errors, events and metrics. */
  readonly name: string
  /** The delays between attempts; its input is the error. Ending the schedule ends the retries. */
  readonly schedule: Schedule.Schedule<unknown, unknown>
  /**
   * Which typed errors are retried. Default: `isRetryable`. If it throws, the call is not retried: the caller gets
   * its error and the thrown value, both as defects (as after a finalizer that dies), and `GaveUp` says `NotRetryable`.
   */
  readonly while?: ((error: unknown) => boolean) | undefined
  /** Which success values are retried; once the policy gives up, the last one is returned. Default: none. */
  readonly isFailureResult?: ((value: A) => boolean) | undefined
  /** A retry budget, possibly shared with other policies. Default: none. */
  readonly budget?: RetryBudget | undefined
  /** No retry starts later than this after the call began. Default: no limit. */
  readonly maxElapsed?: Duration.Input | undefined
  /** The longest `retryAfter` worth waiting for. Default: any finite one. */
  readonly maxRetryAfter?: Duration.Input | undefined
  /** Subscribers that fall further behind than this lose the oldest events. Default: 1024; at most 100,000. */
  readonly eventBuffer?: number | undefined
}

/**
 * A retry policy. `Rejection` is what it adds to a call's errors: `RetryBudgetExhausted` when it has a budget,
 * nothing otherwise. `A` is what its `isFailureResult` judges: it protects effects that succeed with an `A`.
 *
 * @example
 * ```ts
 * import type { Retry } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * const fetchUser = (retry: Retry.Retry, id: string) => Effect.succeed({ id }).pipe(retry.protect)
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Retry<out Rejection = RetryBudgetExhausted, A = unknown> {
  readonly [TypeId]: TypeId
  readonly name: string
  /** Runs an effect, retrying its typed failures and classified values as the policy says: `call.pipe(protect)`. */
  readonly protect: <B extends A, E, R>(self: Effect.Effect<B, E, R>) => Effect.Effect<B, E | Rejection, R>
  /** Counts since the policy was made. */
  readonly snapshot: Effect.Effect<Snapshot>
  /** Every retry, give-up and success after retries, from subscription on. */
  readonly events: Stream.Stream<RetryEvent>
}

// -----------------------------------------------------------------------------
// schedules
// -----------------------------------------------------------------------------

// Decodes a schedule constructor's options, throwing `PolicyConfigError`: the constructor returns a `Schedule`,
// which has no error channel to fail in, and its options are constants a test would catch.
const check = <S extends Schema.Codec<unknown, unknown, never, never>>(
  schema: S,
  raw: unknown,
  constructor: string
): void => {
  Effect.runSync(decode(schema, raw, { kind: "retry schedule", policy: constructor }))
}

const capped = (
  schedule: Schedule.Schedule<Duration.Duration>,
  cap: Duration.Input | undefined
): Schedule.Schedule<Duration.Duration> => cap === undefined ? schedule : Schedule.min([schedule, Schedule.spaced(cap)])

// A cap below the base would make every delay the cap: most likely a unit mistake.
const capAtLeastBase = Schema.makeFilter((o: { readonly base: unknown; readonly cap?: unknown }) =>
  o.cap === undefined || millisOf(o.cap as Duration.Input) >= millisOf(o.base as Duration.Input)
    ? undefined
    : { path: ["cap"], issue: `Expected at least base (${millisOf(o.base as Duration.Input)} millis)` }
)

const backoffFields = {
  base: DurationInput({ positive: true }),
  cap: Schema.optional(DurationInput({ positive: true })),
  times: NonNegativeInt
}

const BackoffSchema = Schema.Struct(backoffFields).check(capAtLeastBase)

const backoffRaw = (options: {
  readonly base: Duration.Input
  readonly cap?: Duration.Input | undefined
  readonly times: number
}) => ({
  base: options.base,
  times: options.times,
  ...(options.cap === undefined ? {} : { cap: options.cap })
})

/**
 * Exponential backoff: `base`, `base * factor`, `base * factor^2`... each capped at `cap`, for `times` retries.
 * The output is the delay.
 *
 * @example
 * ```ts
 * import { Retry } from "@effect-resilience/core"
 *
 * // 100ms, 200ms, 400ms, 800ms, 1s, 1s
 * const schedule = Retry.exponential({ base: "100 millis", cap: "1 second", times: 6 })
 * ```
 *
 * @since 0.1.0
 * @category schedules
 */
export const exponential = (options: {
  readonly base: Duration.Input
  readonly cap?: Duration.Input | undefined
  /** Default: 2. */
  readonly factor?: number | undefined
  readonly times: number
}): Schedule.Schedule<Duration.Duration> => {
  const factor = orDefault(options.factor, 2)
  check(
    Schema.Struct({ ...backoffFields, factor: Schema.Finite.check(Schema.isGreaterThanOrEqualTo(1)) }).check(
      capAtLeastBase
    ),
    { ...backoffRaw(options), factor },
    "exponential"
  )
  return capped(Schedule.exponential(options.base, factor), options.cap).pipe(
    Schedule.upTo({ times: options.times })
  )
}

/**
 * Linear backoff: `base`, `2 * base`, `3 * base`... each capped at `cap`, for `times` retries. The output is the
 * delay.
 *
 * @example
 * ```ts
 * import { Retry } from "@effect-resilience/core"
 *
 * // 250ms, 500ms, 750ms, 1s
 * const schedule = Retry.linear({ base: "250 millis", times: 4 })
 * ```
 *
 * @since 0.1.0
 * @category schedules
 */
export const linear = (options: {
  readonly base: Duration.Input
  readonly cap?: Duration.Input | undefined
  readonly times: number
}): Schedule.Schedule<Duration.Duration> => {
  check(BackoffSchema, backoffRaw(options), "linear")
  const baseMillis = millisOf(options.base)
  // Effect has no linear schedule: the n-th step waits n * base.
  const steps = Schedule.fromStepWithMetadata(Effect.succeed((meta: Schedule.InputMetadata<unknown>) => {
    const delay = Duration.millis(baseMillis * meta.attempt)
    return Effect.succeed<[Duration.Duration, Duration.Duration]>([delay, delay])
  }))
  return capped(steps, options.cap).pipe(Schedule.upTo({ times: options.times }))
}

/**
 * Fibonacci backoff: `base`, `base`, `2 * base`, `3 * base`, `5 * base`... each capped at `cap`, for `times`
 * retries. The output is the delay.
 *
 * @example
 * ```ts
 * import { Retry } from "@effect-resilience/core"
 *
 * // 100ms, 100ms, 200ms, 300ms, 500ms
 * const schedule = Retry.fibonacci({ base: "100 millis", times: 5 })
 * ```
 *
 * @since 0.1.0
 * @category schedules
 */
export const fibonacci = (options: {
  readonly base: Duration.Input
  readonly cap?: Duration.Input | undefined
  readonly times: number
}): Schedule.Schedule<Duration.Duration> => {
  check(BackoffSchema, backoffRaw(options), "fibonacci")
  return capped(Schedule.fibonacci(options.base), options.cap).pipe(Schedule.upTo({ times: options.times }))
}

/**
 * The same `delay` before each of `times` retries. The output is the delay.
 *
 * @example
 * ```ts
 * import { Retry } from "@effect-resilience/core"
 *
 * const schedule = Retry.constant({ delay: "500 millis", times: 3 })
 * ```
 *
 * @since 0.1.0
 * @category schedules
 */
export const constant = (options: {
  readonly delay: Duration.Input
  readonly times: number
}): Schedule.Schedule<Duration.Duration> => {
  check(
    Schema.Struct({ delay: DurationInput({ positive: false }), times: NonNegativeInt }),
    { delay: options.delay, times: options.times },
    "constant"
  )
  return Schedule.spaced(options.delay).pipe(
    Schedule.map(({ duration }) => duration),
    Schedule.upTo({ times: options.times })
  )
}

/**
 * Decorrelated jitter (AWS): each delay is `min(cap, random_between(base, previous * 3))`, the first `previous`
 * being `base`, for `times` retries. Delays grow about threefold on average, and never in lockstep across
 * clients. The draws come from `Random` (seed it with `Random.withSeed`). The output is the delay.
 *
 * @example
 * ```ts
 * import { Retry } from "@effect-resilience/core"
 *
 * const schedule = Retry.decorrelatedJitter({ base: "100 millis", cap: "10 seconds", times: 5 })
 * ```
 *
 * @since 0.1.0
 * @category schedules
 */
export const decorrelatedJitter = (options: {
  readonly base: Duration.Input
  readonly cap: Duration.Input
  readonly times: number
}): Schedule.Schedule<Duration.Duration> => {
  check(
    Schema.Struct({
      base: DurationInput({ positive: true }),
      cap: DurationInput({ positive: true }),
      times: NonNegativeInt
    }).check(capAtLeastBase),
    { base: options.base, cap: options.cap, times: options.times },
    "decorrelatedJitter"
  )
  const base = millisOf(options.base)
  const cap = millisOf(options.cap)
  // Each run of the schedule (each call that fails) starts again from `base`.
  const steps = Schedule.fromStep(Effect.sync(() => {
    let previous = base
    return (_now: number, _input: unknown) =>
      Effect.map(Random.nextBetween(base, previous * 3), (drawn): [Duration.Duration, Duration.Duration] => {
        previous = Math.min(cap, drawn)
        const delay = Duration.millis(previous)
        return [delay, delay]
      })
  }))
  return steps.pipe(Schedule.upTo({ times: options.times }))
}

const scaledDelay = (duration: Duration.Duration, f: (millis: number, draw: number) => number) =>
  Effect.map(Random.next, (draw) => {
    const millis = Duration.toMillis(duration)
    // An infinite delay stays infinite: Infinity * 0 would be NaN.
    return Number.isFinite(millis) ? Duration.millis(f(millis, draw)) : duration
  })

/**
 * Full jitter (AWS): each delay `d` of `self` becomes a uniform draw in `[0, d)`, from `Random`. It spreads retries
 * the most, at the cost of sometimes retrying at once. The output is unchanged.
 *
 * @example
 * ```ts
 * import { Retry } from "@effect-resilience/core"
 *
 * const schedule = Retry.exponential({ base: "100 millis", cap: "5 seconds", times: 5 }).pipe(Retry.fullJitter)
 * ```
 *
 * @since 0.1.0
 * @category jitter
 */
export const fullJitter = <Output, Input, Error, Env>(
  self: Schedule.Schedule<Output, Input, Error, Env>
): Schedule.Schedule<Output, Input, Error, Env> =>
  Schedule.modifyDelay(self, ({ duration }) => scaledDelay(duration, (millis, draw) => millis * draw))

/**
 * Equal jitter (AWS): each delay `d` of `self` becomes `d / 2` plus a uniform draw in `[0, d / 2)`, from `Random`:
 * never less than half the delay. The output is unchanged.
 *
 * @example
 * ```ts
 * import { Retry } from "@effect-resilience/core"
 *
 * const schedule = Retry.linear({ base: "200 millis", times: 3 }).pipe(Retry.equalJitter)
 * ```
 *
 * @since 0.1.0
 * @category jitter
 */
export const equalJitter = <Output, Input, Error, Env>(
  self: Schedule.Schedule<Output, Input, Error, Env>
): Schedule.Schedule<Output, Input, Error, Env> =>
  Schedule.modifyDelay(self, ({ duration }) => scaledDelay(duration, (millis, draw) => millis / 2 + millis / 2 * draw))

/**
 * Effect's own proportional jitter: each delay `d` of `self` becomes a uniform draw in `[0.8 d, 1.2 d)`. It is
 * `Schedule.jittered`, here so that every jitter is in one place.
 *
 * @example
 * ```ts
 * import { Retry } from "@effect-resilience/core"
 *
 * const schedule = Retry.constant({ delay: "1 second", times: 3 }).pipe(Retry.jittered)
 * ```
 *
 * @since 0.1.0
 * @category jitter
 */
export const jittered: <Output, Input, Error, Env>(
  self: Schedule.Schedule<Output, Input, Error, Env>
) => Schedule.Schedule<Output, Input, Error, Env> = Schedule.jittered

// -----------------------------------------------------------------------------
// classification
// -----------------------------------------------------------------------------

/**
 * The default `while`: true for every error but those that waiting cannot fix, namely a forced-open circuit
 * (`CircuitBreakerError` with reason `CircuitForcedOpen`), a `RetryBudgetExhausted` (a nested policy's budget is
 * spent: retrying would multiply load) and a `PolicyConfigError`.
 *
 * @example
 * ```ts
 * import { Retry } from "@effect-resilience/core"
 * import { Data } from "effect"
 *
 * class NotFound extends Data.TaggedError("NotFound") {}
 *
 * // Keep the default exclusions, and never retry a NotFound.
 * const shouldRetry = (error: unknown) => Retry.isRetryable(error) && !(error instanceof NotFound)
 * ```
 *
 * @since 0.1.0
 * @category classification
 */
export const isRetryable = (error: unknown): boolean => {
  if (typeof error !== "object" || error === null) return true
  const e = error as { readonly _tag?: unknown; readonly reason?: { readonly _tag?: unknown } | undefined }
  switch (e._tag) {
    case "CircuitBreakerError":
      return e.reason?._tag !== "CircuitForcedOpen"
    case "RetryBudgetExhausted":
    case "PolicyConfigError":
      return false
  }
  return true
}

// -----------------------------------------------------------------------------
// constructors
// -----------------------------------------------------------------------------

// The books behind each budget, out of the public interface.
const budgetBooks = new WeakMap<RetryBudget, internal.Budget>()

const BudgetOptionsSchema = Schema.Struct({
  ratio: Schema.Finite.check(Schema.isGreaterThanOrEqualTo(0)),
  minPerSecond: Schema.Finite.check(Schema.isGreaterThanOrEqualTo(0)),
  window: DurationInput({ positive: true })
})

// Budget windows and `maxElapsed` are on the monotonic time of the Clock: a wall clock that steps (an NTP correction)
// is no time passed.
const monotonicNow = Clock.clockWith((clock) => Effect.succeed(monotonicMillis(clock)))

const budgetSnapshot = (books: internal.Budget, now: number): BudgetSnapshot => ({
  ratio: books.ratio,
  minPerSecond: books.minPerSecond,
  windowMillis: books.windowMillis,
  calls: books.calls(now),
  retries: books.retries(now),
  available: books.available(now)
})

/**
 * Makes a retry budget, to share between policies and callers: in any `window`, retries may not exceed
 * `floor(ratio * calls + minPerSecond * window seconds)`, where calls are first attempts.
 *
 * **Details**
 *
 * Calls and retries are counted in ten time buckets, aligned to multiples of `window / 10` on the monotonic time
 * of the `Clock`, so the window slides in tenths and a wall clock that steps moves nothing. Counting is O(1) per
 * call and exact under any concurrency: a thousand callers failing at once get exactly the retries the budget
 * allows.
 *
 * @example
 * ```ts
 * import { Retry } from "@effect-resilience/core"
 *
 * // At most 10% extra load from retries, plus 1 retry per second.
 * const budget = Retry.budget({ ratio: 0.1, minPerSecond: 1, window: "1 minute" })
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const budget = (options?: BudgetOptions): Effect.Effect<RetryBudget, PolicyConfigError> =>
  Effect.gen(function*() {
    const raw = {
      ratio: orDefault(options?.ratio, 0.2),
      minPerSecond: orDefault(options?.minPerSecond, 10),
      window: orDefault(options?.window, "10 seconds")
    }
    yield* decode(BudgetOptionsSchema, raw, { kind: "retry budget", policy: "budget" })
    const books = new internal.Budget(raw.ratio, raw.minPerSecond, millisOf(raw.window), yield* monotonicNow)
    const result: RetryBudget = {
      [BudgetTypeId]: BudgetTypeId,
      snapshot: Effect.map(monotonicNow, (now) => budgetSnapshot(books, now))
    }
    budgetBooks.set(result, books)
    return result
  })

const OptionsSchema = Schema.Struct({
  name: Schema.NonEmptyString,
  schedule: Schema.Unknown.check(
    Schema.makeFilter((input) => Schedule.isSchedule(input) ? undefined : "Expected a Schedule")
  ),
  while: Schema.optional(Schema.Unknown.check(
    Schema.makeFilter((input) => typeof input === "function" ? undefined : "Expected a function (error) => boolean")
  )),
  isFailureResult: Schema.optional(Schema.Unknown.check(
    Schema.makeFilter((input) => typeof input === "function" ? undefined : "Expected a function (value) => boolean")
  )),
  budget: Schema.optional(Schema.Unknown.check(
    Schema.makeFilter((input) =>
      typeof input === "object" && input !== null && budgetBooks.has(input as RetryBudget)
        ? undefined
        : "Expected a RetryBudget made by Retry.budget"
    )
  )),
  maxElapsed: Schema.optional(DurationInput({ positive: true })),
  maxRetryAfter: Schema.optional(DurationInput({ positive: false })),
  eventBuffer: PositiveIntUpTo(maxEventBuffer)
})

const giveUpsHelp = "Calls that failed out of a retry policy, by reason"

type Step = (now: number, input: unknown) => Pull.Pull<[unknown, Duration.Duration], never, unknown>

const makePolicy = Effect.fnUntraced(function*(options: Options) {
  const name = options.name
  const raw = {
    name,
    schedule: options.schedule,
    eventBuffer: orDefault(options.eventBuffer, 1024),
    ...(options.while === undefined ? {} : { while: options.while }),
    ...(options.isFailureResult === undefined ? {} : { isFailureResult: options.isFailureResult }),
    ...(options.budget === undefined ? {} : { budget: options.budget }),
    ...(options.maxElapsed === undefined ? {} : { maxElapsed: options.maxElapsed }),
    ...(options.maxRetryAfter === undefined ? {} : { maxRetryAfter: options.maxRetryAfter })
  }
  yield* decode(OptionsSchema, raw, { kind: "retry", policy: String(name) })
  const schedule = options.schedule
  const shouldRetry = options.while ?? isRetryable
  const isFailureValue = options.isFailureResult
  // Identifies the values this policy classified, so that it unwraps only its own.
  const owner = {}
  const books = options.budget === undefined ? undefined : budgetBooks.get(options.budget)
  const maxElapsed = options.maxElapsed === undefined ? Infinity : millisOf(options.maxElapsed)
  const maxRetryAfter = options.maxRetryAfter === undefined ? Infinity : millisOf(options.maxRetryAfter)
  // A call reads the clock only when something needs its start time.
  const timed = books !== undefined || maxElapsed !== Infinity

  const hub = yield* PubSub.sliding<RetryEvent>(raw.eventBuffer)
  yield* Effect.addFinalizer(() => PubSub.shutdown(hub))

  const totals = { calls: 0, retries: 0, succeededAfterRetry: 0, budgetRejections: 0 }
  const giveUps: Record<GiveUpReason, number> = {
    ScheduleDone: 0,
    NotRetryable: 0,
    RetryAfterTooLong: 0,
    BudgetExhausted: 0
  }

  const gaveUp = (reason: GiveUpReason, attempt: number, error: unknown, at: number) => {
    giveUps[reason]++
    return PubSub.publish(hub, { _tag: "GaveUp", policy: name, attempt, reason, errorTag: internal.tagOf(error), at })
  }

  // The retry machinery, entered on a call's first failure only: a call that succeeds at once never steps the
  // schedule. Each failing call gets its own run of the schedule.
  const retrying = <A, E, R>(
    self: Effect.Effect<A, E, R>,
    first: Cause.Cause<E>,
    startedAt: number
  ): Effect.Effect<A, E | RetryBudgetExhausted, R> =>
    Effect.gen(function*() {
      let cause = first
      let attempt = 1
      let step: Step | undefined
      while (true) {
        const kind = internal.classify(cause)
        if (kind === internal.INTERRUPTED) return yield* Effect.failCause(cause)
        const clock = yield* Clock.Clock
        // `now` dates the events and steps the schedule; `elapsedAt` measures the call and keeps the budget.
        const now = clock.currentTimeMillisUnsafe()
        const elapsedAt = monotonicMillis(clock)
        if (kind === internal.DEFECT) {
          yield* gaveUp("NotRetryable", attempt, Cause.squash(cause), now)
          return yield* Effect.failCause(cause)
        }
        const error = internal.errorOf(cause)
        // A classified value is retried whatever `while` says: its classifier already judged it.
        const classified = isFailureResult(error)
        let retryable = true
        if (!classified) {
          try {
            retryable = shouldRetry(error)
          } catch (defect) {
            // A bug in `while`: no retry, and the caller hears of both, as after a finalizer that dies.
            yield* gaveUp("NotRetryable", attempt, error, now)
            return yield* Effect.ensuring(Effect.failCause(cause), Effect.die(defect))
          }
        }
        if (!retryable) {
          yield* gaveUp("NotRetryable", attempt, error, now)
          return yield* Effect.failCause(cause)
        }
        if (step === undefined) step = yield* Schedule.toStep(schedule)
        const decision = yield* Effect.exit(step(now, error))
        if (decision._tag === "Failure") {
          // `Done` ends the schedule; anything else is a defect in the schedule, which propagates.
          if (decision.cause.reasons.some((reason) => reason._tag === "Fail" && Cause.isDone(reason.error))) {
            yield* gaveUp("ScheduleDone", attempt, error, now)
            return yield* Effect.failCause(cause)
          }
          return yield* Effect.failCause(decision.cause as Cause.Cause<never>)
        }
        let wait = Duration.toMillis(decision.value[1])
        const retryAfter = internal.retryAfterMillis(error)
        if (retryAfter > wait) {
          if (
            retryAfter > maxRetryAfter || retryAfter === Infinity || elapsedAt + retryAfter - startedAt > maxElapsed
          ) {
            yield* gaveUp("RetryAfterTooLong", attempt, error, now)
            return yield* Effect.failCause(cause)
          }
          wait = retryAfter
        } else if (wait === Infinity || elapsedAt + wait - startedAt > maxElapsed) {
          yield* gaveUp("ScheduleDone", attempt, error, now)
          return yield* Effect.failCause(cause)
        }
        const delay = Duration.millis(wait)
        // The retry itself: announced, waited for, then counted as it starts.
        let made = false
        const retry = Effect.andThen(
          PubSub.publish(hub, {
            _tag: "Retrying",
            policy: name,
            attempt,
            delay,
            errorTag: internal.tagOf(error),
            at: now
          }),
          Effect.andThen(
            wait > 0 ? Effect.sleep(delay) : Effect.void,
            Effect.suspend(() => {
              made = true
              totals.retries++
              return Effect.exit(self)
            })
          )
        )
        // Withdrawn last, so that only a retry that will be made spends budget. The check and the withdrawal are
        // one synchronous step: no other fiber can come between them. From the withdrawal to the retry's start, an
        // interruption (the caller gone while it waits) gives the withdrawal back: that retry is never made.
        const exit = books === undefined ? yield* retry : yield* Effect.uninterruptibleMask((restore) => {
          const receipt = books.withdraw(elapsedAt)
          if (receipt === undefined) return Effect.succeed(undefined)
          return Effect.onInterrupt(
            restore(retry),
            () =>
              made
                ? Effect.void
                : Effect.flatMap(monotonicNow, (at) => Effect.sync(() => books.refund(receipt, at)))
          )
        })
        if (exit === undefined) {
          totals.budgetRejections++
          yield* gaveUp("BudgetExhausted", attempt, error, now)
          // A classified value goes back as it is, so that its classifier returns it: it is the last outcome.
          if (classified) return yield* Effect.failCause(cause)
          return yield* Effect.fail(stackless(() =>
            new RetryBudgetExhausted({
              policy: name,
              attempts: attempt,
              calls: books!.calls(elapsedAt),
              retries: books!.retries(elapsedAt),
              cause: error
            }, { disableChecks: true })
          ))
        }
        attempt++
        if (exit._tag === "Success") {
          totals.succeededAfterRetry++
          yield* PubSub.publish(hub, { _tag: "Succeeded", policy: name, attempt, at: yield* Clock.currentTimeMillis })
          return exit.value
        }
        cause = exit.cause
      }
    })

  const begin = (fiber: Fiber.Fiber<unknown, unknown>): number => {
    totals.calls++
    if (!timed) return 0
    const startedAt = monotonicMillis(fiber.getRef(Clock.Clock))
    if (books !== undefined) books.deposit(startedAt)
    return startedAt
  }
  const afterFailure = <A, E, R>(
    again: Effect.Effect<A, E, R>,
    cause: Cause.Cause<E>,
    startedAt: number
  ): Effect.Effect<A, E | RetryBudgetExhausted, R> =>
    // An interrupted attempt propagates at once, without even entering the loop.
    internal.classify(cause) === internal.INTERRUPTED ? Effect.failCause(cause) : retrying(again, cause, startedAt)
  const run = <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E | RetryBudgetExhausted, R> =>
    Effect.withFiber((fiber) => {
      const startedAt = begin(fiber)
      return Effect.catchCause(self, (cause) => afterFailure(self, cause, startedAt))
    })
  const protect = isFailureValue === undefined
    ? run
    : <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E | RetryBudgetExhausted, R> =>
      unwrapping(run(classifying(self, isFailureValue as (value: A) => boolean, owner)), owner)

  const retry: Retry<RetryBudgetExhausted, unknown> = {
    [TypeId]: TypeId,
    name,
    protect,
    snapshot: Effect.map(monotonicNow, (now): Snapshot => ({
      name,
      calls: totals.calls,
      retries: totals.retries,
      succeededAfterRetry: totals.succeededAfterRetry,
      giveUps: { ...giveUps },
      budgetRejections: totals.budgetRejections,
      budget: books === undefined ? null : budgetSnapshot(books, now)
    })),
    events: Stream.fromPubSub(hub)
  }

  // Pull-based metrics: the registry reads these counters when it exports, so calls never touch a metric.
  const by = { policy: name }
  yield* metrics.register([
    metrics.counter("retry_calls_total", "Calls made through a retry policy (first attempts)", by, () => totals.calls),
    metrics.counter("retry_retries_total", "Retries made", by, () => totals.retries),
    ...giveUpReasons.map((reason) =>
      metrics.counter("retry_give_ups_total", giveUpsHelp, { ...by, reason }, () => giveUps[reason])
    ),
    metrics.counter(
      "retry_budget_rejections_total",
      "Retries refused by the retry budget",
      by,
      () => totals.budgetRejections
    )
  ])
  // A policy with a timeout runs the first attempt on the timeout's fiber and hands a failure over (see `Policy`).
  if (isFailureValue === undefined) internal.retriers.set(retry, { begin, afterFailure })
  return retry
})

/**
 * Makes a retry policy. Options are validated with Schema; a bad value fails with `PolicyConfigError`. Without a
 * budget, the policy adds no error to a call's (`Retry<never>`). With `isFailureResult`, it protects effects whose
 * success is what the classifier takes.
 *
 * **Metrics** (Effect `Metric`s, attribute `policy`, read when exported so the call path pays nothing):
 * `retry_calls_total`, `retry_retries_total`, `retry_give_ups_total` (by `reason`) and
 * `retry_budget_rejections_total`.
 *
 * @example
 * ```ts
 * import { Retry } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * const program = Effect.gen(function*() {
 *   const retry = yield* Retry.make({
 *     name: "search",
 *     schedule: Retry.decorrelatedJitter({ base: "50 millis", cap: "2 seconds", times: 4 }),
 *     // An empty page is retried too; if every attempt is empty, the last one is the answer.
 *     isFailureResult: (results: ReadonlyArray<string>) => results.length === 0,
 *     maxElapsed: "5 seconds"
 *   })
 *   return yield* Effect.succeed(["results"]).pipe(retry.protect)
 * }).pipe(Effect.scoped)
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: {
  <A = unknown>(
    options: Options<A> & { readonly budget?: undefined }
  ): Effect.Effect<Retry<never, A>, PolicyConfigError, Scope.Scope>
  <A = unknown>(options: Options<A>): Effect.Effect<Retry<RetryBudgetExhausted, A>, PolicyConfigError, Scope.Scope>
} =
  // The overloads are the truth: a policy fails with `RetryBudgetExhausted` only when it was given a budget.
  makePolicy as (options: Options<never>) => Effect.Effect<Retry<never, unknown>, PolicyConfigError, Scope.Scope>
