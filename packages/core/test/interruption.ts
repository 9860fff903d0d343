/**
 * Interruption at every point: a fiber that yields between every two instructions (as any fiber does once it has
 * used its budget, `Scheduler.MaxOpsBeforeYield`), interrupted after a number of the test fiber's turns. Over a range
 * of turns, the interruption lands at each point where the fiber can be suspended.
 */
import { Effect, Fiber, Scheduler } from "effect"

/** Lets the other fibers run `n` times. */
export const yieldTimes = (n: number): Effect.Effect<void> =>
  Effect.forEach(Array.from({ length: n }), () => Effect.yieldNow, { discard: true })

/** Runs `effect` one instruction per turn on a fiber of its own, and interrupts it after `turns` turns. */
export const interruptedAfter = <A, E, R>(
  effect: Effect.Effect<A, E, R>,
  turns: number
): Effect.Effect<void, never, R> =>
  Effect.gen(function*() {
    const fiber = yield* Effect.forkChild(effect.pipe(Effect.provideService(Scheduler.MaxOpsBeforeYield, 1)))
    yield* yieldTimes(turns)
    yield* Fiber.interrupt(fiber)
  })
