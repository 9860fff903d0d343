import { program } from "@effect-resilience/example-policies/policy"
import { assert, it } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import { TestClock } from "effect/testing"

it.effect("the policy example returns what its last line says", () =>
  Effect.gen(function*() {
    const fiber = yield* Effect.forkChild(program)
    yield* TestClock.adjust("10 seconds")
    assert.strictEqual(yield* Fiber.join(fiber), "effect: 42 results after 3 attempts; the breaker saw 1 success")
  }))
