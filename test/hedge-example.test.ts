import { program } from "@effect-resilience/example-policies/hedge"
import { assert, it } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import { TestClock } from "effect/testing"

// The README's hedge example, under TestClock: the hedge starts at 200 ms and answers 80 ms later.
it.effect("the hedge example returns what its last line says", () =>
  Effect.gen(function*() {
    const fiber = yield* Effect.forkChild(program)
    yield* TestClock.adjust("279 millis")
    assert.isUndefined(fiber.pollUnsafe())
    yield* TestClock.adjust("1 millis")
    assert.strictEqual(yield* Fiber.join(fiber), "price from replica 1 in 280ms, after 1 hedge")
  }))
