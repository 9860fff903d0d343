import { NodeServices } from "@effect/platform-node"
import { assert, describe, it } from "@effect/vitest"
import {
  Clock,
  Context,
  Data,
  Deferred,
  Duration,
  Effect,
  Exit,
  Fiber,
  FileSystem,
  Metric,
  Option,
  Schema,
  SchemaGetter,
  Scope
} from "effect"
import { TestClock } from "effect/testing"
import { spawn } from "node:child_process"
import { join } from "node:path"
import * as CircuitBreaker from "../src/CircuitBreaker.ts"
import * as DeferredDelivery from "../src/DeferredDelivery.ts"
import * as FallbackStore from "../src/FallbackStore.ts"
import { interruptedAfter, protectedCalls, yieldTimes } from "./interruption.ts"

class Greeting extends Context.Service<Greeting, string>()("test/DeferredDelivery/Greeting") {}

class SinkDown extends Data.TaggedError("SinkDown")<{ readonly message: string }> {}

/** A delivery held in the sink: `entered` once the sink has it, and the sink goes on once `release` is done. */
interface Held {
  readonly entered: Deferred.Deferred<void>
  readonly release: Deferred.Deferred<void>
}

/**
 * A sink that records what it was given, and fails for the messages in `failing` (or all while `down`). A message
 * `hold` was called for waits for its release once; one in `interrupting` ends interrupted once, as a sink does that
 * joins a request fiber something else interrupted.
 */
const recordingSink = () => {
  const calls: Array<{ readonly message: string; readonly key: string; readonly attempt: number }> = []
  const failing = new Set<string>()
  const interrupting = new Set<string>()
  const holds = new Map<string, Held>()
  const state = { down: false }
  const succeeded: Array<string> = []
  const answer = (message: string) =>
    Effect.suspend(() => {
      if (state.down || failing.has(message)) return Effect.fail(new SinkDown({ message: `rejected ${message}` }))
      succeeded.push(message)
      return Effect.void
    })
  const sink = (message: string, delivery: DeferredDelivery.Delivery): Effect.Effect<void, SinkDown> =>
    Effect.suspend(() => {
      calls.push({ message, key: delivery.key, attempt: delivery.attempt })
      if (interrupting.delete(message)) {
        return Effect.forkChild(Effect.never).pipe(Effect.tap(Fiber.interrupt), Effect.flatMap(Fiber.join))
      }
      const held = holds.get(message)
      if (held === undefined) return answer(message)
      holds.delete(message)
      return Deferred.succeed(held.entered, undefined).pipe(
        Effect.andThen(Deferred.await(held.release)),
        Effect.andThen(answer(message))
      )
    })
  const hold = (message: string): Held => {
    const held = { entered: Deferred.makeUnsafe<void>(), release: Deferred.makeUnsafe<void>() }
    holds.set(message, held)
    return held
  }
  const delivered = () => [...succeeded]
  return { calls, failing, interrupting, hold, state, sink, delivered }
}

/** What a function of the user's with a bug does. */
const throwing = (message: string): never => {
  throw new Error(message)
}

type StringOptions = Partial<DeferredDelivery.Options<typeof Schema.String, SinkDown, never>>

/**
 * A queue of strings on an in-memory journal behind a breaker of default settings, with `options` over them: what
 * most tests start from.
 */
const memoryQueue = (sink: ReturnType<typeof recordingSink>["sink"], options: StringOptions = {}) =>
  Effect.gen(function*() {
    const breaker = yield* CircuitBreaker.make({ name: "telegram" })
    const store = yield* FallbackStore.makeMemory()
    const queue = yield* DeferredDelivery.make({
      name: "telegram",
      schema: Schema.String,
      sink,
      breaker,
      store,
      ...options
    })
    return { breaker, queue, store }
  })

/** A queue of strings on `store`, opened in `scope`: closing it and opening another on the same store is a restart. */
const queueIn = (
  scope: Scope.Scope,
  store: DeferredDelivery.Journal,
  sink: ReturnType<typeof recordingSink>["sink"],
  options: StringOptions = {}
) =>
  Effect.gen(function*() {
    const breaker = yield* CircuitBreaker.make({ name: "telegram" })
    return yield* DeferredDelivery.make({ name: "telegram", schema: Schema.String, sink, breaker, store, ...options })
  }).pipe(Scope.provide(scope))

/** Dead-letters m1 to m`count` (keys k1 to k`count`), an hour apart, through a queue whose `isPermanent` says so. */
const deadLetterHourly = (
  queue: DeferredDelivery.DeferredDelivery<string>,
  failing: Set<string>,
  count: number
) =>
  Effect.gen(function*() {
    for (let i = 1; i <= count; i++) {
      failing.add(`m${i}`)
      yield* queue.send(`m${i}`, { key: `k${i}` })
      yield* queue.awaitEmpty
      yield* TestClock.adjust("1 hour")
    }
  })

const tempDir = Effect.gen(function*() {
  const fs = yield* FileSystem.FileSystem
  return yield* Effect.acquireRelease(
    fs.makeTempDirectory({ prefix: "deferred-delivery-" }),
    (dir) => Effect.orDie(fs.remove(dir, { recursive: true, force: true }))
  )
})

