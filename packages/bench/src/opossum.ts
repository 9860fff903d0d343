/**
 * opossum's circuit breaker around the async no-op.
 *
 * - `opossum:closed`: closed: `await breaker.fire()`.
 * - `opossum:open`: opened with `breaker.open()`, then N calls each rejected: `await breaker.fire().catch(...)`.
 *
 * opossum's per-call timeout (a timer per call) and latency percentiles are turned off, and so are its periodic
 * snapshots, so that what is measured is the breaker itself. It still counts every call into its rolling stats
 * and emits events. Each breaker is shut down at teardown, which clears its timers so the process can exit.
 */
import OpossumBreaker from "opossum"
import { asyncNoop } from "./baselines.ts"
import { check, type TimedCase } from "./harness.ts"

const makeBreaker = () =>
  new OpossumBreaker(asyncNoop, {
    timeout: false,
    rollingPercentilesEnabled: false,
    enableSnapshots: false,
    resetTimeout: 3_600_000
  })

export const opossum: ReadonlyArray<TimedCase> = [
  {
    kind: "time",
    name: "opossum:closed",
    description: "opossum, closed: `await breaker.fire()`",
    setup: async () => {
      const breaker = makeBreaker()
      return {
        run: async (iterations) => {
          for (let i = 0; i < iterations; i++) await breaker.fire()
        },
        verify: async () => check(breaker.closed, "breaker left Closed"),
        teardown: async () => breaker.shutdown()
      }
    }
  },
  {
    kind: "time",
    name: "opossum:open",
    description: "opossum, `breaker.open()`: `await breaker.fire().catch(() => {})`, each rejected",
    setup: async () => {
      const breaker = makeBreaker()
      breaker.open()
      check(breaker.opened, "breaker not open after open()")
      let rejected = 0
      const onRejected = () => {
        rejected++
      }
      return {
        run: async (iterations) => {
          rejected = 0
          for (let i = 0; i < iterations; i++) await breaker.fire().catch(onRejected)
        },
        verify: async (iterations) => {
          check(rejected === iterations, `${iterations - rejected} of ${iterations} calls were not rejected`)
          check(breaker.opened, "breaker left Open")
        },
        teardown: async () => breaker.shutdown()
      }
    }
  }
]
