import { program } from "@effect-resilience/example-policies/chaos"
import { assert, it } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import { TestClock } from "effect/testing"

// The README's chaos example, under TestClock: the injected delays pass in no time, and the seed fixes the run.
it.effect("the chaos example returns what its last line says", () =>
  Effect.gen(function*() {
    const fiber = yield* Effect.forkChild(program)
    yield* TestClock.adjust("10 seconds")
    assert.deepStrictEqual(yield* Fiber.join(fiber), {
      before: "in stock",
      during: ["in stock", "down", "in stock", "slow"],
      after: "in stock"
    })
  }))
