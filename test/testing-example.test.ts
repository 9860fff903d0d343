import { program } from "@effect-resilience/example-policies/testing"
import { assert, it } from "@effect/vitest"
import { Effect } from "effect"

// docs/testing.md's example: setState, TestClock and an in-memory store, with no real failures and no real waiting.
it.effect("the testing example serves the kept price while open and probes after the open duration", () =>
  Effect.gen(function*() {
    assert.deepStrictEqual(yield* program, {
      live: "sku-1: $19.99",
      whileOpen: ["sku-1: $19.99 (cached)", "unavailable (CircuitOpen)"],
      probing: "HalfOpen",
      afterProbe: "sku-1: $19.99"
    })
  }))
