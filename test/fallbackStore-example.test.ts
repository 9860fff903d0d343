import { program } from "@effect-resilience/example-policies/fallbackStore"
import { assert, it } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import { TestClock } from "effect/testing"

// The README's fallback store example, under TestClock: its two half-hour waits pass in no time.
it.effect("the fallback store example returns what its last line says", () =>
  Effect.gen(function*() {
    const fiber = yield* Effect.forkChild(program)
    yield* TestClock.adjust("59 minutes")
    assert.isUndefined(fiber.pollUnsafe())
    yield* TestClock.adjust("1 minute")
    assert.deepStrictEqual(yield* Fiber.join(fiber), [
      "sku-1: $19.99",
      "sku-1: $19.99 (cached)",
      "price unavailable"
    ])
  }))
