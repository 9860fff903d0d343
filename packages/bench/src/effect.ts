/**
 * Effect's own breaker (`effect/persistence` `CircuitBreaker`, in-memory store), in the same program shape as
 * `ours.ts`: N calls inside one Effect program.
 *
 * - `effect:closed`: `consecutive(5)`, closed.
 * - `effect:open`: opened by 5 failures, then N rejected calls.
 *
 * This is the breaker a user of Effect would reach for first, so it is the bar ours is held to.
 */
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import { CircuitBreaker as EffectCB } from "effect/persistence"
import { noop } from "./baselines.ts"
import { acquire, check, type Timed, type TimedCase } from "./harness.ts"

class Boom extends Data.TaggedError("Boom") {}

const key = "bench"

/** Effect's breaker with `consecutive(5)`, open for an hour once tripped, on a fresh in-memory store. */
export const makeEffectBreaker = () =>
  acquire(
    EffectCB.make({ tripPolicy: EffectCB.consecutive(5), openDuration: "1 hour" }).pipe(
      Effect.provide(EffectCB.layerStoreMemory())
    )
  )

const stateOf = (breaker: EffectCB.CircuitBreaker) =>
  Effect.runPromise(Effect.map(breaker.state(key), (state) => state._tag))

export const effect: ReadonlyArray<TimedCase> = [
  {
    kind: "time",
    name: "effect:closed",
    description: "Effect's breaker, `consecutive(5)`, closed: `yield* noop.pipe(breaker.execute({ key }))`",
    setup: async (): Promise<Timed> => {
      const { close, value: breaker } = await makeEffectBreaker()
      return {
        run: (iterations) =>
          Effect.runPromise(Effect.gen(function*() {
            for (let i = 0; i < iterations; i++) yield* noop.pipe(breaker.execute({ key }))
          })),
        verify: async () => check(await stateOf(breaker) === "Closed", "breaker left Closed"),
        teardown: close
      }
    }
  },
  {
    kind: "time",
    name: "effect:open",
    description: "Effect's breaker, opened by 5 failures: `yield* Effect.exit(noop.pipe(breaker.execute({ key })))`",
    setup: async (): Promise<Timed> => {
      const { close, value: breaker } = await makeEffectBreaker()
      await Effect.runPromise(Effect.gen(function*() {
        for (let i = 0; i < 5; i++) yield* Effect.exit(Effect.fail(new Boom()).pipe(breaker.execute({ key })))
      }))
      check(await stateOf(breaker) === "Open", "breaker not Open after 5 failures")
      let rejected = 0
      return {
        run: (iterations) => {
          rejected = 0
          return Effect.runPromise(Effect.gen(function*() {
            for (let i = 0; i < iterations; i++) {
              const exit = yield* Effect.exit(noop.pipe(breaker.execute({ key })))
              if (exit._tag === "Failure") rejected++
            }
          }))
        },
        verify: async (iterations) => {
          check(rejected === iterations, `${iterations - rejected} of ${iterations} calls were not rejected`)
          check(await stateOf(breaker) === "Open", "breaker left Open")
        },
        teardown: close
      }
    }
  }
]
