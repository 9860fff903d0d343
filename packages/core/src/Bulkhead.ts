/**
 * Bulkheads: at most N calls to a dependency at once, a bounded FIFO queue for the next ones, and a typed rejection
 * for the rest, so that one slow dependency cannot take every fiber, connection or socket with it.
 *
 * **Details**
 *
 * - Admission: a call runs at once while fewer than `limit` calls run and nobody waits. Otherwise it joins the
 *   queue if fewer than `maxQueue` callers wait (default 0: no queue), and fails at once with `BulkheadFull`
 *   (`reason: "QueueFull"`) if not.
 * - Fairness: waiters are admitted strictly in arrival order. A finishing call hands its permit straight to the
 *   first waiter, which resumes at once, and a newcomer never overtakes the queue.
 * - `maxWait` (default: no limit): a waiter that has waited `maxWait` fails with `BulkheadFull`
 *   (`reason: "WaitTimeout"`). The deadline is inclusive: a permit freed exactly `maxWait` after the caller queued
 *   is not given to it, so a call admitted from the queue always waited strictly less than `maxWait`. Waits and
 *   call durations are on the monotonic time of the `Clock`: a wall clock that steps (an NTP correction) moves no
 *   deadline, and makes no call slow or fast.
 * - `retryAfter` on a rejection is a hint: about when a running call frees a permit, the moving average of recent
 *   call durations (each timed call weighs 1/5), rounded to the millisecond; 0 before any call has finished.
 *   With a fixed limit, a call admitted at once is timed when it is the 1st, 9th, 17th... call admitted (one in 8:
 *   reading the clock is a third of the admission cost), and a call admitted from the queue always is (its admission
 *   read the clock already); with an adaptive limit every call is. Interrupted calls are not counted.
 * - Interruption: an interrupted waiter leaves the queue and never takes a permit; an interrupted call gives its
 *   permit back. A waiter interrupted just as it was granted a permit gives the permit on to the next waiter.
 * - Runs: a protected effect can run again (a retry), on several fibers at once, or nested in itself; each run
 *   takes a permit of its own and gives it back when that run ends (so a run nested in itself holds two), never
 *   when another run of the same effect ends.
 * - Adaptive limit (`adaptive`), additive increase / multiplicative decrease: after each call, the limit grows by
 *   `increaseBy` (default 1) if the call succeeded within `latencyTarget` and the limit was in use when it was
 *   admitted (it took the last permit, or waited for one); it becomes `floor(limit * decreaseFactor)` (default 0.9)
 *   if the call died, failed with a `TimeoutError` or another error `isFailure` accepts (by default, any), or
 *   took longer than `latencyTarget`. It never leaves `[min, max]`. A lower limit never interrupts running calls:
 *   it admits nobody until fewer calls run. An interrupted call lowers the limit if it had run longer than
 *   `latencyTarget`, and changes nothing if not.
 *
 * **Gotchas**
 *
 * - A timeout outside the bulkhead (where `Policy` puts it, so that time in the queue counts) interrupts the
 *   call: the adaptive limit sees no `TimeoutError`, only how long the call had run. Keep `latencyTarget` below
 *   the timeout, so that a timed-out call is always a slow one.
 * - Why the limit grows only while it is in use: a limit of 50 over 5 calls at a time measures nothing about 51,
 *   and would otherwise keep climbing to `max` on a quiet day, then admit a burst the dependency cannot take.
 *   Netflix's concurrency-limits (`AIMDLimit`) reasons the same way but grows once half the limit is in use; a
 *   bulkhead's limit is a hard cap, so this one waits for evidence at the cap itself.
 * - Why `decreaseFactor` defaults to 0.9 and not TCP's 0.5: TCP halves once per round trip, but a bulkhead
 *   sees one signal per call, and when a dependency slows down, every call in flight reports it at once. Ten
 *   timeouts cut a limit of 100 to 32 at 0.9, and to 1 at 0.5.
 *
 * **Example** (Protecting a connection pool of 10)
 *
 * ```ts
 * import { Bulkhead } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * const program = Effect.gen(function*() {
 *   const bulkhead = yield* Bulkhead.make({ name: "db", maxConcurrent: 10, maxQueue: 50, maxWait: "2 seconds" })
 *   return yield* Effect.succeed([{ id: 1 }]).pipe(
 *     bulkhead.protect,
 *     Effect.catchTag("BulkheadFull", (e) => Effect.logWarning(e.message).pipe(Effect.as([])))
 *   )
 * }).pipe(Effect.scoped)
 * ```
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as internal from "./internal/bulkhead.ts"
import { guard, type Run } from "./internal/guard.ts"
import * as metrics from "./internal/metrics.ts"
import { LocalRejectionTypeId } from "./internal/rejection.ts"
import { stackless } from "./internal/stackless.ts"
import { monotonicMillis } from "./internal/timeout.ts"
import {
  decode,
  DurationInput,
  millisOf,
  NonNegativeInt,
  orDefault,
  type PolicyConfigError,
  PositiveInt
} from "./PolicyConfig.ts"

/**
 * The brand every bulkhead carries.
 *
 * @example
 * ```ts
 * import { Bulkhead } from "@effect-resilience/core"
 *
 * const isBulkhead = (u: object) => Bulkhead.TypeId in u
 * ```
 *
 * @since 0.1.0
 * @category type IDs
 */
