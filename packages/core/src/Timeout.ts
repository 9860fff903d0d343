/**
 * Per-attempt timeouts: an attempt that has not finished within its time is interrupted, and the caller fails with
 * a typed `TimeoutError`.
 *
 * **Details**
 *
 * - A call times out at the instant `duration` has passed since it started: it must finish in less than
 *   `duration`. One that finishes at exactly `duration`, or later, fails with `TimeoutError`, whatever its outcome,
 *   even when it finished before the timer came round to it. Deadlines are on the monotonic time of the `Clock` in
 *   the context the policy was made in (the caller's, for `timeout`), exact to the millisecond under `TestClock`.
 * - The timed-out attempt is interrupted at the deadline, and the caller gets the `TimeoutError` once that
 *   interruption is over, as with `Effect.timeout`. An attempt without slow finalizers stops at once, so the error
 *   comes at the deadline; the point of waiting is that an attempt never outlives its call, so that a retry around
 *   the timeout never runs alongside the attempt it replaces, and a bulkhead inside it holds its permit exactly as
 *   long as the attempt runs.
 * - Every attempt runs on a fiber of its own, started at once in the caller's context, and interruptible even when
 *   the caller is not (as with `Effect.timeout`). An attempt that finishes without suspending costs that fiber and
 *   nothing else: no clock read, no timer. Attempts that suspend share one timer fiber per policy, which sleeps
 *   until the earliest deadline; it runs only while such attempts are in flight, so an idle policy holds no fiber
 *   and no pending timer.
 * - Interrupting the caller interrupts the attempt (and waits for it); that is not a timeout.
 *
 * **Cancelling promise-based clients**
 *
 * Interruption stops the Effect, not a request already handed to a promise-based client. Pass the `AbortSignal`
 * that `Effect.tryPromise` (and `Effect.promise`) gives the function it calls: Effect aborts it when the attempt is
 * interrupted, so a timeout cancels the request too.
 *
 * ```ts
 * import { Effect, Schema } from "effect"
 *
 * class FetchError extends Schema.TaggedError<FetchError>()("FetchError", { cause: Schema.Defect() }) {}
 *
 * const getJson = (url: string) =>
 *   Effect.tryPromise({
 *     try: (signal) => fetch(url, { signal }).then((response) => response.json()),
 *     catch: (cause) => new FetchError({ cause })
 *   })
 * ```
 *
 * **Gotchas**
 *
 * - Declare the `signal` parameter: Effect creates the signal only for a function that takes an argument
 *   (`function.length > 0`), so `try: () => fetch(url)` and `try: (...args) => ...` get none and leave the request
 *   running.
 * - Our `TimeoutError` has the `_tag` of Effect's own `Cause.TimeoutError` (from `Effect.timeout`), so
 *   `Effect.catchTag("TimeoutError", ...)` catches both. Ours carries `operation` (the policy's name) and
 *   `duration`; tell them apart with `Timeout.isTimeoutError`.
 * - An attempt in an uninterruptible region, or with a slow finalizer, delays the `TimeoutError` until it stops.
 *
 * **Example** (Falling back when a call is slow)
 *
 * ```ts
 * import { Timeout } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * const program = Effect.gen(function*() {
 *   const timeout = yield* Timeout.make({ name: "recommendations", duration: "500 millis" })
 *   return yield* Effect.never.pipe(
 *     timeout.protect,
 *     Effect.catchTag("TimeoutError", () => Effect.succeed([]))
 *   )
 * }).pipe(Effect.scoped)
 * ```
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import { dual } from "effect/Function"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as metrics from "./internal/metrics.ts"
import { stackless } from "./internal/stackless.ts"
import * as internal from "./internal/timeout.ts"
import { decode, DurationInput, millisOf, type PolicyConfigError } from "./PolicyConfig.ts"

/**
 * @example
 * ```ts
 * import { Timeout } from "@effect-resilience/core"
 *
 * const isTimeout = (u: object) => Timeout.TypeId in u
 * ```
 *
 * @since 0.1.0
 * @category type IDs
 */
export const TypeId: TypeId = "~@effect-resilience/core/Timeout"