describe("DeferredDelivery", () => {
  describe("order", () => {
    it.effect("delivers at once when healthy; queues while open; drains in order once it closes", () =>
      Effect.gen(function*() {
        const { calls, sink } = recordingSink()
        const { breaker, queue } = yield* memoryQueue(sink)
        assert.deepStrictEqual(yield* queue.send("m0", { key: "k0" }), { _tag: "Delivered", key: "k0" })
        yield* breaker.forceOpen()
        const receipts = []
        for (const m of ["m1", "m2", "m3"]) receipts.push(yield* queue.send(m, { key: `k${m.slice(1)}` }))
        assert.deepStrictEqual(receipts.map((r) => r._tag === "Queued" && r.depth), [1, 2, 3])
        yield* TestClock.adjust("5 seconds")
        assert.deepStrictEqual(calls.map((c) => c.message), ["m0"], "nothing goes through a forced-open breaker")
        const waiting = yield* queue.snapshot
        assert.strictEqual(waiting.depth, 3)
        assert.strictEqual(waiting.oldestAgeMillis, 5000)
        assert.deepStrictEqual(waiting.head, { key: "k1", attempts: 0, lastError: null })

        yield* breaker.reset()
        // Something is queued, so a new message goes behind it rather than ahead.
        assert.strictEqual((yield* queue.send("m4", { key: "k4" }))._tag, "Queued")
        yield* TestClock.adjust("1 second")
        yield* queue.awaitEmpty
        assert.deepStrictEqual(calls.map((c) => [c.message, c.key, c.attempt]), [
          ["m0", "k0", 1],
          ["m1", "k1", 1],
          ["m2", "k2", 1],
          ["m3", "k3", 1],
          ["m4", "k4", 1]
        ])
        assert.deepStrictEqual(yield* queue.send("m5"), { _tag: "Delivered", key: calls[5].key })
        assert.match(calls[5].key, /^[0-9a-f]{32}$/)
        const drained = yield* queue.snapshot
        assert.strictEqual(drained.depth, 0)
        assert.strictEqual(drained.oldestAgeMillis, null)
        assert.strictEqual(drained.enqueued, 4)
        assert.strictEqual(drained.delivered, 6)
        assert.strictEqual(drained.deliveredDirect, 2)
      }).pipe(Effect.scoped))

    it.effect("a delivery runs with make's services, a direct one under the caller's span; the caller's are back after", () =>
      Effect.gen(function*() {
        const seen: Array<{ readonly message: string; readonly greeting: string; readonly span: string | undefined }> =
          []
        const sink = (message: string) =>
          Effect.gen(function*() {
            const span = yield* Effect.option(Effect.currentSpan)
            seen.push({ message, greeting: yield* Greeting, span: Option.getOrUndefined(span)?.name })
          })
        const breaker = yield* CircuitBreaker.make({ name: "greeter" })
        const queue = yield* DeferredDelivery.make({
          name: "greeter",
          schema: Schema.String,
          sink,
          breaker,
          store: yield* FallbackStore.makeMemory()
        }).pipe(Effect.provideService(Greeting, "from make"))
        const request = (message: string) =>
          Effect.gen(function*() {
            const receipt = yield* queue.send(message, { key: message })
            return { receipt: receipt._tag, greeting: yield* Greeting }
          }).pipe(Effect.withSpan("request"), Effect.provideService(Greeting, "from the caller"))

        assert.deepStrictEqual(yield* request("direct"), { receipt: "Delivered", greeting: "from the caller" })
        yield* breaker.forceOpen()
        assert.deepStrictEqual(yield* request("queued"), { receipt: "Queued", greeting: "from the caller" })
        yield* breaker.reset()
        yield* TestClock.adjust("1 second")
        yield* queue.awaitEmpty
        assert.deepStrictEqual(seen, [
          { message: "direct", greeting: "from make", span: "request" },
          { message: "queued", greeting: "from make", span: undefined }
        ])
      }).pipe(Effect.scoped))

    it.effect("concurrent senders: the sink sees messages in the order their sends were acknowledged", () =>
      Effect.gen(function*() {
        const { calls, sink } = recordingSink()
        const { breaker, queue } = yield* memoryQueue(sink)
        yield* breaker.forceOpen()
        const receipts = yield* Effect.forEach(
          Array.from({ length: 50 }, (_, i) => `m${i}`),
          (m) => Effect.map(queue.send(m, { key: m }), (receipt) => ({ m, receipt })),
          { concurrency: "unbounded" }
        )
        const acknowledged = receipts
          .map(({ m, receipt }) => ({ m, depth: receipt._tag === "Queued" ? receipt.depth : -1 }))
          .sort((a, b) => a.depth - b.depth)
        assert.deepStrictEqual(acknowledged.map((r) => r.depth), Array.from({ length: 50 }, (_, i) => i + 1))
        yield* breaker.reset()
        yield* TestClock.adjust("1 second")
        yield* queue.awaitEmpty
        assert.deepStrictEqual(calls.map((c) => c.message), acknowledged.map((r) => r.m))
      }).pipe(Effect.scoped))

    it.effect("a defect in the journal does not stop the drainer: it tries again after retryInterval", () =>
      Effect.gen(function*() {
        const store = yield* FallbackStore.makeMemory()
        let defects = 1
        const flaky = {
          ...store,
          remove: (key: string) => defects-- > 0 ? Effect.die("driver bug") : store.remove(key)
        }
        const { calls, sink } = recordingSink()
        const breaker = yield* CircuitBreaker.make({ name: "telegram" })
        yield* breaker.forceOpen()
        const queue = yield* DeferredDelivery.make({
          name: "telegram",
          schema: Schema.String,
          sink,
          breaker,
          store: flaky
        })
        yield* queue.send("m1", { key: "k1" })
        yield* queue.send("m2", { key: "k2" })
        yield* breaker.reset()
        yield* TestClock.adjust("1 second")
        yield* TestClock.adjust("1 second")
        assert.strictEqual((yield* queue.snapshot).depth, 0)
        // m1's removal died: it was delivered again (same key), then the queue went on.
        assert.deepStrictEqual(calls.map((c) => c.key), ["k1", "k1", "k2"])
      }).pipe(Effect.scoped))

    it.effect("send delivers directly only through a closed breaker: open or due to probe, it queues untried", () =>
      Effect.gen(function*() {
        const { calls, sink } = recordingSink()
        const { breaker, queue } = yield* memoryQueue(sink)
        // Open: queued without a call, and without asking the breaker (which would count a rejection).
        yield* CircuitBreaker.setState(breaker, "Open", { openFor: "30 seconds" })
        assert.strictEqual((yield* queue.send("m1", { key: "k1" }))._tag, "Queued")
        assert.strictEqual(calls.length, 0)
        assert.strictEqual((yield* queue.snapshot).rejectedAttempts, 0)
        assert.strictEqual((yield* breaker.snapshot).rejectedCount, 0)
        yield* TestClock.adjust("30 seconds")
        yield* queue.awaitEmpty
        // Its open time up (HalfOpen to the next call): the probe is the drainer's, not this caller's.
        yield* CircuitBreaker.setState(breaker, "Open", { openFor: "1 second" })
        yield* TestClock.adjust("1 second")
        assert.strictEqual((yield* queue.send("m2", { key: "k2" }))._tag, "Queued")
        yield* queue.awaitEmpty
        const snapshot = yield* queue.snapshot
        assert.deepStrictEqual([snapshot.delivered, snapshot.deliveredDirect], [2, 0])
        assert.deepStrictEqual(calls.map((c) => c.message), ["m1", "m2"])
      }).pipe(Effect.scoped))

    it.effect("a message is probed when the open time is up, not a retryInterval later", () =>
      Effect.gen(function*() {
        const { calls, sink, state } = recordingSink()
        const breaker = yield* CircuitBreaker.make({
          name: "telegram",
          trip: CircuitBreaker.consecutive(1),
          openDuration: "30 seconds"
        })
        const queue = yield* DeferredDelivery.make({
          name: "telegram",
          schema: Schema.String,
          sink,
          breaker,
          store: yield* FallbackStore.makeMemory(),
          retryInterval: "1 second"
        })
        state.down = true
        // Fails and trips the breaker: queued, attempt not counted (the sink is to blame).
        assert.strictEqual((yield* queue.send("m1", { key: "k1" }))._tag, "Queued")
        state.down = false
        yield* TestClock.adjust("29 seconds")
        assert.strictEqual(calls.length, 1)
        yield* TestClock.adjust("1 second")
        yield* queue.awaitEmpty
        assert.deepStrictEqual(calls.map((c) => c.attempt), [1, 1])
        assert.strictEqual((yield* queue.snapshot).rejectedAttempts, 1)
      }).pipe(Effect.scoped))
  })

  describe("interruption", () => {
    it.effect("a breaker predicate that throws on a direct delivery has failed it: queued with the sink's error", () =>
      Effect.gen(function*() {
        const { calls, failing, sink } = recordingSink()
        const breaker = yield* CircuitBreaker.make({ name: "telegram", isFailure: () => throwing("isFailure bug") })
        const queue = yield* DeferredDelivery.make({
          name: "telegram",
          schema: Schema.String,
          sink,
          breaker,
          store: yield* FallbackStore.makeMemory()
        })
        failing.add("m1")
        assert.deepStrictEqual(yield* queue.send("m1", { key: "k1" }), { _tag: "Queued", key: "k1", depth: 1 })
        assert.deepStrictEqual((yield* queue.snapshot).head, {
          key: "k1",
          attempts: 1,
          lastError: "SinkDown: rejected m1"
        })
        assert.strictEqual((yield* breaker.snapshot).state, "Closed")
        failing.delete("m1")
        yield* TestClock.adjust("1 second")
        yield* queue.awaitEmpty
        assert.deepStrictEqual(calls.map((c) => [c.message, c.attempt]), [["m1", 1], ["m1", 2]])
        // The direct path took the lock and gave it back: the next send is delivered at once.
        assert.deepStrictEqual(yield* queue.send("m2", { key: "k2" }), { _tag: "Delivered", key: "k2" })
      }).pipe(Effect.scoped))

    it.effect("a send interrupted during its direct delivery queues the message, then the caller is interrupted", () =>
      Effect.gen(function*() {
        const { calls, delivered, hold, sink } = recordingSink()
        const { queue } = yield* memoryQueue(sink)
        const held = hold("m1")
        const sending = yield* Effect.forkChild(queue.send("m1", { key: "k1" }))
        yield* Deferred.await(held.entered)
        yield* Fiber.interrupt(sending)
        assert.isTrue(Exit.hasInterrupts(yield* Fiber.await(sending)))
        // The sink may have it or not: it is queued, and delivered again under its key (the consumer drops a
        // duplicate).
        yield* queue.awaitEmpty
        assert.deepStrictEqual(calls.map((c) => [c.key, c.attempt]), [["k1", 1], ["k1", 1]])
        assert.deepStrictEqual(delivered(), ["m1"])
        const after = yield* queue.snapshot
        assert.strictEqual(after.enqueued, 1)
        assert.strictEqual(after.delivered, 1)
        assert.strictEqual(after.failedAttempts, 0)
      }).pipe(Effect.scoped))

    it.effect("a send interrupted at any point, the lock free or held, leaves the lock and the breaker free", () =>
      Effect.gen(function*() {
        for (const [name, call] of Object.entries(protectedCalls)) {
          for (const contended of [false, true]) {
            for (let turns = 0; turns < 30; turns++) {
              yield* Effect.scoped(Effect.gen(function*() {
                // The first delivery of "x" does what `call` does, that of "a" takes a few turns; others succeed.
                let first = true
                const sink = (message: string) => {
                  if (message === "a") return yieldTimes(5)
                  if (message !== "x" || !first) return Effect.void
                  first = false
                  return Effect.asVoid(Effect.mapError(call, () => new SinkDown({ message: "down" })))
                }
                const { breaker, queue } = yield* memoryQueue(sink)
                // Contended: another send holds the lock, its delivery a few turns long, when "x" is sent.
                const other = contended
                  ? yield* Effect.forkChild(queue.send("a", { key: "a" }), { startImmediately: true })
                  : undefined
                yield* interruptedAfter(queue.send("x", { key: "x" }), turns)
                if (other !== undefined) yield* Fiber.await(other)
                const label = `${name}${contended ? ", contended" : ""}, interrupted after ${turns} turns`
                yield* TestClock.adjust("1 minute")
                assert.strictEqual((yield* breaker.snapshot).halfOpen?.probesInFlight ?? 0, 0, label)
                yield* breaker.reset()
                const next = yield* Effect.forkChild(queue.send("b", { key: "b" }))
                yield* TestClock.adjust("1 minute")
                assert.isDefined(next.pollUnsafe(), `${label}: the next send waits for the lock`)
                yield* queue.awaitEmpty
              }))
            }
          }
        }
      }))

    it.effect("a send interrupted while the health check judges its failed delivery queues the message", () =>
      Effect.gen(function*() {
        const { failing, sink } = recordingSink()
        failing.add("m1")
        const judging = { entered: Deferred.makeUnsafe<void>(), release: Deferred.makeUnsafe<void>() }
        const { queue } = yield* memoryQueue(sink, {
          healthCheck: Deferred.succeed(judging.entered, undefined).pipe(
            Effect.andThen(Deferred.await(judging.release))
          )
        })
        const sending = yield* Effect.forkChild(queue.send("m1", { key: "k1" }))
        yield* Deferred.await(judging.entered)
        yield* Fiber.interrupt(sending)
        assert.isTrue(Exit.hasInterrupts(yield* Fiber.await(sending)))
        const after = yield* queue.snapshot
        assert.strictEqual(after.depth, 1)
        assert.deepStrictEqual(after.head, {
          key: "k1",
          attempts: 0,
          lastError: "interrupted during a direct delivery"
        })
      }).pipe(Effect.scoped))

    it.effect("a sink that ends interrupted on its own has failed the delivery: queued, retried, the queue moves on", () =>
      Effect.gen(function*() {
        const { calls, delivered, interrupting, sink } = recordingSink()
        const { breaker, queue } = yield* memoryQueue(sink)
        interrupting.add("m1")
        // The caller was not interrupted: it hears that the message is queued.
        const receipt = yield* queue.send("m1", { key: "k1" })
        assert.deepStrictEqual(receipt, { _tag: "Queued", key: "k1", depth: 1 })
        assert.match((yield* queue.snapshot).head?.lastError ?? "", /the sink ended interrupted/)
        // The same in the drainer: it retries after retryInterval instead of stopping for good.
        yield* breaker.forceOpen()
        assert.strictEqual((yield* queue.send("m2", { key: "k2" }))._tag, "Queued")
        interrupting.add("m1")
        yield* breaker.reset()
        yield* TestClock.adjust("1 second")
        yield* TestClock.adjust("1 second")
        yield* queue.awaitEmpty
        assert.deepStrictEqual(calls.map((c) => [c.key, c.attempt]), [["k1", 1], ["k1", 2], ["k1", 3], ["k2", 1]])
        assert.deepStrictEqual(delivered(), ["m1", "m2"])
      }).pipe(Effect.scoped))

    it.effect("the scope closing while the drainer delivers leaves the head as it was, for the next queue to deliver", () =>
      Effect.gen(function*() {
        const { calls, delivered, hold, sink } = recordingSink()
        const store = yield* FallbackStore.makeMemory()
        const breaker = yield* CircuitBreaker.make({ name: "telegram" })
        const open = (scope: Scope.Scope) =>
          DeferredDelivery.make({ name: "telegram", schema: Schema.String, sink, breaker, store }).pipe(
            Scope.provide(scope)
          )
        const first = yield* Scope.make()
        const before = yield* open(first)
        yield* breaker.forceOpen()
        yield* before.send("m1", { key: "k1" })
        yield* before.send("m2", { key: "k2" })
        const held = hold("m1")
        yield* breaker.reset()
        yield* TestClock.adjust("1 second")
        yield* Deferred.await(held.entered)
        yield* Scope.close(first, Exit.void)
        const stopped = yield* before.snapshot
        assert.strictEqual(stopped.depth, 2)
        assert.deepStrictEqual(stopped.head, { key: "k1", attempts: 0, lastError: null })
        assert.strictEqual(stopped.failedAttempts, 0)

        const after = yield* Effect.scoped(
          Effect.andThen(Effect.flatMap(Effect.scope, open), (queue) => queue.awaitEmpty)
        )
        assert.isUndefined(after)
        assert.deepStrictEqual(calls.map((c) => [c.key, c.attempt]), [["k1", 1], ["k1", 1], ["k2", 1]])
        assert.deepStrictEqual(delivered(), ["m1", "m2"])
      }))
  })

  describe("durability", () => {
    it.effect("messages acknowledged by one queue are delivered by the next on the same directory", () =>
      Effect.gen(function*() {
        const directory = yield* tempDir
        const { calls, sink } = recordingSink()
        const open = (scope: Scope.Scope, forced: boolean) =>
          Effect.gen(function*() {
            const breaker = yield* CircuitBreaker.make({ name: "telegram" })
            if (forced) yield* breaker.forceOpen()
            return yield* DeferredDelivery.make({
              name: "telegram",
              schema: Schema.String,
              sink,
              breaker,
              store: yield* FallbackStore.make({ directory })
            })
          }).pipe(Scope.provide(scope))

        const first = yield* Scope.make()
        const before = yield* open(first, true)
        for (const m of ["m1", "m2", "m3"]) yield* before.send(m, { key: m })
        yield* Scope.close(first, Exit.void)
        assert.strictEqual(calls.length, 0)

        const second = yield* Scope.make()
        const after = yield* open(second, false)
        yield* after.awaitEmpty
        assert.deepStrictEqual(calls.map((c) => c.message), ["m1", "m2", "m3"])
        yield* Scope.close(second, Exit.void)
      }).pipe(Effect.scoped, Effect.provide(NodeServices.layer)))

    it.live(
      "a message acknowledged before a SIGKILL is delivered by the next process, in order",
      () =>
        Effect.gen(function*() {
          const directory = yield* tempDir
          const enqueued = yield* child(["enqueue", directory, "5"], (line) => line === "ready")
          assert.strictEqual(enqueued.signal, "SIGKILL")
          assert.deepStrictEqual(enqueued.lines.slice(0, 5), [1, 2, 3, 4, 5].map((i) => `acked m${i} Queued`))

          // Killed while delivering m3: m1 and m2 are through, m3 is in flight.
          const partial = yield* child(["drain", directory, "m3"], (line) => line === "delivering m3 1")
          assert.strictEqual(partial.signal, "SIGKILL")
          assert.deepStrictEqual(partial.lines, [
            "delivering m1 1",
            "delivered m1 hello 1",
            "delivering m2 1",
            "delivered m2 hello 2",
            "delivering m3 1"
          ])

          const rest = yield* child(["drain", directory, "none"], () => false)
          assert.strictEqual(rest.code, 0)
          assert.deepStrictEqual(rest.lines.filter((line) => !line.startsWith("delivering")), [
            "delivered m3 hello 3",
            "delivered m4 hello 4",
            "delivered m5 hello 5",
            "empty"
          ])
        }).pipe(Effect.scoped, Effect.provide(NodeServices.layer), Effect.timeout("60 seconds")),
      70_000
    )
  })

  describe("duplicates", () => {
    it.effect("a key still queued is not queued twice", () =>
      Effect.gen(function*() {
        const { calls, sink } = recordingSink()
        const { breaker, queue } = yield* memoryQueue(sink)
        yield* breaker.forceOpen()
        assert.strictEqual((yield* queue.send("first", { key: "k" }))._tag, "Queued")
        assert.deepStrictEqual(yield* queue.send("second", { key: "k" }), { _tag: "Duplicate", key: "k" })
        yield* breaker.reset()
        yield* TestClock.adjust("1 second")
        yield* queue.awaitEmpty
        assert.deepStrictEqual(calls.map((c) => c.message), ["first"])
        assert.strictEqual((yield* queue.snapshot).duplicates, 1)
      }).pipe(Effect.scoped))

    it.effect("delivered but not yet removed at a crash: delivered again with the same key, dropped by the consumer", () =>
      Effect.gen(function*() {
        const store = yield* FallbackStore.makeMemory()
        // The journal entry outlives the delivery, as after a crash between the two.
        const failing = {
          ...store,
          remove: (key: string) =>
            Effect.fail(
              new FallbackStore.FallbackStoreError({ reason: "Io", operation: "remove", key, description: "crash" })
            )
        }
        const seen = new Set<string>()
        const applied: Array<string> = []
        const keys: Array<string> = []
        const consumer = (message: string, delivery: DeferredDelivery.Delivery) =>
          Effect.sync(() => {
            keys.push(delivery.key)
            if (seen.has(delivery.key)) return
            seen.add(delivery.key)
            applied.push(message)
          })
        const open = (scope: Scope.Scope, journal: FallbackStore.FallbackStore) =>
          Effect.gen(function*() {
            const breaker = yield* CircuitBreaker.make({ name: "telegram" })
            yield* breaker.forceOpen()
            const queue = yield* DeferredDelivery.make({
              name: "telegram",
              schema: Schema.String,
              sink: consumer,
              breaker,
              store: journal
            })
            return { breaker, queue }
          }).pipe(Scope.provide(scope))

        const first = yield* Scope.make()
        const before = yield* open(first, failing)
        yield* before.queue.send("pay 10", { key: "payment-1" })
        yield* before.breaker.reset()
        yield* TestClock.adjust("1 second")
        yield* before.queue.awaitEmpty
        yield* Scope.close(first, Exit.void)

        const second = yield* Scope.make()
        const after = yield* open(second, store)
        yield* after.breaker.reset()
        yield* TestClock.adjust("1 second")
        yield* after.queue.awaitEmpty
        yield* Scope.close(second, Exit.void)
        assert.deepStrictEqual(keys, ["payment-1", "payment-1"])
        assert.deepStrictEqual(applied, ["pay 10"])
      }).pipe(Effect.scoped))
  })

  describe("dead letters", () => {
    it.effect("a poison message goes to the dead letters after maxAttempts; the queue moves on", () =>
      Effect.gen(function*() {
        const { calls, delivered, failing, sink } = recordingSink()
        const queue = yield* DeferredDelivery.make({
          name: "telegram",
          schema: Schema.String,
          sink,
          breaker: yield* CircuitBreaker.make({ name: "telegram", trip: CircuitBreaker.consecutive(10) }),
          store: yield* FallbackStore.makeMemory(),
          maxAttempts: 3
        })
        failing.add("bad")
        assert.strictEqual((yield* queue.send("bad", { key: "k-bad" }))._tag, "Queued")
        assert.strictEqual((yield* queue.send("good", { key: "k-good" }))._tag, "Queued")
        yield* TestClock.adjust("1 minute")
        yield* queue.awaitEmpty
        assert.deepStrictEqual(delivered(), ["good"])
        assert.deepStrictEqual(
          calls.filter((c) => c.message === "bad").map((c) => c.attempt),
          [1, 2, 3],
          "never retried past maxAttempts"
        )
        const [dead, ...more] = yield* queue.deadLetters
        assert.strictEqual(more.length, 0)
        assert.strictEqual(dead.key, "k-bad")
        assert.deepStrictEqual(dead.message, Option.some("bad"))
        assert.strictEqual(dead.attempts, 3)
        assert.strictEqual(dead.lastError, "SinkDown: rejected bad")
        // Attempts 1 (the direct one) and 2 (the drainer's first) at once, 3 after retryInterval.
        assert.strictEqual(dead.deadAt, 1000)
        const snapshot = yield* queue.snapshot
        assert.strictEqual(snapshot.deadLetters, 1)
        assert.strictEqual(snapshot.deadLettered, 1)
        assert.strictEqual(snapshot.failedAttempts, 3)
        // Its key is still taken.
        assert.strictEqual((yield* queue.send("bad", { key: "k-bad" }))._tag, "Duplicate")

        failing.delete("bad")
        assert.isTrue(yield* queue.replay("k-bad"))
        yield* queue.awaitEmpty
        assert.deepStrictEqual(delivered(), ["good", "bad"])
        assert.deepStrictEqual(yield* queue.deadLetters, [])
        assert.isFalse(yield* queue.replay("k-bad"))
      }).pipe(Effect.scoped))

    it.effect("a sink failing with a value String() cannot convert is dead-lettered with it; the queue moves on", () =>
      Effect.gen(function*() {
        // A null-prototype object (a parsed query string, a GraphQL error's extensions): `String` throws on it.
        const bare = Object.assign(Object.create(null) as object, { code: "EPIPE" })
        const delivered: Array<string> = []
        const queue = yield* DeferredDelivery.make({
          name: "telegram",
          schema: Schema.String,
          sink: (message: string) =>
            message === "bad" ? Effect.fail(bare) : Effect.sync(() => void delivered.push(message)),
          breaker: yield* CircuitBreaker.make({ name: "telegram", trip: CircuitBreaker.consecutive(10) }),
          store: yield* FallbackStore.makeMemory(),
          maxAttempts: 2
        })
        assert.strictEqual((yield* queue.send("bad", { key: "k-bad" }))._tag, "Queued")
        assert.strictEqual((yield* queue.send("good", { key: "k-good" }))._tag, "Queued")
        yield* TestClock.adjust("1 minute")
        yield* queue.awaitEmpty
        assert.deepStrictEqual(delivered, ["good"])
        const [dead] = yield* queue.deadLetters
        assert.strictEqual(dead.key, "k-bad")
        assert.strictEqual(dead.lastError, `{"code":"EPIPE"}`)
      }).pipe(Effect.scoped))

    it.effect("drop deletes a dead letter; isPermanent dead-letters at the first failure", () =>
      Effect.gen(function*() {
        const { calls, failing, sink } = recordingSink()
        const queue = yield* DeferredDelivery.make({
          name: "telegram",
          schema: Schema.String,
          sink,
          breaker: yield* CircuitBreaker.make({ name: "telegram" }),
          store: yield* FallbackStore.makeMemory(),
          isPermanent: (error) => error.message.includes("malformed")
        })
        failing.add("malformed")
        yield* queue.send("malformed", { key: "k1" })
        yield* queue.awaitEmpty
        assert.strictEqual(calls.length, 1)
        assert.deepStrictEqual((yield* queue.deadLetters).map((d) => [d.key, d.attempts]), [["k1", 5]])
        assert.isTrue(yield* queue.drop("k1"))
        assert.isFalse(yield* queue.drop("k1"))
        assert.deepStrictEqual(yield* queue.deadLetters, [])
        assert.strictEqual((yield* queue.send("malformed", { key: "k1" }))._tag, "Queued", "the key is free again")
      }).pipe(Effect.scoped))

    // A function of the user's that throws on a message that fails: the message is kept, retried, dead-lettered
    // with why; the queue moves on.
    const buggy: ReadonlyArray<
      readonly [
        string,
        (
          sink: ReturnType<typeof recordingSink>["sink"]
        ) => StringOptions,
        string
      ]
    > = [
      [
        "an isPermanent that throws",
        (sink) => ({ sink, isPermanent: () => throwing("misread") }),
        "SinkDown: rejected bad (isPermanent threw Error: misread)"
      ],
      ["a sink that throws instead of returning an effect", (sink) => ({
        sink: (message: string, delivery: DeferredDelivery.Delivery) =>
          message === "bad" ? throwing("client is closed") : sink(message, delivery)
      }), "client is closed"]
    ]
    for (const [bug, options, lastError] of buggy) {
      it.effect(`${bug}: the failure counts as one a retry may fix, and the queue moves on`, () =>
        Effect.gen(function*() {
          const { delivered, failing, sink } = recordingSink()
          const { queue } = yield* memoryQueue(sink, { maxAttempts: 2, ...options(sink) })
          failing.add("bad")
          // Tried at once, failed, queued: the caller's message is kept, not lost with a defect.
          assert.deepStrictEqual(yield* queue.send("bad", { key: "k1" }), { _tag: "Queued", key: "k1", depth: 1 })
          yield* queue.send("good", { key: "k2" })
          yield* TestClock.adjust("1 minute")
          yield* queue.awaitEmpty
          assert.deepStrictEqual(
            (yield* queue.deadLetters).map((d) => [d.key, d.attempts, d.lastError]),
            [["k1", 2, lastError]]
          )
          assert.deepStrictEqual(delivered(), ["good"])
        }).pipe(Effect.scoped))
    }

    it.effect("a stored message its schema throws on while decoding is dead-lettered, and the queue moves on", () =>
      Effect.gen(function*() {
        const { delivered, sink } = recordingSink()
        // A decoder with a bug that only a stored message meets: encoding never calls it.
        const Touchy = Schema.String.pipe(Schema.decodeTo(Schema.String, {
          decode: SchemaGetter.transform((text: string) => text === "bad" ? throwing("no parser for bad") : text),
          encode: SchemaGetter.transform((text: string) => text)
        }))
        const breaker = yield* CircuitBreaker.make({ name: "telegram" })
        const queue = yield* DeferredDelivery.make({
          name: "telegram",
          schema: Touchy,
          sink,
          breaker,
          store: yield* FallbackStore.makeMemory()
        })
        yield* breaker.forceOpen()
        yield* queue.send("bad", { key: "k1" })
        yield* queue.send("good", { key: "k2" })
        yield* breaker.reset()
        yield* TestClock.adjust("1 minute")
        yield* queue.awaitEmpty
        assert.deepStrictEqual(
          (yield* queue.deadLetters).map((d) => [d.key, d.attempts, d.lastError, d.message]),
          [["k1", 0, "does not decode: no parser for bad", Option.none()]]
        )
        assert.deepStrictEqual(delivered(), ["good"])
      }).pipe(Effect.scoped))

    it.effect("a decoding that ends interrupted on its own is retried, not taken for the drainer's own interruption", () =>
      Effect.gen(function*() {
        const { delivered, sink } = recordingSink()
        // A decoder whose effect joins a fiber something else interrupted, the first time only.
        let interruptions = 1
        const Remote = Schema.String.pipe(Schema.decodeTo(Schema.String, {
          decode: SchemaGetter.transformEffect((text: string) =>
            interruptions-- > 0
              ? Effect.forkChild(Effect.never).pipe(Effect.tap(Fiber.interrupt), Effect.flatMap(Fiber.join))
              : Effect.succeed(text)
          ),
          encode: SchemaGetter.transform((text: string) => text)
        }))
        const breaker = yield* CircuitBreaker.make({ name: "telegram" })
        const queue = yield* DeferredDelivery.make({
          name: "telegram",
          schema: Remote,
          sink,
          breaker,
          store: yield* FallbackStore.makeMemory()
        })
        yield* breaker.forceOpen()
        yield* queue.send("m1", { key: "k1" })
        yield* breaker.reset()
        yield* TestClock.adjust("1 second")
        yield* queue.awaitEmpty
        assert.deepStrictEqual(delivered(), ["m1"])
        assert.deepStrictEqual(yield* queue.deadLetters, [])
      }).pipe(Effect.scoped))

    it.effect("failures that open the breaker blame the sink: an outage dead-letters nothing", () =>
      Effect.gen(function*() {
        const { calls, sink, state } = recordingSink()
        const queue = yield* DeferredDelivery.make({
          name: "telegram",
          schema: Schema.String,
          sink,
          breaker: yield* CircuitBreaker.make({
            name: "telegram",
            trip: CircuitBreaker.consecutive(2),
            openDuration: "10 seconds"
          }),
          store: yield* FallbackStore.makeMemory(),
          maxAttempts: 2
        })
        state.down = true
        yield* queue.send("m1", { key: "k1" })
        // Ten probes fail over the outage; each reopens the breaker.
        yield* TestClock.adjust("100 seconds")
        assert.isAtLeast(calls.length, 10)
        assert.deepStrictEqual(yield* queue.deadLetters, [])
        // The first failure counted (the breaker stayed closed); the one that tripped it forgave it.
        assert.deepStrictEqual((yield* queue.snapshot).head, {
          key: "k1",
          attempts: 0,
          lastError: "SinkDown: rejected m1"
        })
        state.down = false
        yield* TestClock.adjust("10 seconds")
        yield* queue.awaitEmpty
        assert.strictEqual((yield* queue.snapshot).delivered, 1)
      }).pipe(Effect.scoped))

    it.effect("with a healthCheck, a poison message that trips the breaker is dead-lettered; an outage is not", () =>
      Effect.gen(function*() {
        const { calls, delivered, failing, sink, state } = recordingSink()
        const queue = yield* DeferredDelivery.make({
          name: "telegram",
          schema: Schema.String,
          sink,
          // The defaults: five failures in a row trip the breaker, five attempts dead-letter a message.
          breaker: yield* CircuitBreaker.make({ name: "telegram", openDuration: "30 seconds" }),
          store: yield* FallbackStore.makeMemory(),
          healthCheck: Effect.suspend(() => state.down ? Effect.fail("down") : Effect.void)
        })
        failing.add("poison")
        yield* queue.send("poison", { key: "k-poison" })
        yield* queue.send("good", { key: "k-good" })
        yield* TestClock.adjust("2 minutes")
        yield* queue.awaitEmpty
        assert.deepStrictEqual((yield* queue.deadLetters).map((d) => [d.key, d.attempts]), [["k-poison", 5]])
        assert.strictEqual(calls.filter((c) => c.message === "poison").length, 5, "never retried past maxAttempts")
        assert.deepStrictEqual(delivered(), ["good"])

        state.down = true
        yield* queue.send("m1", { key: "k1" })
        yield* TestClock.adjust("10 minutes")
        assert.deepStrictEqual((yield* queue.deadLetters).map((d) => d.key), ["k-poison"])
        assert.strictEqual((yield* queue.snapshot).head?.attempts, 0)
        state.down = false
        yield* TestClock.adjust("30 seconds")
        yield* queue.awaitEmpty
        assert.deepStrictEqual(delivered(), ["good", "m1"])
      }).pipe(Effect.scoped))

    it.effect("without a healthCheck, a poison message that trips the breaker is retried at each probe", () =>
      Effect.gen(function*() {
        const { calls, failing, sink } = recordingSink()
        const queue = yield* DeferredDelivery.make({
          name: "telegram",
          schema: Schema.String,
          sink,
          breaker: yield* CircuitBreaker.make({ name: "telegram", openDuration: "30 seconds" }),
          store: yield* FallbackStore.makeMemory()
        })
        failing.add("poison")
        yield* queue.send("poison", { key: "k-poison" })
        yield* TestClock.adjust("5 minutes")
        // The documented limit: taken for an outage, one probe per open period, not dead-lettered by its attempts...
        assert.deepStrictEqual(yield* queue.deadLetters, [])
        assert.isAtMost(calls.length, 5 + 10)
      }).pipe(Effect.scoped))

    it.effect("nothing is retried forever: a message still failing after maxAge is dead-lettered", () =>
      Effect.gen(function*() {
        const { calls, failing, sink } = recordingSink()
        const queue = yield* DeferredDelivery.make({
          name: "telegram",
          schema: Schema.String,
          sink,
          breaker: yield* CircuitBreaker.make({ name: "telegram", openDuration: "30 seconds" }),
          store: yield* FallbackStore.makeMemory(),
          maxAge: "10 minutes"
        })
        failing.add("poison")
        yield* queue.send("poison", { key: "k-poison" })
        yield* TestClock.adjust("9 minutes")
        assert.deepStrictEqual(yield* queue.deadLetters, [])
        // ...until maxAge: the first failure past it ends the retries.
        yield* TestClock.adjust("2 minutes")
        const [dead] = yield* queue.deadLetters
        assert.strictEqual(dead.key, "k-poison")
        assert.match(dead.lastError, /^still failing after 10m: /)
        const attempts = calls.length
        yield* TestClock.adjust("1 hour")
        assert.strictEqual(calls.length, attempts)
        assert.strictEqual((yield* queue.snapshot).depth, 0)
      }).pipe(Effect.scoped))

    it.effect("a slow sink's failure that comes once the message has waited maxAge dead-letters it then", () =>
      Effect.gen(function*() {
        // A sink that fails a minute after it is called, as one behind a one-minute timeout does.
        const starts: Array<number> = []
        const sink = (_: string) =>
          Effect.gen(function*() {
            starts.push(yield* Clock.currentTimeMillis)
            yield* Effect.sleep("1 minute")
            return yield* new SinkDown({ message: "slow and failing" })
          })
        const breaker = yield* CircuitBreaker.make({ name: "slow" })
        yield* breaker.forceOpen()
        const queue = yield* DeferredDelivery.make({
          name: "slow",
          schema: Schema.String,
          sink,
          breaker,
          store: yield* FallbackStore.makeMemory(),
          maxAge: "1 minute"
        })
        assert.strictEqual((yield* queue.send("m", { key: "k" }))._tag, "Queued")
        yield* breaker.reset()
        yield* TestClock.adjust("10 minutes")
        // The first attempt started at once and failed at 1:00, when the message had waited maxAge: no second one.
        assert.deepStrictEqual(starts, [0])
        const [dead] = yield* queue.deadLetters
        assert.strictEqual(dead.deadAt, 60_000)
        assert.match(dead.lastError, /^still failing after 1m: /)
      }).pipe(Effect.scoped))

    it.effect("a slow sink's last allowed failure is dead-lettered at the time it came, not when its attempt started", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({ name: "slow" })
        yield* breaker.forceOpen()
        const queue = yield* DeferredDelivery.make({
          name: "slow",
          schema: Schema.String,
          // A sink that fails a minute after it is called.
          sink: () =>
            Effect.andThen(Effect.sleep("1 minute"), Effect.fail(new SinkDown({ message: "slow and failing" }))),
          breaker,
          store: yield* FallbackStore.makeMemory(),
          maxAttempts: 1
        })
        assert.strictEqual((yield* queue.send("m", { key: "k" }))._tag, "Queued")
        yield* breaker.reset()
        yield* TestClock.adjust("10 minutes")
        const [dead] = yield* queue.deadLetters
        assert.deepStrictEqual([dead.attempts, dead.deadAt], [1, 60_000])
      }).pipe(Effect.scoped))

    // A long-running service that never replays nor drops (the agent service) held every dead letter, and its key,
    // for good: the same key sent in a later outage was answered `Duplicate`.
    it.effect("dead letters stay within maxDeadLetters however many poison messages come, in memory and journal", () =>
      Effect.gen(function*() {
        const { sink, state } = recordingSink()
        state.down = true
        const store = yield* FallbackStore.makeMemory()
        const queue = yield* DeferredDelivery.make({
          name: "telegram",
          schema: Schema.String,
          sink,
          // Every message is refused for good (a 400): dead-lettered at its first failure.
          breaker: yield* CircuitBreaker.make({ name: "telegram", trip: CircuitBreaker.consecutive(1_000_000) }),
          store,
          maxDeadLetters: 10,
          isPermanent: () => true
        })
        for (let i = 0; i < 200; i++) {
          yield* queue.send(`poison ${i}`, { key: `k${i}` })
          yield* queue.awaitEmpty
        }
        const snapshot = yield* queue.snapshot
        assert.deepStrictEqual(
          [snapshot.depth, snapshot.deadLettered, snapshot.deadLetters, snapshot.deadLettersDropped],
          [0, 200, 10, 190]
        )
        assert.strictEqual(yield* store.size, 10, "one journal entry per dead letter held")
        assert.deepStrictEqual(
          (yield* queue.deadLetters).map((d) => d.key),
          Array.from({ length: 10 }, (_, i) => `k${190 + i}`)
        )
      }).pipe(Effect.scoped))

    it.effect("past maxDeadLetters the oldest dead letter goes first, and its key is free for a new message", () =>
      Effect.gen(function*() {
        const { delivered, failing, sink } = recordingSink()
        const { queue, store } = yield* memoryQueue(sink, { maxDeadLetters: 2, isPermanent: () => true })
        for (const m of ["m1", "m2", "m3"]) {
          failing.add(m)
          yield* queue.send(m, { key: `k${m.slice(1)}` })
          yield* queue.awaitEmpty
        }
        assert.deepStrictEqual((yield* queue.deadLetters).map((d) => d.key), ["k2", "k3"])
        assert.strictEqual((yield* queue.snapshot).deadLettersDropped, 1)
        assert.strictEqual(yield* store.size, 2)
        // The dropped one's key is a new message's; the ones held are still taken.
        failing.clear()
        assert.deepStrictEqual(yield* queue.send("m1 again", { key: "k1" }), { _tag: "Delivered", key: "k1" })
        assert.strictEqual((yield* queue.send("m2 again", { key: "k2" }))._tag, "Duplicate")
        assert.deepStrictEqual(delivered(), ["m1 again"])
        // Replay and drop still work on the ones held.
        assert.isFalse(yield* queue.replay("k1"))
        assert.isTrue(yield* queue.replay("k2"))
        assert.isTrue(yield* queue.drop("k3"))
        yield* queue.awaitEmpty
        assert.deepStrictEqual(delivered(), ["m1 again", "m2"])
        assert.deepStrictEqual(yield* queue.deadLetters, [])
        assert.strictEqual(yield* store.size, 0)
      }).pipe(Effect.scoped))

    it.effect("a dead letter held for deadLetterRetention is dropped: a send of its key is a new message", () =>
      Effect.gen(function*() {
        const { delivered, failing, sink } = recordingSink()
        const { queue, store } = yield* memoryQueue(sink, { deadLetterRetention: "1 hour", isPermanent: () => true })
        failing.add("m1")
        failing.add("m2")
        failing.add("m3")
        yield* queue.send("m1", { key: "k1" })
        yield* queue.awaitEmpty
        yield* TestClock.adjust("30 minutes")
        yield* queue.send("m2", { key: "k2" })
        yield* queue.awaitEmpty
        yield* TestClock.adjust("29 minutes")
        assert.strictEqual((yield* queue.send("m1", { key: "k1" }))._tag, "Duplicate", "held for 59 minutes")
        // The queue idle since: the send of the key finds it past the retention.
        yield* TestClock.adjust("1 minute")
        failing.delete("m1")
        assert.deepStrictEqual(yield* queue.send("m1", { key: "k1" }), { _tag: "Delivered", key: "k1" })
        assert.deepStrictEqual(delivered(), ["m1"])
        assert.deepStrictEqual((yield* queue.deadLetters).map((d) => d.key), ["k2"])
        // A dead letter added drops the ones past the retention: k2, dead-lettered an hour before k3.
        yield* TestClock.adjust("30 minutes")
        yield* queue.send("m3", { key: "k3" })
        yield* queue.awaitEmpty
        assert.deepStrictEqual((yield* queue.deadLetters).map((d) => d.key), ["k3"])
        const snapshot = yield* queue.snapshot
        assert.deepStrictEqual([snapshot.deadLettered, snapshot.deadLetters, snapshot.deadLettersDropped], [3, 1, 2])
        assert.strictEqual(yield* store.size, 1)
      }).pipe(Effect.scoped))

    it.effect("a restart drops the dead letters past maxDeadLetters or deadLetterRetention, the oldest first", () =>
      Effect.gen(function*() {
        const store = yield* FallbackStore.makeMemory()
        const { failing, sink } = recordingSink()
        const open = (scope: Scope.Scope, maxDeadLetters: number) =>
          queueIn(scope, store, sink, { maxDeadLetters, deadLetterRetention: "1 day", isPermanent: () => true })
        const first = yield* Scope.make()
        yield* deadLetterHourly(yield* open(first, 5), failing, 5)
        failing.clear()
        yield* Scope.close(first, Exit.void)

        const second = yield* Scope.make()
        const after = yield* open(second, 2)
        assert.deepStrictEqual((yield* after.deadLetters).map((d) => d.key), ["k4", "k5"])
        assert.strictEqual((yield* after.snapshot).deadLettersDropped, 3)
        assert.strictEqual(yield* store.size, 2)
        assert.strictEqual((yield* after.send("m1", { key: "k1" }))._tag, "Delivered", "its key was freed")
        yield* Scope.close(second, Exit.void)

        // k4 was dead-lettered at 3 hours, k5 at 4: at 27 hours, k4 has been held a day, and only k5 is left.
        yield* TestClock.adjust("22 hours")
        const third = yield* Scope.make()
        const later = yield* open(third, 2)
        assert.deepStrictEqual((yield* later.deadLetters).map((d) => d.key), ["k5"])
        assert.strictEqual(yield* store.size, 1)
        yield* Scope.close(third, Exit.void)
      }).pipe(Effect.scoped))

    it.effect("a restart orders dead letters by when they were dead-lettered, whatever order the journal lists", () =>
      Effect.gen(function*() {
        const memory = yield* FallbackStore.makeMemory()
        // A journal that lists its keys newest first.
        const store = {
          ...memory,
          keys: Effect.map(memory.keys, (keys) => keys.map((_, i) => keys[keys.length - 1 - i]!))
        }
        const { failing, sink } = recordingSink()
        const open = (scope: Scope.Scope, maxDeadLetters: number) =>
          queueIn(scope, store, sink, { maxDeadLetters, isPermanent: () => true })
        const first = yield* Scope.make()
        yield* deadLetterHourly(yield* open(first, 3), failing, 3)
        yield* Scope.close(first, Exit.void)
        const second = yield* Scope.make()
        assert.deepStrictEqual((yield* (yield* open(second, 3)).deadLetters).map((d) => d.key), ["k1", "k2", "k3"])
        yield* Scope.close(second, Exit.void)
        // A lower bound drops the oldest, k1.
        const third = yield* Scope.make()
        assert.deepStrictEqual((yield* (yield* open(third, 2)).deadLetters).map((d) => d.key), ["k2", "k3"])
        yield* Scope.close(third, Exit.void)
      }).pipe(Effect.scoped))

    // The dead letters are trimmed oldest first, stopping at the first one within its retention; a wall clock stepped
    // back can put a newer dead letter before an older one.
    it.effect("a send frees its key's dead letter past retention, even behind a newer one (clock stepped back)", () =>
      Effect.gen(function*() {
        const { delivered, failing, sink } = recordingSink()
        const { queue } = yield* memoryQueue(sink, { deadLetterRetention: "1 hour", isPermanent: () => true })
        failing.add("m1")
        failing.add("m2")
        yield* TestClock.setTime(2 * 3_600_000)
        yield* queue.send("m1", { key: "k1" })
        yield* queue.awaitEmpty
        yield* TestClock.setTime(3_600_000)
        yield* queue.send("m2", { key: "k2" })
        yield* queue.awaitEmpty
        // k2 has been held an hour, k1 not at all.
        yield* TestClock.setTime(2 * 3_600_000)
        failing.clear()
        assert.deepStrictEqual(yield* queue.send("m2", { key: "k2" }), { _tag: "Delivered", key: "k2" })
        assert.deepStrictEqual(delivered(), ["m2"])
        assert.deepStrictEqual((yield* queue.deadLetters).map((d) => d.key), ["k1"])
      }).pipe(Effect.scoped))

    it.effect("a dead letter is held 7 days by default", () =>
      Effect.gen(function*() {
        const { delivered, failing, sink } = recordingSink()
        const { queue } = yield* memoryQueue(sink, { isPermanent: () => true })
        failing.add("m1")
        yield* queue.send("m1", { key: "k1" })
        yield* queue.awaitEmpty
        failing.clear()
        yield* TestClock.adjust(Duration.subtract(Duration.days(7), Duration.millis(1)))
        assert.strictEqual((yield* queue.send("m1", { key: "k1" }))._tag, "Duplicate")
        yield* TestClock.adjust("1 millis")
        assert.strictEqual((yield* queue.send("m1", { key: "k1" }))._tag, "Delivered")
        assert.deepStrictEqual(delivered(), ["m1"])
      }).pipe(Effect.scoped))

    // The drainer trims at each step: at the step that finds the queue empty too, for a dead letter whose retention
    // ran out while the last message was being delivered.
    it.effect("a dead letter whose retention runs out during a delivery is dropped once the queue is empty", () =>
      Effect.gen(function*() {
        const { failing, hold, sink } = recordingSink()
        const { breaker, queue } = yield* memoryQueue(sink, { deadLetterRetention: "1 hour", isPermanent: () => true })
        failing.add("m1")
        yield* queue.send("m1", { key: "k1" })
        yield* queue.awaitEmpty
        // m2 waits behind a forced-open breaker; its delivery starts before k1's hour is up and ends after it.
        yield* breaker.forceOpen()
        assert.strictEqual((yield* queue.send("m2", { key: "k2" }))._tag, "Queued")
        yield* TestClock.adjust("59 minutes")
        const held = hold("m2")
        yield* breaker.reset()
        yield* TestClock.adjust("1 second")
        yield* Deferred.await(held.entered)
        assert.deepStrictEqual((yield* queue.deadLetters).map((d) => d.key), ["k1"])
        yield* TestClock.adjust("2 minutes")
        yield* Deferred.succeed(held.release, undefined)
        yield* queue.awaitEmpty
        yield* yieldTimes(10)
        assert.deepStrictEqual(yield* queue.deadLetters, [])
        assert.strictEqual((yield* queue.snapshot).deadLettersDropped, 1)
      }).pipe(Effect.scoped))

    for (const order of ["as stored", "reversed"] as const) {
      it.effect(`dead letters survive a restart; a dead letter being written wins over its queued entry (${order})`, () =>
        Effect.gen(function*() {
          const memory = yield* FallbackStore.makeMemory()
          // Whichever order the journal lists its keys in, the outcome is the same.
          const store = {
            ...memory,
            keys: Effect.map(
              memory.keys,
              (keys) => order === "reversed" ? keys.map((_, i) => keys[keys.length - 1 - i]) : keys
            )
          }
          const { failing, sink } = recordingSink()
          failing.add("bad")
          const open = (scope: Scope.Scope) =>
            Effect.gen(function*() {
              return yield* DeferredDelivery.make({
                name: "telegram",
                schema: Schema.String,
                sink,
                breaker: yield* CircuitBreaker.make({ name: "telegram" }),
                store,
                maxAttempts: 1
              })
            }).pipe(Scope.provide(scope))
          const first = yield* Scope.make()
          const before = yield* open(first)
          yield* before.send("bad", { key: "k-bad" })
          yield* before.awaitEmpty
          yield* Scope.close(first, Exit.void)
          // As if the crash came after the dead letter was written and before the queued entry was removed.
          const [deadKey] = yield* memory.keys
          yield* memory.set(deadKey.replace("/d/", "/q/"), (yield* memory.get(deadKey)).pipe(Option.getOrThrow))

          const second = yield* Scope.make()
          const after = yield* open(second)
          assert.strictEqual((yield* after.snapshot).depth, 0)
          assert.deepStrictEqual((yield* after.deadLetters).map((d) => d.key), ["k-bad"])
          assert.deepStrictEqual(yield* memory.keys, [deadKey])
          yield* Scope.close(second, Exit.void)
        }).pipe(Effect.scoped))
    }
  })

  it.effect("a queued message that no longer decodes (the schema changed) is dead-lettered, not retried", () =>
    Effect.gen(function*() {
      const store = yield* FallbackStore.makeMemory()
      const first = yield* Scope.make()
      yield* Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({ name: "telegram" })
        yield* breaker.forceOpen()
        const queue = yield* DeferredDelivery.make({
          name: "telegram",
          schema: Schema.String,
          sink: () => Effect.void,
          breaker,
          store
        })
        yield* queue.send("hello", { key: "k1" })
      }).pipe(Scope.provide(first))
      yield* Scope.close(first, Exit.void)

      const calls: Array<number> = []
      const queue = yield* DeferredDelivery.make({
        name: "telegram",
        schema: Schema.Number,
        sink: (n) => Effect.sync(() => void calls.push(n)),
        breaker: yield* CircuitBreaker.make({ name: "telegram" }),
        store
      })
      yield* queue.awaitEmpty
      assert.deepStrictEqual(calls, [])
      const [dead] = yield* queue.deadLetters
      assert.strictEqual(dead.key, "k1")
      assert.deepStrictEqual(dead.message, Option.none())
      assert.match(dead.lastError, /^does not decode: /)
    }).pipe(Effect.scoped))

  describe("bad input", () => {
    it.effect("refuses, with a typed error naming the field, what it cannot keep; loses nothing queued", () =>
      Effect.gen(function*() {
        const { calls, sink } = recordingSink()
        const breaker = yield* CircuitBreaker.make({ name: "telegram" })
        yield* breaker.forceOpen()
        const queue = yield* DeferredDelivery.make({
          name: "telegram",
          schema: Schema.String.check(Schema.isMaxLength(100)),
          sink,
          breaker,
          store: yield* FallbackStore.makeMemory(),
          maxDepth: 2,
          maxMessageBytes: 120
        })
        yield* queue.send("m1", { key: "k1" })
        const tooBig = yield* Effect.flip(queue.send("x".repeat(100), { key: "k-big" }))
        assert.deepStrictEqual([tooBig.reason, tooBig.field, tooBig.key], ["TooLarge", "maxMessageBytes", "k-big"])
        const invalid = yield* Effect.flip(queue.send("x".repeat(101), { key: "k-long" }))
        assert.deepStrictEqual([invalid.reason, invalid.field], ["BadMessage", "message"])
        const noKey = yield* Effect.flip(queue.send("m", { key: "" }))
        assert.deepStrictEqual([noKey.reason, noKey.field], ["BadMessage", "key"])
        yield* queue.send("m2", { key: "k2" })
        const full = yield* Effect.flip(queue.send("m3", { key: "k3" }))
        assert.deepStrictEqual([full.reason, full.field], ["QueueFull", "maxDepth"])
        assert.strictEqual(
          full.message,
          `Deferred delivery "telegram" (key "k3"): maxDepth: 2 messages are queued, the most maxDepth allows`
        )

        yield* breaker.reset()
        yield* TestClock.adjust("1 second")
        yield* queue.awaitEmpty
        assert.deepStrictEqual(calls.map((c) => c.message), ["m1", "m2"])
      }).pipe(Effect.scoped))

    it.effect("a journal that cannot be written refuses the message: the caller is not told it is queued", () =>
      Effect.gen(function*() {
        const store = yield* FallbackStore.makeMemory()
        const full = {
          ...store,
          set: (key: string) =>
            Effect.fail(
              new FallbackStore.FallbackStoreError({ reason: "DiskFull", operation: "set", key, description: "ENOSPC" })
            )
        }
        const breaker = yield* CircuitBreaker.make({ name: "telegram" })
        yield* breaker.forceOpen()
        const queue = yield* DeferredDelivery.make({
          name: "telegram",
          schema: Schema.String,
          sink: () => Effect.void,
          breaker,
          store: full
        })
        const error = yield* Effect.flip(queue.send("m1", { key: "k1" }))
        assert.strictEqual(error.reason, "Store")
        assert.strictEqual((error.cause as FallbackStore.FallbackStoreError).reason, "DiskFull")
        assert.strictEqual((yield* queue.snapshot).depth, 0)
        // The key was not taken either.
        assert.strictEqual((yield* Effect.flip(queue.send("m1", { key: "k1" }))).reason, "Store")
      }).pipe(Effect.scoped))

    it.effect("bad options fail with PolicyConfigError naming each field", () =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(DeferredDelivery.make({
          name: "a/b",
          schema: Schema.String,
          sink: () => Effect.void,
          breaker: yield* CircuitBreaker.make({ name: "telegram" }),
          store: yield* FallbackStore.makeMemory(),
          maxAttempts: 0,
          maxAge: 0,
          retryInterval: "never" as Duration.Input,
          maxDepth: 1.5,
          maxMessageBytes: -1,
          maxDeadLetters: 0,
          deadLetterRetention: "400 days"
        }))
        assert.strictEqual(error._tag, "PolicyConfigError")
        assert.deepStrictEqual(
          error._tag === "PolicyConfigError" ? error.issues.map((issue) => issue.path).sort() : [],
          [
            "deadLetterRetention",
            "maxAge",
            "maxAttempts",
            "maxDeadLetters",
            "maxDepth",
            "maxMessageBytes",
            "name",
            "retryInterval"
          ]
        )
        // Half an emoji (a name cut with `slice`): a Redis journal would store it as U+FFFD, its messages lost.
        const halfEmoji = yield* Effect.flip(DeferredDelivery.make({
          name: `outbox-${"🚀".slice(0, 1)}`,
          schema: Schema.String,
          sink: () => Effect.void,
          breaker: yield* CircuitBreaker.make({ name: "telegram" }),
          store: yield* FallbackStore.makeMemory()
        }))
        assert.deepStrictEqual(
          halfEmoji._tag === "PolicyConfigError" ? halfEmoji.issues.map((issue) => issue.path) : [],
          ["name"]
        )
      }).pipe(Effect.scoped))
  })

  it.effect("exports depth, oldest age, attempts, dead letters and dropped dead letters as metrics", () =>
    Effect.gen(function*() {
      const { failing, sink } = recordingSink()
      const breaker = yield* CircuitBreaker.make({ name: "metered" })
      const queue = yield* DeferredDelivery.make({
        name: "metered",
        schema: Schema.String,
        sink,
        breaker,
        store: yield* FallbackStore.makeMemory(),
        maxAttempts: 1,
        maxDeadLetters: 1
      })
      failing.add("bad")
      failing.add("worse")
      yield* queue.send("bad", { key: "k-bad" })
      yield* queue.awaitEmpty
      yield* queue.send("worse", { key: "k-worse" })
      yield* queue.awaitEmpty
      yield* breaker.forceOpen()
      yield* queue.send("m1", { key: "k1" })
      yield* TestClock.adjust("3 seconds")
      const all = yield* Metric.snapshot
      const value = (id: string, attributes: Record<string, string> = {}) => {
        const found = all.find((m) =>
          m.id === id && m.attributes?.["policy"] === "metered" &&
          Object.entries(attributes).every(([k, v]) => m.attributes?.[k] === v)
        )
        const state = found?.state as { readonly count?: number; readonly value?: number } | undefined
        return state?.count ?? state?.value
      }
      assert.strictEqual(value("deferred_delivery_depth"), 1)
      assert.strictEqual(value("deferred_delivery_oldest_age_seconds"), 3)
      assert.strictEqual(value("deferred_delivery_attempts_total", { outcome: "Failed" }), 2)
      assert.strictEqual(value("deferred_delivery_dead_letters"), 1)
      assert.strictEqual(value("deferred_delivery_dead_letters_dropped_total"), 1)
      assert.strictEqual(value("deferred_delivery_enqueued_total"), 3)
    }).pipe(Effect.scoped))
})

