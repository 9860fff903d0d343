import { program } from "@effect-resilience/example-policies/timeout"
import { assert, it } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import { TestClock } from "effect/testing"

// The README's timeout example, under TestClock: the two seconds the hanging request gets pass in no time.
it.effect("the timeout example returns what its last line says", () =>
  Effect.gen(function*() {
    const fiber = yield* Effect.forkChild(program)
    yield* TestClock.adjust("1999 millis")
    assert.isUndefined(fiber.pollUnsafe())
    yield* TestClock.adjust("1 millis")
    assert.deepStrictEqual(yield* Fiber.join(fiber), {
      socks: 12,
      boots: "Operation \"stock\" timed out after 2s",
      aborted: 1
    })
  }))
