import { program } from "@effect-resilience/example-policies/recovery"
import { assert, it } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import { TestClock } from "effect/testing"

// The README's recovery example, under TestClock: the backoff and five minutes of uptime pass at once.
it.effect("the recovery example returns what its last line says", () =>
  Effect.gen(function*() {
    // Started by a TestClock sleep, so that the fibers it forks (the manager's consumer and workers) run until idle
    // before the clock moves on, as they would in real time.
    const fiber = yield* Effect.forkChild(Effect.delay(program, "1 millis"))
    yield* TestClock.adjust("1 millis")
    // 25 seconds to recover, 5 minutes up, and a last second.
    yield* TestClock.adjust("325 seconds")
    assert.isUndefined(fiber.pollUnsafe())
    yield* TestClock.adjust("1 second")
    assert.deepStrictEqual(yield* Fiber.join(fiber), {
      restarts: 2,
      successes: 1,
      averageRecoveryMillis: 25_000,
      worker: "Deferred"
    })
  }))
