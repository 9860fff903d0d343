import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as Upstreams from "../examples/agent-service/src/Upstreams.ts"

describe("agent service: the simulated upstreams", () => {
  it.effect("the keyword memory the process keeps for a dead Qdrant holds the users seen last, not every user ever", () =>
    Effect.gen(function*() {
      const upstreams = yield* Upstreams.Upstreams
      const users = Upstreams.localMemoryUsers + 1
      for (let i = 0; i < users; i++) yield* upstreams.qdrantUpsert(`user-${i}`, `remember effect ${i}`)
      // The first user is the one left out; a returning user moves to the back.
      assert.deepStrictEqual(upstreams.keywordMatch("user-0", "effect"), [])
      assert.deepStrictEqual(upstreams.keywordMatch(`user-${users - 1}`, "effect").map((m) => m.text), [
        `remember effect ${users - 1}`
      ])
      yield* upstreams.qdrantUpsert("user-1", "remember effect again")
      yield* upstreams.qdrantUpsert("user-new", "remember effect new")
      assert.strictEqual(upstreams.keywordMatch("user-1", "effect").length, 2)
      assert.deepStrictEqual(upstreams.keywordMatch("user-2", "effect"), [])
    }).pipe(Effect.provide(Upstreams.layer)))
})