export const TypeId: TypeId = "~@effect-resilience/core/Bulkhead"

/**
 * The type of `TypeId`.
 *
 * @example
 * ```ts
 * import type { Bulkhead } from "@effect-resilience/core"
 *
 * type Id = Bulkhead.TypeId // "~@effect-resilience/core/Bulkhead"
 * ```
 *
 * @since 0.1.0
 * @category type IDs
 */
export type TypeId = "~@effect-resilience/core/Bulkhead"

// -----------------------------------------------------------------------------
// models
// -----------------------------------------------------------------------------

/**
 * Settings of the adaptive limit (AIMD); see the module docs for the exact rule.
 *
 * @example
 * ```ts
 * import type { Bulkhead } from "@effect-resilience/core"
 *
 * const adaptive: Bulkhead.AdaptiveOptions = { min: 2, max: 64, latencyTarget: "200 millis" }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface AdaptiveOptions {
  /** The starting limit, in `[min, max]`. Default: `maxConcurrent`. */
  readonly initial?: number | undefined
  /** The limit never goes below this (a positive integer). */
  readonly min: number
  /** The limit never goes above this (an integer, at least `min`). */
  readonly max: number
  /** A call slower than this (strictly) lowers the limit; one at most this fast may raise it. */
  readonly latencyTarget: Duration.Input
  /** Added to the limit per successful call while the limit is in use (a positive integer). Default: 1. */
  readonly increaseBy?: number | undefined
  /** The limit is multiplied by this (then rounded down) on a failure or slow call, in (0, 1). Default: 0.9. */
  readonly decreaseFactor?: number | undefined
  /**
   * Which typed errors lower the limit (a `TimeoutError` always does, and so do defects). Default: every typed
   * error. Return false for errors that say nothing about load, such as "not found". If it throws, the call lowers
   * the limit as a defect does, its permit still goes back, and the caller gets the thrown value as a defect.
   */
  readonly isFailure?: ((error: unknown) => boolean) | undefined
}

/**
 * Options for `make`.
 *
 * @example
 * ```ts
 * import type { Bulkhead } from "@effect-resilience/core"
 *
 * const options: Bulkhead.Options = { name: "payments", maxConcurrent: 20, maxQueue: 100, maxWait: "1 second" }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** Names the bulkhead in errors and metrics. */
  readonly name: string
  /** Calls allowed at once (a positive integer); with `adaptive`, the starting limit unless `initial` is set. */
  readonly maxConcurrent: number
  /** Callers allowed to wait for a permit, in arrival order (a non-negative integer). Default: 0. */
  readonly maxQueue?: number | undefined
  /** How long a caller may wait in the queue for a permit (positive). Default: no limit. */
  readonly maxWait?: Duration.Input | undefined
  /** Lets the limit find itself within `[min, max]`, from latency and failures. Off by default. */
  readonly adaptive?: AdaptiveOptions | undefined
}

