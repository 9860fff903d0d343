import { program } from "@effect-resilience/example-policies/deferredDelivery"
import { assert, it } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import { TestClock } from "effect/testing"

// The README's deferred delivery example, under TestClock: the breaker's open time passes in no time.
it.effect("the deferred delivery example returns what its last line says", () =>
  Effect.gen(function*() {
    const fiber = yield* Effect.forkChild(program)
    yield* TestClock.adjust("30 seconds")
    assert.isUndefined(fiber.pollUnsafe(), "nothing goes out while the breaker is open")
    yield* TestClock.adjust("30 seconds")
    assert.deepStrictEqual(yield* Fiber.join(fiber), {
      receipts: ["Queued", "Queued", "Queued"],
      chat: ["Looking into it", "Found 3 results", "Here they are"],
      depth: 0
    })
  }))
