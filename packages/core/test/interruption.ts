/**
 * Interruption at every point: a fiber that yields between every two instructions (as any fiber does once it has
 * used its budget, `Scheduler.MaxOpsBeforeYield`), interrupted after a number of the test fiber's turns. Over a range
 * of turns, the interruption lands at each point where the fiber can be suspended.
 */
import { Data, Effect, Fiber, Scheduler } from "effect"

/** Lets the other fibers run `n` times. */
export const yieldTimes = (n: number): Effect.Effect<void> =>
  Effect.forEach(Array.from({ length: n }), () => Effect.yieldNow, { discard: true })

/**
 * Runs `effect` one instruction per turn on a fiber of its own, and interrupts it after `turns` turns; `meanwhile`
 * (moving the clock on, say) runs first, while the fiber starts.
 */
export const interruptedAfter = <A, E, R>(
  effect: Effect.Effect<A, E, R>,
  turns: number,
  meanwhile: Effect.Effect<void> = Effect.void
): Effect.Effect<void, never, R> =>
  Effect.gen(function*() {
    const fiber = yield* Effect.forkChild(effect.pipe(Effect.provideService(Scheduler.MaxOpsBeforeYield, 1)))
    yield* meanwhile
    yield* yieldTimes(turns)
    yield* Fiber.interrupt(fiber)
  })

/** The error of the protected calls below. */
export class Boom extends Data.TaggedError("Boom") {}

/**
 * What a protected call may be doing when its caller is interrupted: answering or failing at once or a few turns
 * later, hanging, or interrupting itself at once or later.
 */
export const protectedCalls: Record<string, Effect.Effect<number, Boom>> = {
  "succeeds at once": Effect.succeed(1),
  "fails at once": Effect.fail(new Boom()),
  "succeeds later": Effect.as(yieldTimes(3), 1),
  "fails later": Effect.andThen(yieldTimes(3), Effect.fail(new Boom())),
  "hangs": Effect.never,
  "interrupts itself": Effect.interrupt,
  "interrupts itself later": Effect.andThen(yieldTimes(2), Effect.interrupt)
}

/** `call`, counted in `running` from its start to its end: an attempt left running is still counted. */
export const runningIn = <A, E>(running: { count: number }, call: Effect.Effect<A, E>): Effect.Effect<A, E> =>
  Effect.acquireUseRelease(
    Effect.sync(() => void running.count++),
    () => call,
    () => Effect.sync(() => void running.count--)
  )
