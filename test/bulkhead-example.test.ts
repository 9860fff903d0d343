import { program } from "@effect-resilience/example-policies/bulkhead"
import { assert, it } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import { TestClock } from "effect/testing"

// The README's bulkhead example, under TestClock: the queries' 300ms and the 500ms wait pass in no time.
it.effect("the bulkhead example returns what its last line says", () =>
  Effect.gen(function*() {
    const fiber = yield* Effect.forkChild(program)
    // 3 and 4 finish at 600ms; 5 gave up at 500ms.
    yield* TestClock.adjust("599 millis")
    assert.isUndefined(fiber.pollUnsafe())
    yield* TestClock.adjust("1 millis")
    assert.deepStrictEqual(yield* Fiber.join(fiber), [
      "report 1",
      "report 2",
      "report 3",
      "report 4",
      "WaitTimeout, retry in 300ms",
      "QueueFull, retry in 0"
    ])
  }))
