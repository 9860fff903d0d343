/**
 * The pure parts of the retry policy: the retry budget's rolling window, and how a failure is read.
 *
 * @internal
 */
import type * as Cause from "effect/Cause"
import * as Duration from "effect/Duration"
import type * as Effect from "effect/Effect"
import type * as Fiber from "effect/Fiber"
import { TimeWindow } from "./window.ts"

/** Buckets per budget window: the window slides in tenths. @internal */
export const BUDGET_BUCKETS = 10

// Float noise must not cost a retry: 0.29 * 100 is 28.999999999999996.
const EPSILON = 1e-9

/**
 * A retry budget's books: first attempts deposit, retries withdraw. Retries in the window may not exceed
 * `floor(ratio * calls + reserve)`, where `reserve = minPerSecond * window seconds`. Every operation is O(1)
 * (amortised over the buckets) and synchronous, so a check and its withdrawal can never interleave with another
 * fiber's: the count is exact under any concurrency.
 *
 * @internal
 */
export class Budget {
  readonly ratio: number
  readonly minPerSecond: number
  readonly windowMillis: number
  readonly reserve: number
  // One rolling window for both counts: `calls` holds first attempts and retries, `failures` the retries.
  private readonly window: TimeWindow

  constructor(ratio: number, minPerSecond: number, windowMillis: number, now: number) {
    this.ratio = ratio
    this.minPerSecond = minPerSecond
    this.windowMillis = windowMillis
    this.reserve = minPerSecond * windowMillis / 1000
    const buckets = Math.min(BUDGET_BUCKETS, Math.max(1, Math.floor(windowMillis)))
    this.window = new TimeWindow(buckets, Math.max(1, Math.floor(windowMillis / buckets)), now)
  }

  /** Counts a first attempt. */
  deposit(now: number): void {
    this.window.record(false, false, now)
  }

  /** Takes one retry from the budget if it has one: the receipt for `refund`, or `undefined` when it has none. */
  withdraw(now: number): number | undefined {
    this.window.advance(now)
    if (this.window.failures + 1 > this.allowance()) return undefined
    return this.window.record(true, false, now)
  }

  /** Gives back a retry that was paid for but never made (its caller was interrupted while it waited). */
  refund(receipt: number, now: number): void {
    this.window.forget(receipt, true, false, now)
  }

  /** First attempts in the window. */
  calls(now: number): number {
    this.window.advance(now)
    return this.window.calls - this.window.failures
  }

  /** Retries in the window. */
  retries(now: number): number {
    this.window.advance(now)
    return this.window.failures
  }

  /** Retries still allowed in the window now. */
  available(now: number): number {
    this.window.advance(now)
    return Math.max(0, this.allowance() - this.window.failures)
  }

  private allowance(): number {
    return Math.floor(this.ratio * (this.window.calls - this.window.failures) + this.reserve + EPSILON)
  }
}

/** What a failed attempt's cause allows. @internal */
export const INTERRUPTED = 0
/** @internal */
export const DEFECT = 1
/** @internal */
export const FAILED = 2

/**
 * Reads a cause: `INTERRUPTED` if it holds an interruption, `DEFECT` if it holds a defect or no typed failure,
 * `FAILED` otherwise (the typed error is then `Cause.findError`'s).
 *
 * @internal
 */
export const classify = (cause: Cause.Cause<unknown>): number => {
  let failed = false
  const reasons = cause.reasons
  for (let i = 0; i < reasons.length; i++) {
    const tag = reasons[i]._tag
    if (tag === "Interrupt") return INTERRUPTED
    if (tag === "Die") return DEFECT
    failed = true
  }
  return failed ? FAILED : DEFECT
}

/** The first typed error of a cause that `classify` found `FAILED`. @internal */
export const errorOf = (cause: Cause.Cause<unknown>): unknown => {
  const reasons = cause.reasons
  for (let i = 0; i < reasons.length; i++) {
    const reason = reasons[i]
    if (reason._tag === "Fail") return reason.error
  }
  return undefined
}

/**
 * The `retryAfter` of an error, in milliseconds, when it has one that is a `Duration`; -1 otherwise.
 *
 * @internal
 */
export const retryAfterMillis = (error: unknown): number => {
  if (typeof error !== "object" || error === null || !("retryAfter" in error)) return -1
  const value = error.retryAfter
  return Duration.isDuration(value) ? Duration.toMillis(value) : -1
}

/** The tag an event shows for an error: its `_tag`, else its `name`, else its type. @internal */
export const tagOf = (error: unknown): string => {
  if (typeof error === "object" && error !== null) {
    const e = error as { readonly _tag?: unknown; readonly name?: unknown }
    return typeof e._tag === "string" ? e._tag : typeof e.name === "string" ? e.name : "Object"
  }
  return typeof error
}

/**
 * A retry policy's two halves, for a caller that runs the first attempt itself (a policy with a timeout runs it on
 * the timeout's attempt fiber): `begin` counts the call and returns its start time, `afterFailure` takes over from a
 * failed first attempt, running `again` for each retry.
 *
 * @internal
 */
export interface Retrier {
  readonly begin: (fiber: Fiber.Fiber<unknown, unknown>) => number
  readonly afterFailure: <A, E, R>(
    again: Effect.Effect<A, E, R>,
    cause: Cause.Cause<E>,
    startedAt: number
  ) => Effect.Effect<A, unknown, R>
}

/** The halves of each retry policy made by `Retry.make` without `isFailureResult`. @internal */
export const retriers = new WeakMap<object, Retrier>()
