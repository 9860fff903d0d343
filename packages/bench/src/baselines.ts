/**
 * Baselines: what a call costs with nothing around it, in each runtime the other cases use.
 *
 * - `baseline:promise`: `await fn()` on an async no-op, the floor for the Promise-based breakers (cockatiel,
 *   opossum).
 * - `baseline:effect`: `Effect.void` yielded N times inside one `Effect.gen` program, the floor for the Effect
 *   breakers: the cost of one step of the fiber run loop, which every Effect case pays per call.
 * - `baseline:exit-hook`: the no-op wrapped the way our breaker wraps a call (`Effect.withFiber` reading the
 *   `Clock`, `Effect.onExitPrimitive` with a handler that returns nothing), with no breaker logic: the floor for
 *   any closed path built on these primitives. `ours:closed` minus this is what the breaker itself adds.
 * - `baseline:fail`: `Effect.exit(Effect.fail(error))` with an error made once: the floor for a rejection in an
 *   Effect program, when nothing is allocated per rejection but the failure itself.
 *
 * The other cases are reported as multiples of the first two, measured in the same run.
 */
import * as Clock from "effect/Clock"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import { check, type TimedCase } from "./harness.ts"

/** The no-op every Promise-based case calls. */
export const asyncNoop = async (): Promise<void> => {}

/** The no-op every Effect-based case calls. */
export const noop: Effect.Effect<void> = Effect.void

class Rejected extends Data.TaggedError("Rejected") {}

let lastNow = 0
let settled = 0

/** A wrapper shaped like our breaker's, minus the breaker: read the clock on entry, look at the exit on the way out. */
const exitHook = <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.onExitPrimitive(
    Effect.withFiber<A, E, R>((fiber) => {
      lastNow = fiber.getRef(Clock.Clock).currentTimeMillisUnsafe()
      return self
    }),
    (exit) => {
      if (exit._tag === "Success") settled++
      return undefined
    }
  )

export const baselines: ReadonlyArray<TimedCase> = [
  {
    kind: "time",
    name: "baseline:promise",
    description: "`await fn()` on an async no-op",
    setup: async () => ({
      run: async (iterations) => {
        for (let i = 0; i < iterations; i++) await asyncNoop()
      }
    })
  },
  {
    kind: "time",
    name: "baseline:effect",
    description: "`yield* Effect.void` in one `Effect.gen` loop",
    setup: async () => ({
      run: (iterations) =>
        Effect.runPromise(Effect.gen(function*() {
          for (let i = 0; i < iterations; i++) yield* noop
        }))
    })
  },
  {
    kind: "time",
    name: "baseline:exit-hook",
    description: "`Effect.onExitPrimitive(Effect.withFiber(...))` around the no-op, reading the `Clock`: our wrapper, "
      + "without the breaker",
    setup: async () => ({
      run: (iterations) =>
        Effect.runPromise(Effect.gen(function*() {
          for (let i = 0; i < iterations; i++) yield* exitHook(noop)
        })),
      verify: async () => check(settled > 0 && lastNow > 0, "the exit hook never ran")
    })
  },
  {
    kind: "time",
    name: "baseline:fail",
    description: "`yield* Effect.exit(Effect.fail(error))` with one preallocated error",
    setup: async () => {
      const error = new Rejected()
      let failed = 0
      return {
        run: (iterations) => {
          failed = 0
          return Effect.runPromise(Effect.gen(function*() {
            for (let i = 0; i < iterations; i++) {
              const exit = yield* Effect.exit(Effect.fail(error))
              if (exit._tag === "Failure") failed++
            }
          }))
        },
        verify: async (iterations) => check(failed === iterations, "a failure did not fail")
      }
    }
  }
]
