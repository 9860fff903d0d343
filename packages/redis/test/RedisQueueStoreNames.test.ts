// RedisQueueStore passes journal keys to Redis through `eval`. A queue whose name held a lone surrogate (half an
// emoji, as `slice` can leave) had its entries stored under U+FFFD, acknowledged but never recognised by the next
// queue of that name: such a name is refused now.
import * as CircuitBreaker from "@effect-resilience/core/CircuitBreaker"
import * as DeferredDelivery from "@effect-resilience/core/DeferredDelivery"
import * as RedisServer from "@effect-resilience/testing/RedisServer"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Schema, Scope } from "effect"
import * as RedisQueueStore from "../src/RedisQueueStore.ts"
import * as RedisStore from "../src/RedisStore.ts"

// "outbox-" then the first half of "🚀": a name cut with `slice`.
const name = `outbox-${"🚀".slice(0, 1)}`

const openQueue = (journal: DeferredDelivery.Journal, sent: Array<string>, forced: boolean) =>
  Effect.gen(function*() {
    const breaker = yield* CircuitBreaker.make({ name: "telegram" })
    if (forced) yield* breaker.forceOpen()
    return yield* DeferredDelivery.make({
      name,
      schema: Schema.String,
      sink: (text) => Effect.sync(() => void sent.push(text)),
      breaker,
      store: journal,
      retryInterval: "10 millis"
    })
  })

describe("RedisQueueStore: a queue name with a lone surrogate on RedisQueueStore", () => {
  it.live(
    "an acknowledged message is refused or delivered by the next queue, never lost",
    () =>
      Effect.gen(function*() {
        const server = yield* RedisServer.make()
        const sent: Array<string> = []
        yield* Effect.gen(function*() {
          const journal = yield* RedisQueueStore.make()
          const first = yield* Scope.make()
          const made = yield* Effect.exit(Scope.provide(openQueue(journal, sent, true), first))
          if (Exit.isFailure(made)) return // refused up front: fine
          const receipt = yield* Effect.exit(made.value.send("m1", { key: "m1" }))
          yield* Scope.close(first, Exit.void)
          if (Exit.isFailure(receipt)) return // refused: nothing acknowledged, fine
          assert.strictEqual(receipt.value._tag, "Queued")

          const second = yield* Scope.make()
          const after = yield* Scope.provide(openQueue(journal, sent, false), second)
          yield* after.awaitEmpty.pipe(Effect.timeout("5 seconds"))
          yield* Scope.close(second, Exit.void)
          const left = yield* journal.keys
          assert.deepStrictEqual(
            sent,
            ["m1"],
            `the acknowledged m1 was not delivered; the hash holds ${JSON.stringify(left)}`
          )
        }).pipe(Effect.provide(RedisStore.layer({ url: server.url })))
      }).pipe(Effect.scoped),
    20_000
  )
})
