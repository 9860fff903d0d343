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

  it.effect("the simulated Qdrant and Firebase, in the process too, hold the users written last, not every user ever", () =>
    Effect.gen(function*() {
      const upstreams = yield* Upstreams.Upstreams
      const users = Upstreams.localMemoryUsers + 1
      for (let i = 0; i < users; i++) {
        yield* upstreams.qdrantUpsert(`user-${i}`, `remember effect ${i}`)
        yield* upstreams.firebaseSet(`session:user-${i}`, `{"turns":1,"n":${i}}`)
      }
      assert.strictEqual((yield* upstreams.qdrantSearch(`user-${users - 1}`, "effect")).length, 1)
      assert.strictEqual(yield* upstreams.firebaseGet(`session:user-${users - 1}`), `{"turns":1,"n":${users - 1}}`)
      assert.deepStrictEqual(yield* upstreams.qdrantSearch("user-0", "effect"), [])
      assert.strictEqual(yield* upstreams.firebaseGet("session:user-0"), undefined)
      // A user written again moves to the back.
      yield* upstreams.firebaseSet("session:user-1", "{}")
      yield* upstreams.firebaseSet("session:user-new", "{}")
      assert.strictEqual(yield* upstreams.firebaseGet("session:user-1"), "{}")
      assert.strictEqual(yield* upstreams.firebaseGet("session:user-2"), undefined)
    }).pipe(Effect.provide(Upstreams.layer)))

  it.effect("memories match by whole words in any script, not by ASCII fragments", () =>
    Effect.gen(function*() {
      const upstreams = yield* Upstreams.Upstreams
      yield* upstreams.qdrantUpsert("ada", "Ich mag Käsekuchen")
      yield* upstreams.qdrantUpsert("ada", "Crème brûlée, s'il vous plaît")
      const texts = (query: string) => upstreams.keywordMatch("ada", query).map((m) => m.text)
      assert.deepStrictEqual(texts("käsekuchen?"), ["Ich mag Käsekuchen"])
      assert.deepStrictEqual(texts("brûlée"), ["Crème brûlée, s'il vous plaît"])
      // A fragment of a word is not the word.
      assert.deepStrictEqual(texts("sekuchen"), [])
      assert.deepStrictEqual(
        (yield* upstreams.qdrantSearch("ada", "Crème")).map((m) => m.text),
        ["Crème brûlée, s'il vous plaît"]
      )
    }).pipe(Effect.provide(Upstreams.layer)))

  it.effect("Telegram's log and its duplicate keys stay bounded however much is sent, and a duplicate is still dropped", () =>
    Effect.gen(function*() {
      const upstreams = yield* Upstreams.Upstreams
      const sends = Upstreams.sentKeysKept + 10
      for (let i = 0; i < sends; i++) yield* upstreams.telegramSend("ada", `reply ${i}`, `key-${i}`)
      const sent = yield* upstreams.telegramSent
      assert.strictEqual(sent.length, Upstreams.sentShown)
      assert.deepStrictEqual(sent.at(-1), { user_id: "ada", text: `reply ${sends - 1}` })
      assert.deepStrictEqual(sent[0], { user_id: "ada", text: `reply ${sends - Upstreams.sentShown}` })
      // A key among the last ones kept is a duplicate; one from before them is not remembered any more.
      yield* upstreams.telegramSend("ada", "again", `key-${sends - 1}`)
      assert.strictEqual((yield* upstreams.telegramSent).at(-1)?.text, `reply ${sends - 1}`)
      yield* upstreams.telegramSend("ada", "long ago", "key-0")
      assert.strictEqual((yield* upstreams.telegramSent).at(-1)?.text, "long ago")
    }).pipe(Effect.provide(Upstreams.layer)))
})
