/**
 * Effect's own retry, timeout and semaphore, each alone around the no-op: the parts `ours:pipeline` is built
 * from until the project's policy modules land, so the pipeline's cost can be traced to its layers, and so the
 * policies, when they come, have a figure to beat.
 *
 * - `combinator:retry`: `Effect.retry(noop, { times: 3, schedule: Schedule.exponential("10 millis") })`, which
 *   succeeds at once: the cost of a retry that never retries.
 * - `combinator:timeout`: `Effect.timeout(noop, "1 second")`, which never fires.
 * - `combinator:semaphore`: `semaphore.withPermit(noop)` on a `Semaphore` of 100 permits, never contended.
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import * as Semaphore from "effect/Semaphore"
import { noop } from "./baselines.ts"
import type { Timed, TimedCase } from "./harness.ts"

/** Times `wrap(noop)`, built per call, N times in one Effect program. */
const around = (wrap: (self: Effect.Effect<void>) => Effect.Effect<unknown, unknown>): Timed => ({
  run: (iterations) =>
    Effect.runPromise(Effect.gen(function*() {
      for (let i = 0; i < iterations; i++) yield* wrap(noop)
    }))
})

const retrySchedule = Schedule.exponential("10 millis")
const callTimeout = Duration.seconds(1)

export const combinators: ReadonlyArray<TimedCase> = [
  {
    kind: "time",
    name: "combinator:retry",
    description:
      "`Effect.retry(noop, { times: 3, schedule: Schedule.exponential(\"10 millis\") })`, succeeding at once",
    setup: async () => around((self) => Effect.retry(self, { times: 3, schedule: retrySchedule }))
  },
  {
    kind: "time",
    name: "combinator:timeout",
    description: "`Effect.timeout(noop, \"1 second\")`, never firing",
    setup: async () => around((self) => Effect.timeout(self, callTimeout))
  },
  {
    kind: "time",
    name: "combinator:semaphore",
    description: "`semaphore.withPermit(noop)` on a `Semaphore` of 100 permits, uncontended",
    setup: async () => {
      const semaphore = await Effect.runPromise(Semaphore.make(100))
      return around((self) => semaphore.withPermit(self))
    }
  }
]
