import { program as levels } from "@effect-resilience/example-degradation/levels"
import { program as searchChain } from "@effect-resilience/example-degradation/searchChain"
import { assert, it } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import { TestClock } from "effect/testing"

// The README's graceful degradation examples, under TestClock.
it.effect("the search chain example returns what its last line says", () =>
  Effect.gen(function*() {
    const fiber = yield* Effect.forkChild(searchChain)
    yield* TestClock.adjust("10 minutes")
    assert.deepStrictEqual(yield* Fiber.join(fiber), [
      "tavily, 0 min old, after [exa: Failed]",
      "tavily (degraded), 10 min old, after [exa: BreakerOpen]",
      "unavailable (degraded), 0 min old, after [exa: BreakerOpen, tavily: Failed]",
      "served by: exa 0, tavily 2, unavailable 1"
    ])
  }))

it.effect("the degradation levels example returns what its last line says", () =>
  Effect.gen(function*() {
    assert.deepStrictEqual(yield* levels, [
      "0 healthy: Full functionality",
      "1 degraded: Search degraded: cached or unavailable",
      "2 degraded: Memory degraded: keyword routing, no vector search"
    ])
  }))
