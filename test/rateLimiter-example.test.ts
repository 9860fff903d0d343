import { program } from "@effect-resilience/example-policies/rateLimiter"
import { assert, it } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import { TestClock } from "effect/testing"

// The README's rate limiter example, under TestClock: the sync's two seconds of waiting pass in no time.
it.effect("the rate limiter example returns what its last line says", () =>
  Effect.gen(function*() {
    const fiber = yield* Effect.forkChild(program)
    yield* TestClock.adjust("1 second")
    // Still waiting for its last window.
    assert.isUndefined(fiber.pollUnsafe())
    yield* TestClock.adjust("1 second")
    assert.deepStrictEqual(yield* Fiber.join(fiber), {
      answers: ["42.00", "42.00", "42.00", "busy, retry in 1s"],
      syncTook: "2s"
    })
  }))
