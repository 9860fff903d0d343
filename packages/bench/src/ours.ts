/**
 * Our breaker (`@effect-resilience/core`) on its hot paths, each as N calls inside one Effect program.
 *
 * - `ours:closed`: consecutive policy, closed: admission, the call, and recording a success.
 * - `ours:open`: forced open by 5 real failures, then N rejected calls: the fast-fail path, which is what a
 *   caller pays for every call while a dependency is down.
 * - `ours:window`: failure-rate policy over a 60-bucket rolling window, closed: the closed path plus a window
 *   update per call.
 * - `ours:pipeline`: our breaker, retry, timeout and bulkhead composed by `Policy.make`, around the no-op.
 * - `combinator:pipeline`: our breaker around Effect's own `Effect.retry`, `Effect.timeout` and `Semaphore`, in the
 *   same order, for comparison.
 * - `ours:keyed-cap-open`: a keyed breaker at its cap of 10,000 keys, all of them open (an outage), each call to a
 *   new key: the cap evicts the least recently used Closed key, past the open ones.
 *
 * The protected effect is built per call, as application code does (`breaker.protect(noop)` inside the loop).
 */
import { Bulkhead, CircuitBreaker, Policy, Retry, Timeout } from "@effect-resilience/core"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import * as Semaphore from "effect/Semaphore"
import { noop } from "./baselines.ts"
import { acquire, check, type Timed, type TimedCase } from "./harness.ts"

class Boom extends Data.TaggedError("Boom") {}

const makeBreaker = (trip: CircuitBreaker.TripPolicy) =>
  acquire(CircuitBreaker.make({ name: "bench", trip, openDuration: "1 hour" }))

/** A closed breaker timed around `call`, checked to be still closed after every sample. */
const closedCase = async (
  trip: CircuitBreaker.TripPolicy,
  wrap: (
    breaker: CircuitBreaker.CircuitBreaker
  ) => Effect.Effect<(self: Effect.Effect<void>) => Effect.Effect<void, unknown>>
): Promise<Timed> => {
  const { close, value: breaker } = await makeBreaker(trip)
  const call = await Effect.runPromise(wrap(breaker))
  return {
    run: (iterations) =>
      Effect.runPromise(Effect.gen(function*() {
        for (let i = 0; i < iterations; i++) yield* call(noop)
      })),
    verify: async () => check(await Effect.runPromise(breaker.state) === "Closed", "breaker left Closed"),
    teardown: close
  }
}

const protect = (breaker: CircuitBreaker.CircuitBreaker) => Effect.succeed(breaker.protect)

const retrySchedule = Schedule.exponential("10 millis")
const callTimeout = Duration.seconds(1)

const capKeys = 10_000

