import { program } from "@effect-resilience/example-policies/monitoring"
import { assert, it } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import { TestClock } from "effect/testing"

// The README's monitoring layers example, under TestClock: its 25 seconds of checks pass in no time.
it.effect("the monitoring example returns what its last line says", () =>
  Effect.gen(function*() {
    const fiber = yield* Effect.forkChild(program)
    yield* TestClock.adjust("24999 millis")
    assert.isUndefined(fiber.pollUnsafe())
    yield* TestClock.adjust("1 millis")
    assert.deepStrictEqual(yield* Fiber.join(fiber), {
      alerts: ["critical: worker is Unhealthy", "info: worker is Healthy"],
      restarts: 1,
      recovered: 1
    })
  }))