/**
 * What a bulkhead looks like now, as plain serializable data.
 *
 * @example
 * ```ts
 * import type { Bulkhead } from "@effect-resilience/core"
 *
 * const utilisation = (s: Bulkhead.Snapshot) => s.active / s.limit
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Snapshot {
  readonly name: string
  /** The current limit: `maxConcurrent`, or where the adaptive limit stands. */
  readonly limit: number
  /** Calls holding a permit. Above `limit` for a while after the adaptive limit drops. */
  readonly active: number
  /** Callers waiting for a permit. */
  readonly queued: number
  readonly maxQueue: number
  /** Calls admitted since the bulkhead was made. */
  readonly calls: number
  /** Calls rejected since the bulkhead was made, by reason. */
  readonly rejected: { readonly QueueFull: number; readonly WaitTimeout: number }
  /** The moving average of (timed) call durations behind `retryAfter`; 0 before any call has finished. */
  readonly averageCallMillis: number
}

/**
 * A bulkhead. See the module docs for the semantics.
 *
 * @example
 * ```ts
 * import type { Bulkhead } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * const query = (bulkhead: Bulkhead.Bulkhead, sql: string) => Effect.succeed(sql.length).pipe(bulkhead.protect)
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Bulkhead {
  readonly [TypeId]: TypeId
  readonly name: string
  /** Runs an effect under the bulkhead. Use it directly or as `effect.pipe(bulkhead.protect)`. */
  readonly protect: <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E | BulkheadFull, R>
  /** The bulkhead now. */
  readonly snapshot: Effect.Effect<Snapshot>
}

/**
 * The `Bulkhead` in context, for programs that guard one dependency and want to swap the bulkhead in tests.
 *
 * @example
 * ```ts
 * import { Bulkhead } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * const program = Effect.gen(function*() {
 *   const bulkhead = yield* Bulkhead.Bulkhead
 *   return yield* bulkhead.protect(Effect.succeed("ok"))
 * }).pipe(Effect.provide(Bulkhead.layer({ name: "db", maxConcurrent: 10 })))
 * ```
 *
 * @since 0.1.0
 * @category services
 */
export const Bulkhead: Context.Service<Bulkhead, Bulkhead> = Context.Service<Bulkhead>(
  "@effect-resilience/core/Bulkhead"
)

// -----------------------------------------------------------------------------
// errors
// -----------------------------------------------------------------------------

/**
 * Rejection when no permit is free: at once when the queue is full (`QueueFull`), or after `maxWait` in the
 * queue (`WaitTimeout`). `policy` names the bulkhead; `retryAfter` is a hint (the average call time, see the module
 * docs); `limit` is the limit when the caller was rejected. A circuit breaker never counts it as a failure.
 *
 * @example
 * ```ts
 * import { Bulkhead } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * const orEmpty = <A, E, R>(call: Effect.Effect<ReadonlyArray<A>, E | Bulkhead.BulkheadFull, R>) =>
 *   call.pipe(Effect.catchTag("BulkheadFull", () => Effect.succeed([])))
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export class BulkheadFull extends Schema.TaggedError<BulkheadFull>()("BulkheadFull", {
  policy: Schema.String,
  reason: Schema.Literals(["QueueFull", "WaitTimeout"]),
  limit: Schema.Number,
  maxQueue: Schema.Number,
  retryAfter: Schema.DurationFromMillis
}) {
  /** A local rejection: the dependency was not called, so a circuit breaker outside the bulkhead never counts it. */
  readonly [LocalRejectionTypeId]: LocalRejectionTypeId = LocalRejectionTypeId

  override get message(): string {
    const hint = `retry after ${Duration.format(this.retryAfter)}`
    if (this.reason === "WaitTimeout") {
      return `Bulkhead "${this.policy}" had no free permit (limit ${this.limit}) within the maximum wait; ${hint}`
    }
    const queue = this.maxQueue === 0 ? "no queue" : `queue of ${this.maxQueue} full`
    return `Bulkhead "${this.policy}" is full (limit ${this.limit}, ${queue}); ${hint}`
  }
}

