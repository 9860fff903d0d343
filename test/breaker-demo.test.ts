import { demo } from "@effect-resilience/example-breaker-demo/demo"
import { assert, it } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import { TestClock, TestConsole } from "effect/testing"

// The program `pnpm start` runs, under TestClock: the same timeline, in no time.
it.effect("the demo trips, rejects, probes, reopens and closes, printing each transition", () =>
  Effect.gen(function*() {
    const fiber = yield* Effect.forkChild(Effect.scoped(demo))
    yield* TestClock.adjust("10 seconds")
    yield* Fiber.join(fiber)
    const lines = (yield* TestConsole.logLines).map(String)
    const transitions = lines.filter((line) => line.includes("[inventory]"))
    assert.deepStrictEqual(transitions, [
      "+1.00s  [inventory] Closed -> Open: 3 consecutive failures",
      "+2.25s  [inventory] Open -> HalfOpen: open duration elapsed, probing",
      "+2.25s  [inventory] HalfOpen -> Open: probe failed",
      "+4.50s  [inventory] Open -> HalfOpen: open duration elapsed, probing",
      "+4.75s  [inventory] HalfOpen -> Closed: 2 probes succeeded"
    ])
    assert.isTrue(lines.some((line) => line.includes("call: rejected at once, cached answer (retry in 750ms)")))
    assert.strictEqual(lines.at(-1), "+5.25s  final: Closed, 9 calls counted (4 failed), 3 rejected, 5 transitions")
  }))
