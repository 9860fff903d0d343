/**
 * The run wrapper behind every policy that admits a call, holds something while it runs (a probe slot, a permit) and
 * settles when it ends: the circuit breaker and the bulkhead. One wrapper, so that the two cannot drift apart.
 *
 * What it guarantees:
 *
 * - The exit handler is installed before admission, so no interruption can come between taking a slot and the
 *   handler that gives it back.
 * - An effect value can run again (a retry) or on several fibers at once. The state of a run belongs to the fiber
 *   that owns it; a run that overlaps it goes through a fresh `Run` (`fork`), and this wrapper's handler stands aside
 *   when it sees that run end: on another fiber, or (the value nested in itself) on the owner's fiber while `nested`
 *   says so.
 *
 * @internal
 */
import type * as Effect from "effect/Effect"
import { onExitPrimitive, withFiber } from "effect/Effect"
import type * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"

/**
 * One run of a guarded call: its admission, its settlement, and how to start an overlapping run.
 *
 * @internal
 */
export interface Run<A, E, R> {
  /** Admits the run on `fiber`: the effect to run in the call's place (the call, a wait then the call, a rejection). */
  readonly enter: (fiber: Fiber.Fiber<unknown, unknown>) => Effect.Effect<A, E, R>
  /** Settles the run that `enter` admitted, on its owner's fiber; what to run after (publishing), if anything. */
  readonly exit: (fiber: Fiber.Fiber<unknown, unknown>, exit: Exit.Exit<A, E>) => Effect.Effect<void> | undefined
  /** A run of the same call with a state of its own, for a run that overlaps this one. */
  readonly fork: () => Run<A, E, R>
}

/**
 * Wraps a run so that `enter` and `exit` pair up exactly once per run, whatever the nesting and overlapping.
 *
 * @internal
 */
export const guard = <A, E, R>(run: Run<A, E, R>): Effect.Effect<A, E, R> => {
  let owner: Fiber.Fiber<unknown, unknown> | undefined
  let nested = 0
  return onExitPrimitive(
    withFiber<A, E, R>((fiber) => {
      if (owner !== undefined) {
        if (owner === fiber) nested++
        return guard(run.fork())
      }
      owner = fiber
      return run.enter(fiber)
    }),
    (exit) => {
      if (owner === undefined) return undefined
      const fiber = Fiber.getCurrent()
      if (fiber !== owner) return undefined
      if (nested > 0) {
        // The end of a nested run, whose own wrapper settled it: the owner's run goes on.
        nested--
        return undefined
      }
      owner = undefined
      return run.exit(fiber, exit)
    }
  )
}

/**
 * A call a guard admitted without an effect: its settlement, called exactly once with the call's exit.
 *
 * @internal
 */
export interface Admitted {
  /** Settles the call on its owner's fiber; what to run after (publishing), if anything. */
  readonly exit: (
    fiber: Fiber.Fiber<unknown, unknown>,
    exit: Exit.Exit<unknown, unknown>
  ) => Effect.Effect<void> | undefined
}

/**
 * A guard's admission for a caller that runs the call in a callback of its own (`Limiter.runGuarded`): the common
 * case, a call that needs no effect to be admitted and cannot be rejected, with no effect step of the guard's.
 *
 * @internal
 */
export interface Admission {
  /**
   * Admits a call on `fiber` when that takes no effect and rejects nothing (for a breaker: its default circuit closed,
   * no events waiting, no fleet). Otherwise `undefined`, with nothing admitted: the caller takes the guarded path.
   */
  readonly admit: (fiber: Fiber.Fiber<unknown, unknown>) => Admitted | undefined
}

/** The admission of each breaker made by `CircuitBreaker.make`, for the policies that fuse it. @internal */
export const admissions = new WeakMap<object, Admission>()
