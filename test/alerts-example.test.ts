import { program } from "@effect-resilience/example-policies/alerts"
import { assert, it } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import { TestClock } from "effect/testing"

// The README's alerts example, under TestClock: three minutes of flapping and the ten-minute window pass at once.
it.effect("the alerts example returns what its last line says", () =>
  Effect.gen(function*() {
    // Started by a TestClock sleep, so that the fibers it forks (the manager's consumer and workers) run until idle
    // before the clock moves on, as they would in real time.
    const fiber = yield* Effect.forkChild(Effect.delay(program, "1 millis"))
    yield* TestClock.adjust("1 millis")
    // 3 minutes of flapping, 10 minutes of quiet, and a last second.
    yield* TestClock.adjust("13 minutes")
    assert.isUndefined(fiber.pollUnsafe())
    yield* TestClock.adjust("1 second")
    assert.deepStrictEqual(yield* Fiber.join(fiber), {
      channel: ["[critical] db is Unhealthy", "[info] db is Healthy", "[critical] db is Unhealthy (x3)"],
      deduplicated: 4,
      suppressed: 1
    })
  }))
