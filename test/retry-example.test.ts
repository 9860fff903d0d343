import { program } from "@effect-resilience/example-policies/retry"
import { assert, it } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import { TestClock } from "effect/testing"

// The README's retry example, under TestClock: the backoff and the second the 429 asks for pass in no time.
it.effect("the retry example returns what its last line says", () =>
  Effect.gen(function*() {
    const fiber = yield* Effect.forkChild(program)
    // The first retry waits under 100ms; the second waits the 429's Retry-After, a full second.
    yield* TestClock.adjust("1 second")
    assert.isUndefined(fiber.pollUnsafe())
    yield* TestClock.adjust("100 millis")
    assert.deepStrictEqual(yield* Fiber.join(fiber), { stock: 42, missing: "HTTP 404", retries: 2, notRetried: 1 })
  }))
