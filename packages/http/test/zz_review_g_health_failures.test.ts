import { CircuitBreaker } from "@effect-resilience/core"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { get, Server } from "./httpTest.ts"

describe("review g: /health circuit failures of a rate-tripped circuit", () => {
  it.effect("an open circuit tripped by its failure rate shows the failures that opened it, not 0", () =>
    Effect.gen(function*() {
      const search = yield* CircuitBreaker.make({
        name: "search",
        trip: CircuitBreaker.failureRate({ threshold: 0.5, window: CircuitBreaker.lastCalls(10), minimumCalls: 10 })
      })
      for (let i = 0; i < 4; i++) yield* search.protect(Effect.succeed("ok"))
      for (let i = 0; i < 5; i++) yield* Effect.ignore(search.protect(Effect.fail("timeout")))
      assert.deepStrictEqual((yield* get("/health")).json.circuits.search, { state: "closed", failures: 5 })
      // The sixth failure: 6 of the last 10 calls, the rate that opens it.
      yield* search.protect(Effect.succeed("ok")).pipe(Effect.ignore)
      yield* Effect.ignore(search.protect(Effect.fail("timeout")))
      assert.strictEqual(yield* search.state, "Open")
      const open = (yield* get("/health")).json.circuits.search
      assert.strictEqual(open.state, "open")
      assert.isAbove(open.failures, 0, "an open circuit reported with 0 failures toward opening it")
    }).pipe(Effect.provide(Server())))
})