/**
 * What a bulkhead adds to a call's error channel.
 *
 * @example
 * ```ts
 * import type { Bulkhead } from "@effect-resilience/core"
 *
 * const waited = (e: Bulkhead.Rejection) => e.reason === "WaitTimeout"
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export type Rejection = BulkheadFull

// -----------------------------------------------------------------------------
// validation
// -----------------------------------------------------------------------------

const Factor = Schema.Finite.check(Schema.isGreaterThan(0), Schema.isLessThan(1))

const AdaptiveSchema = Schema.Struct({
  initial: Schema.optional(PositiveInt),
  min: PositiveInt,
  max: PositiveInt,
  latencyTarget: DurationInput({ positive: true }),
  increaseBy: PositiveInt,
  decreaseFactor: Factor
})

const OptionsSchema = Schema.Struct({
  name: Schema.NonEmptyString,
  maxConcurrent: PositiveInt,
  maxQueue: NonNegativeInt,
  maxWait: Schema.optional(DurationInput({ positive: true })),
  adaptive: Schema.optional(AdaptiveSchema)
}).check(Schema.makeFilter((options) => {
  const adaptive = options.adaptive
  if (adaptive === undefined) return undefined
  if (adaptive.max < adaptive.min) {
    return {
      path: ["adaptive", "max"],
      issue: `Expected at least adaptive.min (${adaptive.min}), got ${adaptive.max}`
    }
  }
  // The starting limit comes from `initial` or else `maxConcurrent`: the issue names the option that set it.
  const initial = adaptive.initial ?? options.maxConcurrent
  if (initial < adaptive.min || initial > adaptive.max) {
    return {
      path: adaptive.initial === undefined ? ["maxConcurrent"] : ["adaptive", "initial"],
      issue:
        `Expected a value between adaptive.min (${adaptive.min}) and adaptive.max (${adaptive.max}), got ${initial}`
    }
  }
  return undefined
}))

interface Resolved {
  readonly limit: number
  readonly maxQueue: number
  readonly maxWaitMillis: number
  readonly aimd: internal.Aimd | undefined
  readonly isFailure: ((error: unknown) => boolean) | undefined
}

const resolve = (options: Options): Effect.Effect<Resolved, PolicyConfigError> => {
  const adaptive = options.adaptive
  const raw = {
    name: options.name,
    maxConcurrent: options.maxConcurrent,
    maxQueue: orDefault(options.maxQueue, 0),
    ...(options.maxWait === undefined ? {} : { maxWait: options.maxWait }),
    ...(adaptive === undefined ? {} : {
      adaptive: {
        ...(adaptive.initial === undefined ? {} : { initial: adaptive.initial }),
        min: adaptive.min,
        max: adaptive.max,
        latencyTarget: adaptive.latencyTarget,
        increaseBy: orDefault(adaptive.increaseBy, 1),
        decreaseFactor: orDefault(adaptive.decreaseFactor, 0.9)
      }
    })
  }
  return decode(OptionsSchema, raw, { kind: "bulkhead", policy: String(options.name) }).pipe(
    Effect.map((decoded): Resolved => ({
      limit: decoded.adaptive?.initial ?? decoded.maxConcurrent,
      maxQueue: decoded.maxQueue,
      maxWaitMillis: decoded.maxWait === undefined ? Infinity : millisOf(decoded.maxWait as Duration.Input),
      aimd: decoded.adaptive === undefined ? undefined : {
        min: decoded.adaptive.min,
        max: decoded.adaptive.max,
        latencyTargetMillis: millisOf(decoded.adaptive.latencyTarget as Duration.Input),
        increaseBy: decoded.adaptive.increaseBy,
        decreaseFactor: decoded.adaptive.decreaseFactor
      },
      isFailure: adaptive?.isFailure
    }))
  )
}

// -----------------------------------------------------------------------------
// constructors
// -----------------------------------------------------------------------------

// `startedAt` of a call that holds no permit, and of one admitted without reading the clock.
const NOT_ADMITTED = -1
const UNTIMED = -2

const QUEUE_FULL = 0
const WAIT_TIMEOUT = 1
const reasons = ["QueueFull", "WaitTimeout"] as const

type Resume = (effect: Effect.Effect<void, BulkheadFull>) => void

const isTimeoutError = (error: unknown): boolean =>
  typeof error === "object" && error !== null && (error as { readonly _tag?: unknown })._tag === "TimeoutError"

/**
 * Makes a bulkhead. Options are validated with Schema; a bad value fails with `PolicyConfigError`.
 *
 * **Metrics** (Effect `Metric`s, attribute `policy`, read when exported so the call path pays nothing):
 * `bulkhead_active`, `bulkhead_queued` and `bulkhead_limit` (gauges), `bulkhead_calls_total` (calls admitted) and
 * `bulkhead_rejections_total` (by `reason`: QueueFull, WaitTimeout).
 *
 * @example
 * ```ts
 * import { Bulkhead } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * const program = Effect.gen(function*() {
 *   const bulkhead = yield* Bulkhead.make({
 *     name: "search",
 *     maxConcurrent: 8,
 *     maxQueue: 32,
 *     maxWait: "500 millis",
 *     adaptive: { min: 2, max: 64, latencyTarget: "250 millis" }
 *   })
 *   return yield* Effect.succeed(["effect"]).pipe(bulkhead.protect)
 * }).pipe(Effect.scoped)
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: (options: Options) => Effect.Effect<Bulkhead, PolicyConfigError, Scope.Scope> = Effect
  .fnUntraced(function*(options: Options) {
    const { aimd, isFailure, maxQueue, maxWaitMillis, ...initial } = yield* resolve(options)
    const name = options.name
    let limit = initial.limit
    // Calls holding a permit, including waiters granted one that have not resumed yet.
    let active = 0
    const queue = new internal.Queue<Resume>()
    let calls = 0
    const rejected = [0, 0]
    // Moving average of the durations of `timed` finished calls, for `retryAfter`.
    let averageMillis = 0
    let timed = 0

    // Rejections say the same thing until the average or the limit moves, so under overload (when they come
    // thousands per second) one error serves many: building it is most of a rejection's cost.
    const cache: Array<{ effect: Effect.Effect<never, BulkheadFull>; hint: number; limit: number } | undefined> = [
      undefined,
      undefined
    ]
    const rejection = (reason: number): Effect.Effect<never, BulkheadFull> => {
      const hint = Math.round(averageMillis)
      let cached = cache[reason]
      if (cached === undefined || cached.hint !== hint || cached.limit !== limit) {
        cached = { effect: Effect.fail(makeFull(name, reasons[reason], limit, maxQueue, hint)), hint, limit }
        cache[reason] = cached
      }
      return cached.effect
    }

    // Called with a waiter already out of the queue.
    const expire = (waiter: internal.Waiter<Resume>): void => {
      waiter.state = internal.EXPIRED
      rejected[WAIT_TIMEOUT]++
      if (waiter.resume !== undefined) waiter.resume(rejection(WAIT_TIMEOUT))
    }

    // Hands free permits to waiters, first come first served. A waiter at or past its deadline is rejected
    // instead, so that the outcome at the deadline does not depend on which of the timer and the release ran first.
    // A resumed waiter runs inline, and may finish (and free its permit) before `resume` returns: the inner drain
    // then leaves the work to this loop, so a line of waiters whose calls finish at once never nests handlers.
    let draining = false
    const drain = (now: number): void => {
      if (draining) return
      draining = true
      while (active < limit && queue.size > 0) {
        const waiter = queue.shift()!
        if (waiter.timer !== undefined) waiter.timer.interruptUnsafe()
        if (now - waiter.enqueuedAt >= maxWaitMillis) {
          expire(waiter)
          continue
        }
        active++
        calls++
        waiter.state = internal.GRANTED
        waiter.startedAt = now
        if (waiter.resume !== undefined) waiter.resume(Effect.void)
      }
      draining = false
    }

    const signalOf = (
      settings: internal.Aimd,
      exit: Exit.Exit<unknown, unknown>,
      completed: boolean,
      durationMillis: number,
      saturated: boolean
    ): number => {
      if (exit._tag === "Success") return internal.signalOf(settings, true, true, false, durationMillis, saturated)
      let overloaded = false
      for (const reason of exit.cause.reasons) {
        if (
          reason._tag === "Die" ||
          (reason._tag === "Fail" &&
            (isFailure === undefined || isTimeoutError(reason.error) || isFailure(reason.error)))
        ) {
          overloaded = true
          break
        }
      }
      return internal.signalOf(settings, completed, false, overloaded, durationMillis, saturated)
    }

    // Gives a permit back; in one synchronous step, so no caller can see the permit twice or not at all. An
    // `isFailure` that throws cannot stop it: the call counts as the defect it is, which the caller then gets.
    const settle = (
      startedAt: number,
      saturated: boolean,
      clock: Clock.Clock | undefined,
      fiber: Fiber.Fiber<unknown, unknown>,
      exit: Exit.Exit<unknown, unknown>
    ): Effect.Effect<never> | undefined => {
      let thrown: Exit.Exit<never> | undefined
      active--
      let now = -1
      if (startedAt >= 0) {
        now = monotonicMillis(clock ?? fiber.getRef(Clock.Clock))
        const duration = now - startedAt
        const completed = exit._tag === "Success" ||
          exit.cause.reasons.some((reason) => reason._tag !== "Interrupt")
        if (completed) {
          averageMillis = internal.average(averageMillis, timed, duration)
          timed++
        }
        if (aimd !== undefined) {
          let signal: number
          try {
            signal = signalOf(aimd, exit, completed, duration, saturated)
          } catch (defect) {
            thrown = Exit.die(defect)
            signal = signalOf(aimd, thrown, completed, duration, saturated)
          }
          limit = internal.nextLimit(aimd, limit, signal)
        }
      }
      if (queue.size > 0 && active < limit) {
        drain(now >= 0 ? now : monotonicMillis(fiber.getRef(Clock.Clock)))
      }
      return thrown
    }

    const leave = (
      waiter: internal.Waiter<Resume>,
      fiber: Fiber.Fiber<unknown, unknown>,
      exit: Exit.Exit<unknown, unknown>
    ): Effect.Effect<never> | undefined => {
      if (waiter.state === internal.GRANTED) {
        // Granted, perhaps interrupted before it could run: either way the permit goes back.
        waiter.state = internal.GONE
        return settle(waiter.startedAt, true, undefined, fiber, exit)
      }
      if (waiter.state === internal.WAITING) {
        // Interrupted in the queue: it leaves without a permit.
        queue.remove(waiter)
        waiter.state = internal.GONE
        if (waiter.timer !== undefined) waiter.timer.interruptUnsafe()
      }
      return undefined
    }

    const timer = (waiter: internal.Waiter<Resume>): Effect.Effect<void> =>
      Clock.clockWith(
        (clock) => clock.sleep(Duration.millis(Math.max(0, waiter.enqueuedAt + maxWaitMillis - monotonicMillis(clock))))
      ).pipe(Effect.andThen(Effect.sync(() => {
        if (waiter.state !== internal.WAITING) return
        queue.remove(waiter)
        expire(waiter)
      })))

    const awaitPermit = (waiter: internal.Waiter<Resume>): Effect.Effect<void, BulkheadFull> => {
      // The waiter may have been granted a permit or rejected before its fiber got here (a fiber may yield).
      const wait = Effect.callback<void, BulkheadFull>((resume) => {
        if (waiter.state === internal.GRANTED) resume(Effect.void)
        else if (waiter.state === internal.EXPIRED) resume(rejection(WAIT_TIMEOUT))
        else waiter.resume = resume
      })
      if (maxWaitMillis === Infinity) return wait
      return Effect.flatMap(Effect.forkChild(timer(waiter), { startImmediately: true }), (fiber) => {
        if (waiter.state === internal.WAITING) waiter.timer = fiber
        else fiber.interruptUnsafe()
        return wait
      })
    }

    // Admission and settlement of one run (a `BulkheadRun`, paired by internal/guard.ts whatever the nesting).
    const enter = (
      run: BulkheadRun<unknown, unknown, unknown>,
      fiber: Fiber.Fiber<unknown, unknown>
    ): Effect.Effect<unknown, unknown, unknown> => {
      run.waiter = undefined
      if (active < limit && queue.size === 0) {
        active++
        // Reading the clock is a third of this path's cost: with a fixed limit, only one call in 8 is timed
        // (for `retryAfter`); the adaptive limit needs every call's latency.
        if (aimd !== undefined || (calls & 7) === 0) {
          run.clock = fiber.getRef(Clock.Clock)
          run.startedAt = monotonicMillis(run.clock)
        } else {
          run.clock = undefined
          run.startedAt = UNTIMED
        }
        calls++
        run.saturated = active >= limit
        return run.self
      }
      run.startedAt = NOT_ADMITTED
      if (queue.size >= maxQueue) {
        rejected[QUEUE_FULL]++
        return rejection(QUEUE_FULL)
      }
      const waiter = new internal.Waiter<Resume>(monotonicMillis(fiber.getRef(Clock.Clock)))
      run.waiter = waiter
      queue.push(waiter)
      return Effect.andThen(awaitPermit(waiter), run.self)
    }

    const exitRun = (
      run: BulkheadRun<unknown, unknown, unknown>,
      fiber: Fiber.Fiber<unknown, unknown>,
      exit: Exit.Exit<unknown, unknown>
    ): Effect.Effect<never> | undefined =>
      run.startedAt !== NOT_ADMITTED
        ? settle(run.startedAt, run.saturated, run.clock, fiber, exit)
        : run.waiter !== undefined
        ? leave(run.waiter, fiber, exit)
        : undefined

    const host: Host = { enter, exit: exitRun }

    const protect = <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E | BulkheadFull, R> =>
      guard(new BulkheadRun(host, self))

    const bulkhead: Bulkhead = {
      [TypeId]: TypeId,
      name,
      protect,
      snapshot: Effect.sync((): Snapshot => ({
        name,
        limit,
        active,
        queued: queue.size,
        maxQueue,
        calls,
        rejected: { QueueFull: rejected[QUEUE_FULL], WaitTimeout: rejected[WAIT_TIMEOUT] },
        averageCallMillis: averageMillis
      }))
    }

    // Pull-based metrics: the registry reads these counters when it exports, so calls never touch a metric.
    const by = { policy: name }
    yield* metrics.register([
      metrics.gauge("bulkhead_active", "Calls holding a permit", by, () => active),
      metrics.gauge("bulkhead_queued", "Callers waiting for a permit", by, () => queue.size),
      metrics.gauge("bulkhead_limit", "Current concurrency limit", by, () => limit),
      metrics.counter("bulkhead_calls_total", "Calls admitted", by, () => calls),
      ...reasons.map((reason, i) =>
        metrics.counter(
          "bulkhead_rejections_total",
          "Calls rejected, by reason",
          { ...by, reason },
          () => rejected[i]
        )
      )
    ])
    return bulkhead
  })

// What a run needs of its bulkhead: one object per bulkhead, all of one shape, so that the run's code stays
// monomorphic however many bulkheads a program makes.
interface Host {
  readonly enter: (
    run: BulkheadRun<unknown, unknown, unknown>,
    fiber: Fiber.Fiber<unknown, unknown>
  ) => Effect.Effect<unknown, unknown, unknown>
  readonly exit: (
    run: BulkheadRun<unknown, unknown, unknown>,
    fiber: Fiber.Fiber<unknown, unknown>,
    exit: Exit.Exit<unknown, unknown>
  ) => Effect.Effect<never> | undefined
}

// One run of a protected call: the permit it holds or the place it waits in.
class BulkheadRun<A, E, R> implements Run<A, E | BulkheadFull, R> {
  startedAt = NOT_ADMITTED
  saturated = false
  waiter: internal.Waiter<Resume> | undefined = undefined
  clock: Clock.Clock | undefined = undefined
  readonly host: Host
  readonly self: Effect.Effect<A, E, R>
  constructor(host: Host, self: Effect.Effect<A, E, R>) {
    this.host = host
    this.self = self
  }

  enter(fiber: Fiber.Fiber<unknown, unknown>): Effect.Effect<A, E | BulkheadFull, R> {
    return this.host.enter(this, fiber) as Effect.Effect<A, E | BulkheadFull, R>
  }

  exit(fiber: Fiber.Fiber<unknown, unknown>, exit: Exit.Exit<A, E | BulkheadFull>): Effect.Effect<never> | undefined {
    return this.host.exit(this, fiber, exit)
  }

  fork(): BulkheadRun<A, E, R> {
    return new BulkheadRun(this.host, this.self)
  }
}

// Rejections are built without capturing a stack: a fast-fail path must stay fast, and the stack of a rejection
// only says where the bulkhead is, which its fields already do.
const makeFull = (
  policy: string,
  reason: "QueueFull" | "WaitTimeout",
  limit: number,
  maxQueue: number,
  retryAfterMillis: number
): BulkheadFull =>
  stackless(() =>
    new BulkheadFull({ policy, reason, limit, maxQueue, retryAfter: Duration.millis(retryAfterMillis) }, {
      disableChecks: true
    })
  )

/**
 * Provides `Bulkhead` made with `options`.
 *
 * @example
 * ```ts
 * import { Bulkhead } from "@effect-resilience/core"
 *
 * const BulkheadLive = Bulkhead.layer({ name: "db", maxConcurrent: 10, maxQueue: 20 })
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options): Layer.Layer<Bulkhead, PolicyConfigError> =>
  Layer.effect(Bulkhead, make(options))