/**
 * @example
 * ```ts
 * import type { Timeout } from "@effect-resilience/core"
 *
 * type Id = Timeout.TypeId // "~@effect-resilience/core/Timeout"
 * ```
 *
 * @since 0.1.0
 * @category type IDs
 */
export type TypeId = "~@effect-resilience/core/Timeout"

// -----------------------------------------------------------------------------
// models
// -----------------------------------------------------------------------------

/**
 * Options for `make`.
 *
 * @example
 * ```ts
 * import type { Timeout } from "@effect-resilience/core"
 *
 * const options: Timeout.Options = { name: "search", duration: "2 seconds" }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** The operation's name, in errors and metrics. */
  readonly name: string
  /** How long an attempt may take; positive. It must finish in less. */
  readonly duration: Duration.Input
}

/**
 * A timeout policy's figures, as plain serializable data.
 *
 * @example
 * ```ts
 * import type { Timeout } from "@effect-resilience/core"
 *
 * const timeoutRate = (s: Timeout.Snapshot) => s.calls === 0 ? 0 : s.timeouts / s.calls
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Snapshot {
  readonly name: string
  readonly durationMillis: number
  /** Calls started. */
  readonly calls: number
  /** Calls that failed with `TimeoutError`. */
  readonly timeouts: number
  /** Calls started and not finished: running, or being interrupted after their deadline. */
  readonly inFlight: number
}

/**
 * A timeout policy. See the module docs for the semantics.
 *
 * @example
 * ```ts
 * import type { Timeout } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * const search = (timeout: Timeout.Timeout, query: string) =>
 *   Effect.succeed([query]).pipe(timeout.protect)
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Timeout {
  readonly [TypeId]: TypeId
  readonly name: string
  readonly duration: Duration.Duration
  /** Runs an effect with the policy's timeout. Use it directly or as `effect.pipe(timeout.protect)`. */
  readonly protect: <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E | TimeoutError, R>
  readonly snapshot: Effect.Effect<Snapshot>
}

// -----------------------------------------------------------------------------
// errors
// -----------------------------------------------------------------------------

/**
 * An attempt at `operation` did not finish in less than `duration`, and was interrupted.
 *
 * Its `_tag` is also the tag of Effect's `Cause.TimeoutError`: see `isTimeoutError`.
 *
 * @example
 * ```ts
 * import { Timeout } from "@effect-resilience/core"
 * import { Duration } from "effect"
 *
 * const error = new Timeout.TimeoutError({ operation: "search", duration: Duration.seconds(2) })
 * error.message // 'Operation "search" timed out after 2s'
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export class TimeoutError extends Schema.TaggedError<TimeoutError>()("TimeoutError", {
  operation: Schema.String,
  duration: Schema.DurationFromMillis
}) {
  override get message(): string {
    return `Operation "${this.operation}" timed out after ${Duration.format(this.duration)}`
  }
}

/**
 * Tells our `TimeoutError` from anything else, Effect's `Cause.TimeoutError` included.
 *
 * @example
 * ```ts
 * import { Timeout } from "@effect-resilience/core"
 * import { Cause, Duration } from "effect"
 *
 * Timeout.isTimeoutError(new Timeout.TimeoutError({ operation: "db", duration: Duration.seconds(1) })) // true
 * Timeout.isTimeoutError(new Cause.TimeoutError()) // false
 * ```
 *
 * @since 0.1.0
 * @category guards
 */
export const isTimeoutError = (u: unknown): u is TimeoutError => u instanceof TimeoutError

// Built where calls time out, which under an outage is every call: no stack, which would only say where the timer is.
const makeError = (operation: string, duration: Duration.Duration) => (): TimeoutError =>
  stackless(() => new TimeoutError({ operation, duration }, { disableChecks: true }))

// -----------------------------------------------------------------------------
// constructors
// -----------------------------------------------------------------------------

const OptionsSchema = Schema.Struct({
  name: Schema.NonEmptyString,
  duration: DurationInput({ positive: true })
})

