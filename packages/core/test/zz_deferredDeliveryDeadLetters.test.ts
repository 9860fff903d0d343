// Soak finding: dead letters have no bound and no retention. Each one stays in memory (`dead`, `keys`) and in the
// journal (one store entry) until someone calls `replay` or `drop`; `maxDepth` bounds the queue only. The agent
// service exposes neither (no route lists, replays or drops its dead letters), so every poison message, and every
// message of an outage longer than `maxAge` (1 day), is held for the life of the journal, and its key is answered
// `Duplicate` for good (the same user sending the same text in a later Claude outage is never answered).
import { assert, describe, it } from "@effect/vitest"
import { Data, Effect, Schema } from "effect"
import * as CircuitBreaker from "../src/CircuitBreaker.ts"
import * as DeferredDelivery from "../src/DeferredDelivery.ts"
import * as FallbackStore from "../src/FallbackStore.ts"

class Rejected extends Data.TaggedError("Rejected")<{ readonly message: string }> {}

describe("DeferredDelivery: dead letters over time", () => {
  it.effect("dead letters stay bounded (like the queue, by maxDepth) however many poison messages come", () =>
    Effect.gen(function*() {
      const store = yield* FallbackStore.makeMemory()
      const maxDepth = 10
      const queue = yield* DeferredDelivery.make({
        name: "telegram",
        schema: Schema.String,
        // Every message is refused for good (a 400): dead-lettered at its first failure.
        sink: (message) => Effect.fail(new Rejected({ message: `rejected ${message}` })),
        breaker: yield* CircuitBreaker.make({ name: "telegram", trip: CircuitBreaker.consecutive(1_000_000) }),
        store,
        maxDeadLetters: maxDepth,
        isPermanent: () => true
      })
      const messages = 200
      for (let i = 0; i < messages; i++) {
        yield* queue.send(`poison ${i}`, { key: `k${i}` })
        yield* queue.awaitEmpty
      }
      const snapshot = yield* queue.snapshot
      assert.strictEqual(snapshot.depth, 0)
      assert.strictEqual(snapshot.deadLettered, messages)
      assert.isAtMost(snapshot.deadLetters, maxDepth, `${snapshot.deadLetters} dead letters held in memory`)
      assert.isAtMost(yield* store.size, maxDepth, "journal entries held for dead letters")
    }).pipe(Effect.scoped))
})
