/**
 * cockatiel's circuit breaker around the async no-op, the way a Promise-based service would use it.
 *
 * - `cockatiel:closed`: `ConsecutiveBreaker(5)`, closed: `await policy.execute(fn)`.
 * - `cockatiel:open`: opened by 5 failures, then N calls each rejected with `BrokenCircuitError`.
 *
 * Compare with `baseline:promise`, the cost of the bare `await`.
 */
import { BrokenCircuitError, circuitBreaker, CircuitState, ConsecutiveBreaker, handleAll } from "cockatiel"
import { asyncNoop } from "./baselines.ts"
import { check, type TimedCase } from "./harness.ts"

const makePolicy = () => circuitBreaker(handleAll, { halfOpenAfter: 3_600_000, breaker: new ConsecutiveBreaker(5) })

const fail = async (): Promise<void> => {
  throw new Error("boom")
}

export const cockatiel: ReadonlyArray<TimedCase> = [
  {
    kind: "time",
    name: "cockatiel:closed",
    description: "cockatiel `ConsecutiveBreaker(5)`, closed: `await policy.execute(fn)`",
    setup: async () => {
      const policy = makePolicy()
      return {
        run: async (iterations) => {
          for (let i = 0; i < iterations; i++) await policy.execute(asyncNoop)
        },
        verify: async () => check(policy.state === CircuitState.Closed, "breaker left Closed")
      }
    }
  },
  {
    kind: "time",
    name: "cockatiel:open",
    description: "cockatiel, opened by 5 failures: `await policy.execute(fn)`, each `BrokenCircuitError`",
    setup: async () => {
      const policy = makePolicy()
      for (let i = 0; i < 5; i++) await policy.execute(fail).catch(() => {})
      check(policy.state === CircuitState.Open, "breaker not Open after 5 failures")
      let rejected = 0
      return {
        run: async (iterations) => {
          rejected = 0
          for (let i = 0; i < iterations; i++) {
            try {
              await policy.execute(asyncNoop)
            } catch (error) {
              if (!(error instanceof BrokenCircuitError)) throw error
              rejected++
            }
          }
        },
        verify: async (iterations) => {
          check(rejected === iterations, `${iterations - rejected} of ${iterations} calls were not rejected`)
          check(policy.state === CircuitState.Open, "breaker left Open")
        }
      }
    }
  }
]