/**
 * Makes a timeout policy. Options are validated with Schema; a bad value fails with `PolicyConfigError`.
 *
 * **Metrics** (Effect `Metric`s, attribute `policy`, read when exported so the call path pays nothing):
 * `timeout_calls_total`, `timeout_timeouts_total` and `timeout_in_flight`.
 *
 * @example
 * ```ts
 * import { Timeout } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * const program = Effect.gen(function*() {
 *   const timeout = yield* Timeout.make({ name: "search", duration: "2 seconds" })
 *   return yield* Effect.succeed(["result"]).pipe(timeout.protect)
 * }).pipe(Effect.scoped)
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: (options: Options) => Effect.Effect<Timeout, PolicyConfigError, Scope.Scope> = Effect.fnUntraced(
  function*(options: Options) {
    yield* decode(OptionsSchema, { name: options.name, duration: options.duration }, {
      kind: "timeout",
      policy: String(options.name)
    })
    const name = options.name
    const millis = millisOf(options.duration)
    const duration = Duration.millis(millis)
    // The timer runs in the context the policy was made in; its Clock measures every deadline.
    const context = yield* Effect.context<never>()
    const limiter = new internal.Limiter(
      yield* Clock.clockWith(Effect.succeed),
      context,
      millis,
      makeError(name, duration)
    )

    const by = { policy: name }
    yield* metrics.register([
      metrics.counter("timeout_calls_total", "Calls started", by, () => limiter.calls),
      metrics.counter("timeout_timeouts_total", "Calls that timed out", by, () => limiter.timeouts),
      metrics.gauge("timeout_in_flight", "Calls started and not finished", by, () => limiter.inFlight)
    ])

    const timeout: Timeout = {
      [TypeId]: TypeId,
      name,
      duration,
      protect: <A, E, R>(self: Effect.Effect<A, E, R>) => limiter.run<A, E, R, TimeoutError>(self),
      snapshot: Effect.sync((): Snapshot => ({
        name,
        durationMillis: millis,
        calls: limiter.calls,
        timeouts: limiter.timeouts,
        inFlight: limiter.inFlight
      }))
    }
    internal.limiters.set(timeout, limiter)
    return timeout
  }
)

// -----------------------------------------------------------------------------
// combinators
// -----------------------------------------------------------------------------

// Parsing "5 seconds" costs more than the rest of a call that finishes at once, and a call site passes the same
// input every time.
let lastInput: Duration.Input | undefined
let lastMillis = 0
const millisOfInput = (input: Duration.Input): number => {
  if (input !== lastInput) {
    lastMillis = Math.max(0, Duration.toMillis(Duration.fromInputUnsafe(input)))
    lastInput = input
  }
  return lastMillis
}

/**
 * Runs `self` with a timeout of `duration`, failing with a `TimeoutError` for `operation`, without a policy (and
 * without metrics). The semantics are the policy's; an infinite duration never times out, a negative one is zero.
 *
 * @example
 * ```ts
 * import { Timeout } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * const slow = Effect.sleep("1 minute").pipe(Effect.as("done"))
 *
 * const piped = slow.pipe(Timeout.timeout("5 seconds", "report"))
 * const direct = Timeout.timeout(slow, "5 seconds", "report")
 * ```
 *
 * @since 0.1.0
 * @category combinators
 */
export const timeout: {
  (
    duration: Duration.Input,
    operation: string
  ): <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E | TimeoutError, R>
  <A, E, R>(self: Effect.Effect<A, E, R>, duration: Duration.Input, operation: string): Effect.Effect<
    A,
    E | TimeoutError,
    R
  >
} = dual(
  3,
  <A, E, R>(self: Effect.Effect<A, E, R>, duration: Duration.Input, operation: string) => {
    const millis = millisOfInput(duration)
    if (millis === Infinity) return self
    return Effect.callback<A, E | TimeoutError, R>((resume) => {
      const caller = Fiber.getCurrent()!
      const fiber = internal.start(caller.context, self)
      const exit = fiber.pollUnsafe()
      if (exit !== undefined) return resume(exit)
      // Without a policy, each call that suspends gets a timer of its own, on the caller's Clock.
      const error = makeError(operation, Duration.millis(millis))
      return new internal.Limiter(caller.getRef(Clock.Clock), caller.context, millis, error).wait(fiber, resume)
    })
  }
)