// -----------------------------------------------------------------------------
// the child process
// -----------------------------------------------------------------------------

const fixture = join(import.meta.dirname, "fixtures", "deferredDeliveryChild.ts")

/**
 * Runs the fixture with Node and collects its stdout lines; SIGKILLs it at the first line `killAt` accepts (and when
 * the scope closes, if it still runs).
 */
const child = (args: ReadonlyArray<string>, killAt: (line: string) => boolean) =>
  Effect.callback<{
    readonly lines: ReadonlyArray<string>
    readonly code: number | null
    readonly signal: NodeJS.Signals | null
  }>((resume) => {
    const proc = spawn(process.execPath, [fixture, ...args], { stdio: ["ignore", "pipe", "inherit"] })
    const lines: Array<string> = []
    let buffer = ""
    let killed = false
    proc.stdout.setEncoding("utf8")
    proc.stdout.on("data", (chunk: string) => {
      buffer += chunk
      const parts = buffer.split("\n")
      buffer = parts.pop() ?? ""
      for (const line of parts) {
        if (killed) return
        // Log lines (a FallbackStore taking over the killed process's stale lock) are not the protocol.
        if (/^\[[\d:.]+\] [A-Z]+ /.test(line)) continue
        lines.push(line)
        if (killAt(line)) {
          killed = true
          proc.kill("SIGKILL")
        }
      }
    })
    proc.once("exit", (code, signal) => resume(Effect.succeed({ lines, code, signal })))
    return Effect.sync(() => void proc.kill("SIGKILL"))
  })
