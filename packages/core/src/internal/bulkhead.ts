/**
 * The bulkhead's pieces that need no effect: the FIFO queue of waiters, the AIMD step of the adaptive limit and
 * the moving average behind `retryAfter`.
 *
 * Why mutable: admission must not allocate on the fast path, and Effect fibers never interleave inside a
 * synchronous step, so a counter changed in one step is as atomic as a `Ref.modify`, at a fraction of the cost.
 *
 * @internal
 */

/** Waiter states. @internal */
export const WAITING = 0
/** Given a permit by a finishing call; the permit is the waiter's until its call ends. @internal */
export const GRANTED = 1
/** Rejected with `WaitTimeout`: it waited `maxWait`. @internal */
export const EXPIRED = 2
/** Left the queue without a permit (interrupted). @internal */
export const GONE = 3

/**
 * A caller waiting for a permit, linked into the queue. The queue holds only `WAITING` waiters.
 *
 * @internal
 */
export class Waiter<Resume> {
  state = WAITING
  /** When the permit was granted, from the granting call's clock. */
  startedAt = 0
  /** Set once the waiting fiber has suspended; a waiter granted or expired before that finds out on suspending. */
  resume: Resume | undefined = undefined
  /** The fiber that rejects the waiter at its deadline; interrupted once the waiter leaves the queue. */
  timer: { readonly interruptUnsafe: () => void } | undefined = undefined
  prev: Waiter<Resume> | undefined = undefined
  next: Waiter<Resume> | undefined = undefined
  readonly enqueuedAt: number
  constructor(enqueuedAt: number) {
    this.enqueuedAt = enqueuedAt
  }
}

/**
 * A doubly linked FIFO: O(1) push, shift and removal of an interrupted waiter from anywhere in the line.
 *
 * @internal
 */
export class Queue<Resume> {
  size = 0
  head: Waiter<Resume> | undefined = undefined
  tail: Waiter<Resume> | undefined = undefined

  push(waiter: Waiter<Resume>): void {
    waiter.prev = this.tail
    if (this.tail === undefined) this.head = waiter
    else this.tail.next = waiter
    this.tail = waiter
    this.size++
  }

  shift(): Waiter<Resume> | undefined {
    const waiter = this.head
    if (waiter !== undefined) this.remove(waiter)
    return waiter
  }

  remove(waiter: Waiter<Resume>): void {
    if (waiter.prev === undefined) this.head = waiter.next
    else waiter.prev.next = waiter.next
    if (waiter.next === undefined) this.tail = waiter.prev
    else waiter.next.prev = waiter.prev
    waiter.prev = undefined
    waiter.next = undefined
    this.size--
  }
}

/** The validated AIMD settings. @internal */
export interface Aimd {
  readonly min: number
  readonly max: number
  readonly latencyTargetMillis: number
  readonly increaseBy: number
  readonly decreaseFactor: number
}

/** What a finished call says about the limit. @internal */
export const NO_SIGNAL = 0
/** @internal */
export const INCREASE = 1
/** @internal */
export const DECREASE = 2

/**
 * The signal of one finished call. `overloaded`: it failed in a way that counts (a defect, a `TimeoutError`, or a
 * typed error `isFailure` accepts); `completed`: it ran to an end (not interrupted); `saturated`: the limit was
 * in use when it was admitted.
 *
 * @internal
 */
export const signalOf = (
  aimd: Aimd,
  completed: boolean,
  succeeded: boolean,
  overloaded: boolean,
  durationMillis: number,
  saturated: boolean
): number => {
  // An interrupted call (by a timeout outside the bulkhead, say) has no outcome, but a lower bound on its latency:
  // past the target, it was slow. Short of it, the caller gave up for its own reasons, which say nothing.
  if (!completed) return durationMillis > aimd.latencyTargetMillis ? DECREASE : NO_SIGNAL
  if (overloaded || durationMillis > aimd.latencyTargetMillis) return DECREASE
  // Growing on calls that did not need the whole limit would raise it without evidence that the dependency takes
  // more (Netflix's AIMDLimit, for the same reason, grows only once half the limit is in use).
  return succeeded && saturated ? INCREASE : NO_SIGNAL
}

/**
 * The next limit: `+ increaseBy` on INCREASE, `floor(limit * decreaseFactor)` on DECREASE (at least one less,
 * as the limit is an integer), always within `[min, max]`.
 *
 * @internal
 */
export const nextLimit = (aimd: Aimd, limit: number, signal: number): number =>
  signal === INCREASE
    ? Math.min(aimd.max, limit + aimd.increaseBy)
    : signal === DECREASE
    // The epsilon absorbs binary rounding: 90 * 0.7 is 62.99999999999999 in floating point, and should be 63.
    ? Math.max(aimd.min, Math.floor(limit * aimd.decreaseFactor + 1e-9))
    : limit

/** Weight of the newest call in the moving average of call durations. @internal */
export const AVERAGE_WEIGHT = 0.2

/**
 * Folds one call duration into the moving average; `calls` is how many were folded before, so the first call
 * sets the average.
 *
 * @internal
 */
export const average = (previous: number, calls: number, durationMillis: number): number =>
  calls === 0 ? durationMillis : previous + AVERAGE_WEIGHT * (durationMillis - previous)
