// A store opening on a full disk could not write its lock, and failed to open: what it held could not be served
// after a restart, nor a queue's acknowledged messages delivered (which is what frees room). It opens without the
// lock now, unless a live store holds it.
import * as SmallDisk from "@effect-resilience/testing/SmallDisk"
import { NodeServices } from "@effect/platform-node"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Metric, Option, Schema } from "effect"
import * as CircuitBreaker from "../src/CircuitBreaker.ts"
import * as DeferredDelivery from "../src/DeferredDelivery.ts"
import * as FallbackStore from "../src/FallbackStore.ts"

const live = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  effect.pipe(Effect.provideService(Metric.MetricRegistry, new Map()), Effect.provide(NodeServices.layer))

describe("FallbackStore on a full disk", () => {
  it.effect("a FallbackStore restarted on a full disk opens and serves the entries it holds", () =>
    live(Effect.gen(function*() {
      const dir = yield* SmallDisk.make("64k")
      yield* Effect.scoped(Effect.gen(function*() {
        const store = yield* FallbackStore.make({ name: "test", directory: dir })
        yield* store.set("price:sku-1", "19.99")
      }))
      yield* SmallDisk.fill(dir)
      // The restart: nothing needs writing to serve "price:sku-1".
      const reopened = yield* Effect.exit(Effect.scoped(Effect.gen(function*() {
        const store = yield* FallbackStore.make({ name: "test", directory: dir })
        return yield* store.get("price:sku-1")
      })))
      if (Exit.isFailure(reopened)) assert.fail(`the store did not open on a full disk: ${String(reopened.cause)}`)
      assert.deepStrictEqual(reopened.value, Option.some("19.99"))
    })))

  it.effect("a message a DeferredDelivery queue acknowledged is delivered by the next process, disk full or not", () =>
    live(Effect.gen(function*() {
      const dir = yield* SmallDisk.make("64k")
      const delivered: Array<string> = []
      const queueOn = (forceOpen: boolean) =>
        Effect.gen(function*() {
          const breaker = yield* CircuitBreaker.make({ name: "sink" })
          if (forceOpen) yield* breaker.forceOpen()
          return yield* DeferredDelivery.make({
            name: "outbox",
            schema: Schema.String,
            sink: (message) => Effect.sync(() => void delivered.push(message)),
            breaker,
            store: yield* FallbackStore.make({ name: "journal", directory: dir }),
            retryInterval: "10 millis"
          })
        })
      yield* Effect.scoped(Effect.gen(function*() {
        const queue = yield* queueOn(true)
        const receipt = yield* queue.send("hello", { key: "m1" })
        assert.strictEqual(receipt._tag, "Queued")
      }))
      yield* SmallDisk.fill(dir)
      const next = yield* Effect.exit(Effect.scoped(Effect.gen(function*() {
        const queue = yield* queueOn(false)
        yield* queue.awaitEmpty.pipe(Effect.timeout("5 seconds"))
      })))
      if (Exit.isFailure(next)) assert.fail(`the next process could not open the journal: ${String(next.cause)}`)
      assert.deepStrictEqual(delivered, ["hello"])
    })))
})
