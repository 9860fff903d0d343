import * as CircuitBreaker from "@effect-resilience/core/CircuitBreaker"
import * as DeferredDelivery from "@effect-resilience/core/DeferredDelivery"
import * as RedisServer from "@effect-resilience/testing/RedisServer"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Option, Schema, Scope } from "effect"
import * as RedisQueueStore from "../src/RedisQueueStore.ts"
import * as RedisStore from "../src/RedisStore.ts"

/** A queue of strings on `journal`, its breaker forced open when `forced`, recording deliveries in `sent`. */
const openQueue = (journal: DeferredDelivery.Journal, sent: Array<string>, forced: boolean) =>
  Effect.gen(function*() {
    const breaker = yield* CircuitBreaker.make({ name: "telegram" })
    if (forced) yield* breaker.forceOpen()
    return yield* DeferredDelivery.make({
      name: "telegram",
      schema: Schema.String,
      sink: (text) => Effect.sync(() => void sent.push(text)),
      breaker,
      store: journal,
      retryInterval: "10 millis"
    })
  })

describe("RedisQueueStore", () => {
  it.live("keeps entries in one hash: set, get, keys, remove", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.make()
      yield* Effect.gen(function*() {
        const journal = yield* RedisQueueStore.make({ name: "outbox" })
        yield* journal.set("q/1", "one")
        yield* journal.set("q/2", "two")
        assert.deepStrictEqual(yield* journal.get("q/1"), Option.some("one"))
        assert.deepStrictEqual(yield* journal.get("q/3"), Option.none())
        assert.deepStrictEqual([...yield* journal.keys].sort(), ["q/1", "q/2"])
        yield* journal.remove("q/1")
        assert.deepStrictEqual(yield* journal.keys, ["q/2"])
        assert.deepStrictEqual(
          yield* RedisServer.command(server.port, ["HKEYS", "resilience:outbox"]),
          "*1\r\n$3\r\nq/2\r\n",
          "one hash under the store's prefix"
        )
      }).pipe(Effect.provide(RedisStore.layer({ url: server.url })))
    }).pipe(Effect.scoped))

  it.live("messages a queue acknowledged are delivered, in order, by the next queue on the same Redis", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.make()
      const sent: Array<string> = []
      yield* Effect.gen(function*() {
        const journal = yield* RedisQueueStore.make()
        const first = yield* Scope.make()
        const before = yield* Scope.provide(openQueue(journal, sent, true), first)
        for (const text of ["m1", "m2", "m3"]) {
          assert.strictEqual((yield* before.send(text, { key: text }))._tag, "Queued")
        }
        yield* Scope.close(first, Exit.void)
        assert.deepStrictEqual(sent, [])

        const second = yield* Scope.make()
        const after = yield* Scope.provide(openQueue(journal, sent, false), second)
        yield* after.awaitEmpty
        yield* Scope.close(second, Exit.void)
        assert.deepStrictEqual(sent, ["m1", "m2", "m3"])
        assert.deepStrictEqual(yield* journal.keys, [])
      }).pipe(Effect.provide(RedisStore.layer({ url: server.url })))
    }).pipe(Effect.scoped))

  it.live("with Redis gone, a message is refused with a Store error, not acknowledged", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.make()
      yield* Effect.gen(function*() {
        const journal = yield* RedisQueueStore.make()
        const queue = yield* openQueue(journal, [], true)
        yield* server.kill
        const error = yield* Effect.flip(queue.send("m1", { key: "k1" }))
        assert.strictEqual(error.reason, "Store")
        assert.strictEqual((error.cause as { readonly _tag: string })._tag, "RedisStoreError")
        assert.strictEqual((yield* queue.snapshot).depth, 0)
      }).pipe(Effect.provide(RedisStore.layer({ url: server.url, timeout: "500 millis" })))
    }).pipe(Effect.scoped))

  // They said `Redis eval failed: ... script: <sha>, on @user_script:1.`, naming no operation, entry or hash.
  it.live("a failure names the journal's operation, the entry and the hash", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.make()
      yield* Effect.gen(function*() {
        const journal = yield* RedisQueueStore.make({ name: "outbox" })
        yield* RedisServer.command(server.port, ["SET", "resilience:outbox", "not a hash"])
        const failures = [
          ["set", "q/1", yield* Effect.flip(journal.set("q/1", "one"))],
          ["get", "q/1", yield* Effect.flip(journal.get("q/1"))],
          ["remove", "q/1", yield* Effect.flip(journal.remove("q/1"))],
          ["keys", undefined, yield* Effect.flip(journal.keys)]
        ] as const
        for (const [operation, key, error] of failures) {
          assert(error instanceof RedisStore.RedisStoreError)
          assert.strictEqual(error.operation, operation)
          assert.strictEqual(error.key, key)
          assert.match(
            error.message,
            new RegExp(
              `^Redis queue store ${operation}${key === undefined ? "" : ` of "${key}"`} in hash ` +
                `resilience:outbox failed: .*WRONGTYPE`
            )
          )
        }
      }).pipe(Effect.provide(RedisStore.layer({ url: server.url })))
    }).pipe(Effect.scoped))

  it.effect("an empty name fails with PolicyConfigError", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(RedisQueueStore.make({ name: "" }))
      assert.deepStrictEqual(error.issues.map((issue) => issue.path), ["name"])
    }).pipe(Effect.provideService(RedisStore.RedisStore, {} as RedisStore.RedisStore)))
})
