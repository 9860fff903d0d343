import { program } from "@effect-resilience/example-policies/healthMonitor"
import { assert, it } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import { TestClock } from "effect/testing"

// The README's health monitor example, under TestClock: its 65 seconds of checks pass in no time.
it.effect("the health monitor example returns what its last line says", () =>
  Effect.gen(function*() {
    const fiber = yield* Effect.forkChild(program)
    yield* TestClock.adjust("64999 millis")
    assert.isUndefined(fiber.pollUnsafe())
    yield* TestClock.adjust("1 millis")
    assert.deepStrictEqual(yield* Fiber.join(fiber), {
      alerts: ["Unknown -> Healthy", "Healthy -> Degraded", "Degraded -> Unhealthy", "Unhealthy -> Healthy"],
      lastError: "connection refused",
      detectionMillis: 20_000,
      recoveryMillis: 20_000
    })
  }))