export const ours: ReadonlyArray<TimedCase> = [
  {
    kind: "time",
    name: "ours:closed",
    description: "our breaker, `consecutive(5)`, closed: `yield* breaker.protect(noop)`",
    setup: () => closedCase(CircuitBreaker.consecutive(5), protect)
  },
  {
    kind: "time",
    name: "ours:open",
    description: "our breaker, opened by 5 failures: `yield* Effect.exit(breaker.protect(noop))`, each rejected",
    setup: async () => {
      const { close, value: breaker } = await makeBreaker(CircuitBreaker.consecutive(5))
      await Effect.runPromise(Effect.gen(function*() {
        for (let i = 0; i < 5; i++) yield* Effect.exit(breaker.protect(Effect.fail(new Boom())))
      }))
      check(await Effect.runPromise(breaker.state) === "Open", "breaker not Open after 5 failures")
      let rejected = 0
      return {
        run: (iterations) => {
          rejected = 0
          return Effect.runPromise(Effect.gen(function*() {
            for (let i = 0; i < iterations; i++) {
              const exit = yield* Effect.exit(breaker.protect(noop))
              if (exit._tag === "Failure") rejected++
            }
          }))
        },
        verify: async (iterations) => {
          check(rejected === iterations, `${iterations - rejected} of ${iterations} calls were not rejected`)
          check(await Effect.runPromise(breaker.state) === "Open", "breaker left Open")
        },
        teardown: close
      }
    }
  },
  {
    kind: "time",
    name: "ours:window",
    description: "our breaker, `failureRate` over `rolling(\"60 seconds\", { buckets: 60 })`, closed",
    setup: () =>
      closedCase(
        CircuitBreaker.failureRate({
          threshold: 0.5,
          minimumCalls: 20,
          window: CircuitBreaker.rolling("60 seconds", { buckets: 60 })
        }),
        protect
      )
  },
  {
    kind: "time",
    name: "ours:pipeline",
    description: "`Policy` of our breaker, retry, timeout and bulkhead around the no-op: `yield* policy.protect(noop)`",
    setup: async () => {
      const { close, value } = await acquire(Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({
          name: "bench-pipeline",
          trip: CircuitBreaker.consecutive(5),
          openDuration: "1 hour"
        })
        const policy = yield* Policy.make({
          name: "bench",
          circuitBreaker: breaker,
          retry: yield* Retry.make({ name: "bench", schedule: Retry.exponential({ base: "10 millis", times: 3 }) }),
          timeout: yield* Timeout.make({ name: "bench", duration: callTimeout }),
          bulkhead: yield* Bulkhead.make({ name: "bench", maxConcurrent: 100 })
        })
        return { breaker, policy }
      }))
      return {
        run: (iterations) =>
          Effect.runPromise(Effect.gen(function*() {
            for (let i = 0; i < iterations; i++) yield* value.policy.protect(noop)
          })),
        verify: async () => check(await Effect.runPromise(value.breaker.state) === "Closed", "breaker left Closed"),
        teardown: close
      }
    }
  },
  {
    kind: "time",
    name: "combinator:pipeline",
    description: "our breaker ∘ `Effect.retry` ∘ `Effect.timeout` ∘ `Semaphore.withPermit` (Effect's combinators)",
    setup: () =>
      closedCase(
        CircuitBreaker.consecutive(5),
        (breaker) =>
          Effect.map(Semaphore.make(100), (bulkhead) => (self: Effect.Effect<void>) =>
            breaker.protect(
              bulkhead.withPermit(self).pipe(
                Effect.timeout(callTimeout),
                Effect.retry({ times: 3, schedule: retrySchedule })
              )
            ))
      )
  },
  {
    kind: "time",
    name: "ours:keyed-cap-open",
    description: `a keyed breaker at its cap (${capKeys} keys, all open), each call to a new key: ` +
      "`yield* breaker.protectKey(key)(noop)`",
    setup: async () => {
      const { close, value: breaker } = await acquire(CircuitBreaker.make({
        name: "bench-keyed-cap",
        trip: CircuitBreaker.consecutive(1),
        openDuration: "1 hour",
        keys: { maxKeys: capKeys }
      }))
      await Effect.runPromise(Effect.gen(function*() {
        for (let i = 0; i < capKeys; i++) yield* Effect.exit(breaker.protectKey(`open-${i}`)(Effect.fail(new Boom())))
      }))
      let next = 0
      return {
        run: (iterations) =>
          Effect.runPromise(Effect.gen(function*() {
            for (let i = 0; i < iterations; i++) yield* breaker.protectKey(`new-${next++}`)(noop)
          })),
        verify: async () => {
          const held = await Effect.runPromise(breaker.snapshots)
          const open = held.filter((snapshot) => snapshot.state === "Open").length
          // The first new key found no Closed key and took the oldest open one; every later one pushed out the key
          // before it, the only Closed key: the other open keys stay.
          check(open === capKeys - 1, `${capKeys - 1 - open} more open keys were evicted`)
          check(held.length === capKeys + 1, `${held.length - 1} keys held, expected ${capKeys}`)
        },
        teardown: close
      }
    }
  }
]
