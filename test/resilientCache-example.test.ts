import { program } from "@effect-resilience/example-policies/resilientCache"
import { assert, it } from "@effect/vitest"
import { Effect } from "effect"

it.effect("the resilient cache example returns what its last line says", () =>
  Effect.gen(function*() {
    assert.deepStrictEqual(yield* program, {
      alice: "{\"user\":\"alice\",\"plan\":\"pro\"}",
      bob: "{\"user\":\"bob\",\"degraded\":true}",
      hitRate: 0.25,
      breaker: "Open"
    })
  }))
