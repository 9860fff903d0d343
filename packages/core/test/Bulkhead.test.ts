import { assert, describe, it } from "@effect/vitest"
import {
  Cause,
  Clock,
  Data,
  Deferred,
  Duration,
  Effect,
  Exit,
  Fiber,
  Layer,
  Metric,
  Schedule,
  Scheduler,
  Schema
} from "effect"
import { TestClock } from "effect/testing"
import * as Bulkhead from "../src/Bulkhead.ts"
import * as CircuitBreaker from "../src/CircuitBreaker.ts"
import { steppable } from "./clocks.ts"

class Boom extends Data.TaggedError("Boom") {}
class NotFound extends Data.TaggedError("NotFound") {}

/** Calls that sleep, recording which started and finished, and how many ran at once at most. */
const tracker = () => {
  let running = 0
  let peak = 0
  const started: Array<string> = []
  const finished: Array<string> = []
  const call = (id: string, millis: number) =>
    Effect.gen(function*() {
      running++
      peak = Math.max(peak, running)
      started.push(id)
      yield* Effect.sleep(millis)
      finished.push(id)
    }).pipe(Effect.ensuring(Effect.sync(() => running--)))
  return {
    call,
    started,
    finished,
    get peak() {
      return peak
    }
  }
}

/** Forks `effect` and runs it until it suspends, so that forks enqueue in the order they are made. */
const start = <A, E>(effect: Effect.Effect<A, E>) => Effect.forkChild(effect, { startImmediately: true })

const now = Effect.clockWith((clock) => clock.currentTimeMillis)

/** Runs `effect` to its end in a fork while the TestClock moves a minute on. */
const settle = <A, E>(effect: Effect.Effect<A, E>) =>
  Effect.gen(function*() {
    const fiber = yield* Effect.forkChild(effect)
    yield* TestClock.adjust("1 minute")
    return yield* Fiber.join(fiber)
  })

const rejectionOf = <A>(effect: Effect.Effect<A, Bulkhead.BulkheadFull>) => Effect.flip(effect)

const invalid = (options: Bulkhead.Options) =>
  Bulkhead.make(options).pipe(
    Effect.scoped,
    Effect.flip,
    Effect.map((error) => error.issues.map((issue) => `${issue.path}: ${issue.message}`))
  )

const metricValue = (id: string, attributes: Record<string, string> = {}) =>
  Metric.snapshot.pipe(Effect.map((all) => {
    const found = all.find((m) =>
      m.id === id && m.attributes?.["policy"] === "db" &&
      Object.entries(attributes).every(([k, v]) => m.attributes?.[k] === v)
    )
    const state = found?.state as { readonly count?: number; readonly value?: number } | undefined
    return state?.count ?? state?.value
  }))

const adaptive = (options: Partial<Bulkhead.AdaptiveOptions> & { readonly maxQueue?: number } = {}) =>
  Bulkhead.make({
    name: "db",
    maxConcurrent: options.initial ?? 2,
    maxQueue: options.maxQueue ?? 0,
    adaptive: { min: 1, max: 10, latencyTarget: "100 millis", ...options }
  })
const limitOf = (bulkhead: Bulkhead.Bulkhead) => Effect.map(bulkhead.snapshot, (s) => s.limit)
const concurrently = (...effects: ReadonlyArray<Effect.Effect<unknown, unknown>>) =>
  Effect.all(effects.map(Effect.exit), { concurrency: "unbounded" }).pipe(Effect.forkChild)

describe("Bulkhead", () => {
  describe("admission", () => {
    it.effect("runs up to maxConcurrent calls at once and rejects the next at once without a queue", () =>
      Effect.gen(function*() {
        const bulkhead = yield* Bulkhead.make({ name: "db", maxConcurrent: 2 })
        const t = tracker()
        yield* start(t.call("a", 1000).pipe(bulkhead.protect))
        yield* start(t.call("b", 1000).pipe(bulkhead.protect))
        const error = yield* rejectionOf(t.call("c", 1000).pipe(bulkhead.protect))
        assert.strictEqual(error._tag, "BulkheadFull")
        assert.strictEqual(error.reason, "QueueFull")
        assert.strictEqual(error.policy, "db")
        assert.strictEqual(error.limit, 2)
        assert.strictEqual(error.maxQueue, 0)
        // No call has finished yet: no average to go by.
        assert.strictEqual(Duration.toMillis(error.retryAfter), 0)
        assert.strictEqual(error.message, "Bulkhead \"db\" is full (limit 2, no queue); retry after 0")
        assert.deepStrictEqual(t.started, ["a", "b"])
        yield* TestClock.adjust("1 second")
        assert.deepStrictEqual(t.finished, ["a", "b"])
        assert.strictEqual(yield* Effect.succeed(42).pipe(bulkhead.protect), 42)
        assert.deepStrictEqual(yield* bulkhead.snapshot, {
          name: "db",
          limit: 2,
          active: 0,
          queued: 0,
          maxQueue: 0,
          calls: 3,
          rejected: { QueueFull: 1, WaitTimeout: 0 },
          averageCallMillis: 1000
        })
      }))

    it.effect("holds the limit under 1000 concurrent callers", () =>
      Effect.gen(function*() {
        const bulkhead = yield* Bulkhead.make({ name: "db", maxConcurrent: 10, maxQueue: 1000 })
        const t = tracker()
        const fiber = yield* Effect.forEach(
          Array.from({ length: 1000 }, (_, i) => i),
          (i) => t.call(String(i), 100).pipe(bulkhead.protect),
          { concurrency: "unbounded" }
        ).pipe(Effect.forkChild)
        yield* TestClock.adjust("1 second")
        const mid = yield* bulkhead.snapshot
        assert.strictEqual(mid.active, 10)
        assert.strictEqual(mid.queued, 890)
        yield* TestClock.adjust("9 seconds")
        yield* Fiber.join(fiber)
        assert.strictEqual(t.peak, 10)
        assert.strictEqual(t.finished.length, 1000)
        // FIFO: the callers ran in the order they arrived.
        assert.deepStrictEqual(t.started, Array.from({ length: 1000 }, (_, i) => String(i)))
        const end = yield* bulkhead.snapshot
        assert.deepStrictEqual([end.active, end.queued, end.calls], [0, 0, 1000])
      }))

    it.effect("without a queue, 1000 simultaneous callers: exactly maxConcurrent run, the rest are rejected", () =>
      Effect.gen(function*() {
        const bulkhead = yield* Bulkhead.make({ name: "db", maxConcurrent: 10 })
        const t = tracker()
        const fiber = yield* Effect.forEach(
          Array.from({ length: 1000 }, (_, i) => i),
          (i) => Effect.exit(t.call(String(i), 100).pipe(bulkhead.protect)),
          { concurrency: "unbounded" }
        ).pipe(Effect.forkChild)
        yield* TestClock.adjust("1 second")
        const exits = yield* Fiber.join(fiber)
        assert.strictEqual(exits.filter(Exit.isSuccess).length, 10)
        assert.strictEqual(t.peak, 10)
        assert.deepStrictEqual((yield* bulkhead.snapshot).rejected, { QueueFull: 990, WaitTimeout: 0 })
      }))

    it.effect("one protected effect can run again (as retries do) and on several fibers at once", () =>
      Effect.gen(function*() {
        const bulkhead = yield* Bulkhead.make({ name: "db", maxConcurrent: 1, maxQueue: 2 })
        const call = bulkhead.protect(Effect.void)
        yield* call
        const gate = yield* Deferred.make<void>()
        yield* start(bulkhead.protect(Deferred.await(gate)))
        // Run again: queued, then the queue fills and the same effect is rejected; none of that frees a permit.
        const queued = yield* start(call)
        yield* start(call)
        assert.strictEqual((yield* rejectionOf(call)).reason, "QueueFull")
        assert.strictEqual((yield* rejectionOf(call)).reason, "QueueFull")
        assert.deepStrictEqual([(yield* bulkhead.snapshot).active, (yield* bulkhead.snapshot).queued], [1, 2])
        yield* Deferred.succeed(gate, undefined)
        yield* Fiber.join(queued)
        assert.deepStrictEqual([(yield* bulkhead.snapshot).active, (yield* bulkhead.snapshot).queued], [0, 0])
        // Retried while a bulkhead without a queue is full: rejected twice, admitted on the third attempt.
        const unqueued = yield* Bulkhead.make({ name: "unqueued", maxConcurrent: 1 })
        const t = tracker()
        yield* start(t.call("holder", 1500).pipe(unqueued.protect))
        const retried = yield* Effect.forkChild(
          Effect.retry(t.call("retried", 100).pipe(unqueued.protect), { schedule: Schedule.spaced("1 second") })
        )
        yield* TestClock.adjust("3 seconds")
        yield* Fiber.join(retried)
        assert.strictEqual(t.peak, 1)
        assert.deepStrictEqual(t.finished, ["holder", "retried"])
        const snapshot = yield* unqueued.snapshot
        assert.deepStrictEqual([snapshot.active, snapshot.calls, snapshot.rejected.QueueFull], [0, 2, 2])
      }))

    it.effect("a protected effect nested in itself keeps the outer permit until the outer run ends", () =>
      Effect.gen(function*() {
        const bulkhead = yield* Bulkhead.make({ name: "poll", maxConcurrent: 3 })
        const active: Array<number> = []
        let depth = 0
        const poll: Effect.Effect<void, Bulkhead.BulkheadFull> = bulkhead.protect(
          Effect.suspend(() =>
            ++depth < 3
              ? Effect.andThen(poll, Effect.flatMap(bulkhead.snapshot, (s) => Effect.sync(() => active.push(s.active))))
              : Effect.void
          )
        )
        yield* poll
        // After each inner run ends, the runs around it still hold their permits.
        assert.deepStrictEqual(active, [2, 1])
        assert.strictEqual((yield* bulkhead.snapshot).active, 0)
      }))

    it.effect("pipes, passes the call's own errors through, and adds only BulkheadFull", () =>
      Effect.gen(function*() {
        const bulkhead = yield* Bulkhead.make({ name: "db", maxConcurrent: 1 })
        const call: Effect.Effect<string, Boom | Bulkhead.BulkheadFull> = Effect.fail(new Boom()).pipe(
          bulkhead.protect
        )
        const handled = call.pipe(
          Effect.catchTag("Boom", () => Effect.succeed("boom")),
          Effect.catchTag("BulkheadFull", () => Effect.succeed("full"))
        )
        assert.strictEqual(yield* handled, "boom")
        assert.strictEqual((yield* bulkhead.snapshot).active, 0)
        const defect = yield* Effect.exit(bulkhead.protect(Effect.die("bug")))
        assert.isTrue(Exit.hasDies(defect))
        assert.strictEqual((yield* bulkhead.snapshot).active, 0)
      }))
  })

  describe("queue", () => {
    it.effect("bounds the queue: maxQueue callers wait, the next is rejected with QueueFull", () =>
      Effect.gen(function*() {
        const bulkhead = yield* Bulkhead.make({ name: "db", maxConcurrent: 2, maxQueue: 3 })
        const t = tracker()
        const fibers = []
        for (const id of ["a", "b", "c", "d", "e"]) fibers.push(yield* start(t.call(id, 1000).pipe(bulkhead.protect)))
        const snapshot = yield* bulkhead.snapshot
        assert.deepStrictEqual([snapshot.active, snapshot.queued], [2, 3])
        const error = yield* rejectionOf(t.call("f", 1000).pipe(bulkhead.protect))
        assert.strictEqual(error.reason, "QueueFull")
        assert.strictEqual(error.message, "Bulkhead \"db\" is full (limit 2, queue of 3 full); retry after 0")
        yield* TestClock.adjust("1 second")
        assert.deepStrictEqual(t.started, ["a", "b", "c", "d"])
        yield* TestClock.adjust("2 seconds")
        yield* Fiber.joinAll(fibers)
        assert.deepStrictEqual(t.finished, ["a", "b", "c", "d", "e"])
        assert.strictEqual(t.peak, 2)
      }))

    it.effect("admits waiters strictly in arrival order, and a newcomer never overtakes them", () =>
      Effect.gen(function*() {
        const bulkhead = yield* Bulkhead.make({ name: "db", maxConcurrent: 1, maxQueue: 20 })
        const order: Array<number> = []
        const call = (i: number) =>
          Effect.sync(() => order.push(i)).pipe(Effect.andThen(Effect.sleep("10 millis")), bulkhead.protect)
        yield* start(call(0))
        for (let i = 1; i <= 10; i++) yield* start(call(i))
        // A permit frees at 10ms, when waiter 1 takes it; a caller arriving at that same instant queues last.
        yield* TestClock.adjust("10 millis")
        yield* start(call(11))
        yield* TestClock.adjust("1 second")
        assert.deepStrictEqual(order, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11])
      }))

    it.effect("a long line of waiters whose calls finish at once is drained without nesting", () =>
      Effect.gen(function*() {
        const bulkhead = yield* Bulkhead.make({ name: "db", maxConcurrent: 1, maxQueue: 20_000 })
        const gate = yield* Deferred.make<void>()
        yield* start(bulkhead.protect(Deferred.await(gate)))
        let ran = 0
        const fibers = []
        for (let i = 0; i < 20_000; i++) fibers.push(yield* start(bulkhead.protect(Effect.sync(() => ran++))))
        // Each waiter is resumed inline by the call before it; without a trampoline, 20,000 nested handlers.
        yield* Deferred.succeed(gate, undefined)
        yield* Fiber.joinAll(fibers)
        assert.strictEqual(ran, 20_000)
        assert.deepStrictEqual([(yield* bulkhead.snapshot).active, (yield* bulkhead.snapshot).queued], [0, 0])
      }))

    it.effect.prop(
      "calls start in arrival order and never exceed the limit, whatever the arrivals and durations",
      [
        Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 4 })),
        Schema.Array(
          Schema.Tuple([
            Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 50 })),
            Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 200 }))
          ])
        )
      ],
      ([limit, calls]) =>
        Effect.gen(function*() {
          const bulkhead = yield* Bulkhead.make({ name: "p", maxConcurrent: limit, maxQueue: calls.length })
          let running = 0
          let peak = 0
          const startedAt: Array<number> = []
          let arrival = 0
          const fibers = []
          for (const [i, [gap, millis]] of calls.entries()) {
            arrival += gap
            fibers.push(
              yield* Effect.forkChild(
                Effect.sleep(arrival).pipe(Effect.andThen(
                  Effect.gen(function*() {
                    running++
                    peak = Math.max(peak, running)
                    startedAt[i] = yield* now
                    yield* Effect.sleep(millis)
                    running--
                  }).pipe(bulkhead.protect)
                ))
              )
            )
          }
          yield* TestClock.adjust(arrival + calls.length * 200 + 1)
          yield* Fiber.joinAll(fibers)
          assert.isAtMost(peak, limit)
          for (let i = 1; i < startedAt.length; i++) assert.isAtLeast(startedAt[i], startedAt[i - 1])
          assert.deepStrictEqual([(yield* bulkhead.snapshot).active, (yield* bulkhead.snapshot).queued], [0, 0])
        }).pipe(Effect.scoped),
      { arbitrary: { runs: 100 } }
    )
  })

  describe("maxWait", () => {
    it.effect("rejects a waiter with WaitTimeout exactly maxWait after it queued", () =>
      Effect.gen(function*() {
        const bulkhead = yield* Bulkhead.make({ name: "db", maxConcurrent: 1, maxQueue: 1, maxWait: "1 second" })
        yield* start(bulkhead.protect(Effect.sleep("5 seconds")))
        const waiter = yield* start(Effect.flip(bulkhead.protect(Effect.void)))
        yield* TestClock.adjust("999 millis")
        assert.strictEqual((yield* bulkhead.snapshot).queued, 1)
        yield* TestClock.adjust("1 millis")
        const error = yield* Fiber.join(waiter)
        assert.strictEqual(error.reason, "WaitTimeout")
        assert.strictEqual(
          error.message,
          "Bulkhead \"db\" had no free permit (limit 1) within the maximum wait; retry after 0"
        )
        assert.deepStrictEqual((yield* bulkhead.snapshot).rejected, { QueueFull: 0, WaitTimeout: 1 })
        assert.strictEqual((yield* bulkhead.snapshot).queued, 0)
      }))

    it.effect("a permit freed exactly at the deadline is not given to the waiter; one freed before it is", () =>
      Effect.gen(function*() {
        const bulkhead = yield* Bulkhead.make({ name: "db", maxConcurrent: 1, maxQueue: 2, maxWait: "1 second" })
        // The first holder frees its permit at 1000ms: the waiter queued at 0 has waited its whole maxWait.
        yield* start(bulkhead.protect(Effect.sleep("1 second")))
        const late = yield* start(Effect.exit(bulkhead.protect(now)))
        yield* TestClock.adjust("1 second")
        const lateExit = yield* Fiber.join(late)
        assert.isTrue(Exit.isFailure(lateExit) && Cause.squash(lateExit.cause) instanceof Bulkhead.BulkheadFull)
        assert.strictEqual((yield* bulkhead.snapshot).active, 0)
        // Now one freed at 999ms after the waiter queued.
        yield* start(bulkhead.protect(Effect.sleep("999 millis")))
        const early = yield* start(bulkhead.protect(now))
        yield* TestClock.adjust("999 millis")
        assert.strictEqual(yield* Fiber.join(early), 1999)
        assert.deepStrictEqual((yield* bulkhead.snapshot).rejected, { QueueFull: 0, WaitTimeout: 1 })
      }))

    it.effect("an admitted waiter's deadline no longer applies, and its timer goes away", () =>
      Effect.gen(function*() {
        const bulkhead = yield* Bulkhead.make({ name: "db", maxConcurrent: 1, maxQueue: 1, maxWait: "1 second" })
        yield* start(bulkhead.protect(Effect.sleep("500 millis")))
        const waiter = yield* start(bulkhead.protect(Effect.as(Effect.sleep("5 seconds"), "done")))
        yield* TestClock.adjust("10 seconds")
        assert.strictEqual(yield* Fiber.join(waiter), "done")
        assert.deepStrictEqual((yield* bulkhead.snapshot).rejected, { QueueFull: 0, WaitTimeout: 0 })
      }))

    it.effect("retryAfter is the moving average of call durations (a fifth per call), rounded", () =>
      Effect.gen(function*() {
        const bulkhead = yield* Bulkhead.make({ name: "db", maxConcurrent: 1 })
        // With a fixed limit one call in 8 is timed: calls 1 and 9 here.
        yield* settle(bulkhead.protect(Effect.sleep("100 millis")))
        for (let i = 0; i < 7; i++) yield* bulkhead.protect(Effect.void)
        yield* settle(bulkhead.protect(Effect.sleep("200 millis")))
        assert.strictEqual((yield* bulkhead.snapshot).averageCallMillis, 120)
        yield* start(bulkhead.protect(Effect.never))
        const error = yield* rejectionOf(bulkhead.protect(Effect.void))
        assert.strictEqual(Duration.toMillis(error.retryAfter), 120)
        assert.strictEqual(error.message, "Bulkhead \"db\" is full (limit 1, no queue); retry after 120ms")
      }))

    it.effect("a call admitted from the queue is always timed: its admission read the clock already", () =>
      Effect.gen(function*() {
        const bulkhead = yield* Bulkhead.make({ name: "db", maxConcurrent: 1, maxQueue: 1 })
        // Call 1, admitted at once, is timed (100 ms); call 2 waits, then runs 500 ms: timed too, though the 2nd.
        yield* start(bulkhead.protect(Effect.sleep("100 millis")))
        const second = yield* start(bulkhead.protect(Effect.sleep("500 millis")))
        yield* TestClock.adjust("1 second")
        yield* Fiber.join(second)
        const snapshot = yield* bulkhead.snapshot
        assert.deepStrictEqual([snapshot.calls, snapshot.averageCallMillis], [2, 100 + (500 - 100) / 5])
      }))

    it.effect("a wall clock stepped forward expires no waiter early and makes no call slow", () =>
      Effect.gen(function*() {
        const { clock, step } = yield* steppable
        const onStepped = Effect.provideService(Clock.Clock, clock)
        const bulkhead = yield* onStepped(Bulkhead.make({
          name: "db",
          maxConcurrent: 2,
          maxQueue: 1,
          maxWait: "1 second",
          adaptive: { min: 1, max: 10, latencyTarget: "100 millis", decreaseFactor: 0.5 }
        }))
        const gate = yield* Deferred.make<void>()
        const holders = yield* concurrently(
          ...[1, 2].map(() => onStepped(bulkhead.protect(Deferred.await(gate))))
        )
        yield* Effect.yieldNow
        const waiter = yield* start(onStepped(bulkhead.protect(Effect.succeed("admitted"))))
        yield* TestClock.adjust("10 millis")
        // The wall clock jumps a minute ahead: the holders ran 10 ms, and the waiter waited as long.
        step(60_000)
        yield* Deferred.succeed(gate, undefined)
        yield* Fiber.join(holders)
        assert.strictEqual(yield* Fiber.join(waiter), "admitted")
        const snapshot = yield* bulkhead.snapshot
        // Two fast calls that used the whole limit (the second holder, the waiter) raised it: 2 + 1 + 1. Durations
        // 10, 0 and 10 ms.
        assert.deepStrictEqual(
          [snapshot.limit, snapshot.rejected.WaitTimeout, snapshot.averageCallMillis],
          [4, 0, 8.4]
        )
      }))
  })

  describe("interruption", () => {
    it.effect("an interrupted waiter leaves the queue and never takes a permit", () =>
      Effect.gen(function*() {
        const bulkhead = yield* Bulkhead.make({ name: "db", maxConcurrent: 1, maxQueue: 3, maxWait: "1 minute" })
        const t = tracker()
        yield* start(t.call("a", 1000).pipe(bulkhead.protect))
        yield* start(t.call("b", 1000).pipe(bulkhead.protect))
        const c = yield* start(t.call("c", 1000).pipe(bulkhead.protect))
        yield* start(t.call("d", 1000).pipe(bulkhead.protect))
        yield* Fiber.interrupt(c)
        assert.strictEqual((yield* bulkhead.snapshot).queued, 2)
        yield* TestClock.adjust("2 minutes")
        assert.deepStrictEqual(t.started, ["a", "b", "d"])
        assert.deepStrictEqual((yield* bulkhead.snapshot).rejected, { QueueFull: 0, WaitTimeout: 0 })
        assert.strictEqual((yield* bulkhead.snapshot).calls, 3)
      }))

    it.effect("an interrupted call gives its permit back to the next waiter", () =>
      Effect.gen(function*() {
        const bulkhead = yield* Bulkhead.make({ name: "db", maxConcurrent: 1, maxQueue: 1 })
        const t = tracker()
        const a = yield* start(t.call("a", 1000).pipe(bulkhead.protect))
        yield* start(t.call("b", 1000).pipe(bulkhead.protect))
        yield* TestClock.adjust("100 millis")
        yield* Fiber.interrupt(a)
        yield* Effect.yieldNow
        assert.deepStrictEqual(t.started, ["a", "b"])
        assert.deepStrictEqual([(yield* bulkhead.snapshot).active, (yield* bulkhead.snapshot).queued], [1, 0])
        yield* TestClock.adjust("1 second")
        assert.deepStrictEqual(t.finished, ["b"])
        assert.strictEqual((yield* bulkhead.snapshot).active, 0)
      }))

    it.effect("a waiter interrupted at any step between queueing and running never keeps a permit", () =>
      Effect.gen(function*() {
        // Fibers that yield every `ops` steps are off the CPU at different points of the waiting path, including
        // after queueing and before suspending: a permit granted then is the waiter's, and must come back.
        let grantedBeforeRunning = 0
        for (const ops of [2, 3, 4, 5, 6, 7, 8, 10, 12, 16]) {
          for (const maxWait of [undefined, "1 minute" as const]) {
            yield* Effect.gen(function*() {
              const bulkhead = yield* Bulkhead.make({ name: "p", maxConcurrent: 1, maxQueue: 2, maxWait })
              const ran: Array<string> = []
              const gate = yield* Deferred.make<void>()
              yield* start(bulkhead.protect(Deferred.await(gate)))
              const b = yield* start(
                Effect.sync(() => ran.push("b")).pipe(
                  bulkhead.protect,
                  Effect.provideService(Scheduler.MaxOpsBeforeYield, ops)
                )
              )
              // The holder finishes, its handler hands the permit to b if b queued, and b is interrupted at once.
              yield* Deferred.succeed(gate, undefined)
              const granted = (yield* bulkhead.snapshot).calls === 2
              b.interruptUnsafe()
              yield* Fiber.await(b)
              if (granted && ran.length === 0) grantedBeforeRunning++
              const label = `ops ${ops}, maxWait ${maxWait}`
              const snapshot = yield* bulkhead.snapshot
              assert.deepStrictEqual([snapshot.active, snapshot.queued], [0, 0], label)
              assert.strictEqual(yield* bulkhead.protect(Effect.succeed("c")), "c", label)
            }).pipe(Effect.scoped)
          }
        }
        assert.isAbove(grantedBeforeRunning, 0)
      }))

    it.effect("no interruption point leaks a permit or lets an unadmitted caller run", () =>
      Effect.gen(function*() {
        for (const at of [0, 1, 500, 999, 1000, 1001, 1500, 1999, 2000, 2500, 3000]) {
          for (const target of [0, 1, 2]) {
            for (const yields of [0, 1, 2, 5]) {
              yield* Effect.gen(function*() {
                const bulkhead = yield* Bulkhead.make({
                  name: "p",
                  maxConcurrent: 1,
                  maxQueue: 2,
                  maxWait: "3 seconds"
                })
                const t = tracker()
                const fibers = []
                for (const id of ["0", "1", "2"]) fibers.push(yield* start(t.call(id, 1000).pipe(bulkhead.protect)))
                yield* Effect.forkChild(
                  Effect.sleep(at).pipe(
                    Effect.andThen(Effect.repeat(Effect.yieldNow, { times: yields })),
                    Effect.andThen(Fiber.interrupt(fibers[target]))
                  )
                )
                yield* TestClock.adjust("10 seconds")
                const exits = yield* Effect.forEach(fibers, Fiber.await)
                const label = `interrupt ${target} at ${at}ms after ${yields} yields`
                assert.strictEqual(t.peak, 1, label)
                const snapshot = yield* bulkhead.snapshot
                assert.deepStrictEqual([snapshot.active, snapshot.queued], [0, 0], label)
                assert.deepStrictEqual(snapshot.rejected, { QueueFull: 0, WaitTimeout: 0 }, label)
                // Every caller but the interrupted one completed; the interrupted one ran only if admitted.
                exits.forEach((exit, i) => {
                  if (i !== target) assert.isTrue(Exit.isSuccess(exit), `${label}: ${i}`)
                })
                assert.isAtMost(t.started.length, snapshot.calls, label)
                assert.strictEqual(t.finished.length + (Exit.isSuccess(exits[target]) ? 0 : 1), 3, label)
                // And the bulkhead is whole: a new call runs at once.
                assert.strictEqual(yield* bulkhead.protect(Effect.succeed("ok")), "ok", label)
              }).pipe(Effect.scoped)
            }
          }
        }
      }))
  })

  describe("adaptive limit", () => {
    it.effect("grows by increaseBy only for fast successes that used the whole limit", () =>
      Effect.gen(function*() {
        const bulkhead = yield* adaptive({ initial: 2 })
        // Alone, the call used one permit of two: no evidence that more would be fine.
        yield* settle(bulkhead.protect(Effect.sleep("50 millis")))
        assert.strictEqual(yield* limitOf(bulkhead), 2)
        // Two at once: the second took the last permit, and its success raises the limit; the first does not.
        const both = yield* concurrently(
          bulkhead.protect(Effect.sleep("50 millis")),
          bulkhead.protect(Effect.sleep("50 millis"))
        )
        yield* TestClock.adjust("50 millis")
        yield* Fiber.join(both)
        assert.strictEqual(yield* limitOf(bulkhead), 3)
        // Exactly at the target still counts as fast.
        const three = yield* concurrently(
          ...Array.from({ length: 3 }, () => bulkhead.protect(Effect.sleep("100 millis")))
        )
        yield* TestClock.adjust("100 millis")
        yield* Fiber.join(three)
        assert.strictEqual(yield* limitOf(bulkhead), 4)
      }))

    it.effect("waiters count as saturated, and a raised limit admits waiters at once", () =>
      Effect.gen(function*() {
        const bulkhead = yield* adaptive({ initial: 1, increaseBy: 2, maxQueue: 5 })
        const startedAt: Array<number> = []
        const call = bulkhead.protect(
          Effect.flatMap(now, (t) => Effect.sync(() => startedAt.push(t))).pipe(Effect.andThen(Effect.sleep(50)))
        )
        const fiber = yield* concurrently(call, call, call, call)
        yield* TestClock.adjust("1 second")
        yield* Fiber.join(fiber)
        // The first call took the only permit: 1 + 2 = 3 at 50ms, which admits the three waiters together;
        // each waited, so each success adds 2: 3 + 6 = 9.
        assert.deepStrictEqual(startedAt, [0, 50, 50, 50])
        assert.strictEqual(yield* limitOf(bulkhead), 9)
      }))

    it.effect("multiplies by decreaseFactor (rounding down) on slow calls, never below min", () =>
      Effect.gen(function*() {
        const bulkhead = yield* adaptive({ initial: 20, max: 20, min: 3 })
        const limits: Array<number> = []
        for (let i = 0; i < 8; i++) {
          yield* settle(bulkhead.protect(Effect.sleep("101 millis")))
          limits.push(yield* limitOf(bulkhead))
        }
        // 20 * 0.9 = 18, 16.2, 14.4, 12.6, 10.8, 9, 8.1, 7.2 -> rounded down each time, clamped at 3.
        assert.deepStrictEqual(limits, [18, 16, 14, 12, 10, 9, 8, 7])
        const halving = yield* adaptive({ initial: 10, decreaseFactor: 0.5, min: 2 })
        const halved: Array<number> = []
        for (let i = 0; i < 4; i++) {
          yield* settle(halving.protect(Effect.sleep("1 second")))
          halved.push(yield* limitOf(halving))
        }
        assert.deepStrictEqual(halved, [5, 2, 2, 2])
      }))

    it.effect("cuts on failures, defects and TimeoutError; isFailure can spare other errors", () =>
      Effect.gen(function*() {
        const bulkhead = yield* adaptive({
          initial: 10,
          decreaseFactor: 0.5,
          isFailure: (error) => !(error instanceof NotFound)
        })
        yield* Effect.ignore(bulkhead.protect(Effect.fail(new NotFound())))
        assert.strictEqual(yield* limitOf(bulkhead), 10)
        yield* Effect.ignore(bulkhead.protect(Effect.fail(new Boom())))
        assert.strictEqual(yield* limitOf(bulkhead), 5)
        yield* Effect.exit(bulkhead.protect(Effect.die("bug")))
        assert.strictEqual(yield* limitOf(bulkhead), 2)
        const spareAll = yield* Bulkhead.make({
          name: "spare",
          maxConcurrent: 8,
          adaptive: { min: 1, max: 8, latencyTarget: "1 second", decreaseFactor: 0.5, isFailure: () => false }
        })
        yield* Effect.ignore(spareAll.protect(Effect.never.pipe(Effect.timeout("10 millis"))).pipe(Effect.forkChild))
        yield* TestClock.adjust("10 millis")
        // A TimeoutError lowers the limit even when isFailure says no.
        assert.strictEqual(yield* limitOf(spareAll), 4)
        // A slow NotFound is still slow.
        yield* Effect.ignore(
          bulkhead.protect(Effect.sleep("200 millis").pipe(Effect.andThen(Effect.fail(new NotFound()))))
            .pipe(Effect.forkChild)
        )
        yield* TestClock.adjust("200 millis")
        assert.strictEqual(yield* limitOf(bulkhead), 1)
      }))

    it.effect("an isFailure that throws: the permit goes back, the limit drops as for a defect, the caller gets it", () =>
      Effect.gen(function*() {
        const misread = new Error("misread")
        const throwing = (): boolean => {
          throw misread
        }
        const bulkhead = yield* adaptive({ initial: 1, maxQueue: 1, isFailure: throwing })
        const t = tracker()
        const both = yield* concurrently(
          bulkhead.protect(Effect.andThen(t.call("a", 10), Effect.fail(new Boom()))),
          bulkhead.protect(t.call("b", 10))
        )
        yield* TestClock.adjust("10 millis")
        // The waiter got the permit when the first call ended, not when its wait ran out.
        assert.deepStrictEqual(t.started, ["a", "b"])
        yield* TestClock.adjust("10 millis")
        const [first, second] = yield* Fiber.join(both)
        // As after a finalizer that dies, the call's error is a defect too.
        assert.deepStrictEqual(
          Exit.isFailure(first) && first.cause.reasons.map((reason) => Cause.isDieReason(reason) && reason.defect),
          [new Boom(), misread]
        )
        assert.isTrue(Exit.isSuccess(second))
        assert.deepStrictEqual(yield* bulkhead.snapshot.pipe(Effect.map((s) => [s.active, s.queued])), [0, 0])
        const wide = yield* adaptive({ initial: 8, decreaseFactor: 0.5, isFailure: throwing })
        yield* Effect.exit(wide.protect(Effect.fail(new Boom())))
        assert.strictEqual(yield* limitOf(wide), 4)
      }))

    it.effect("never grows above max", () =>
      Effect.gen(function*() {
        const bulkhead = yield* adaptive({ initial: 1, max: 4, increaseBy: 3 })
        yield* bulkhead.protect(Effect.void)
        assert.strictEqual(yield* limitOf(bulkhead), 4)
        const fiber = yield* concurrently(...Array.from({ length: 4 }, () => bulkhead.protect(Effect.sleep(10))))
        yield* TestClock.adjust("10 millis")
        yield* Fiber.join(fiber)
        assert.strictEqual(yield* limitOf(bulkhead), 4)
      }))

    it.effect("a lower limit never interrupts running calls: it admits nobody until fewer run", () =>
      Effect.gen(function*() {
        const bulkhead = yield* adaptive({ initial: 4, decreaseFactor: 0.5, latencyTarget: "2 seconds", maxQueue: 1 })
        const t = tracker()
        const failing = bulkhead.protect(Effect.sleep("100 millis").pipe(Effect.andThen(Effect.fail(new Boom()))))
        const running = yield* concurrently(
          failing,
          ...["a", "b", "c"].map((id) => t.call(id, 1000).pipe(bulkhead.protect))
        )
        yield* TestClock.adjust("200 millis")
        const waiter = yield* start(bulkhead.protect(now))
        const snapshot = yield* bulkhead.snapshot
        assert.deepStrictEqual([snapshot.limit, snapshot.active, snapshot.queued], [2, 3, 1])
        yield* TestClock.adjust("799 millis")
        assert.strictEqual((yield* bulkhead.snapshot).queued, 1)
        yield* TestClock.adjust("1 millis")
        assert.strictEqual(yield* Fiber.join(waiter), 1000)
        yield* Fiber.join(running)
        assert.deepStrictEqual(t.finished, ["a", "b", "c"])
      }))

    it.effect("an interrupted call lowers the limit only if it had run past latencyTarget", () =>
      Effect.gen(function*() {
        const bulkhead = yield* adaptive({ initial: 10, decreaseFactor: 0.5 })
        const quick = yield* start(bulkhead.protect(Effect.never))
        yield* TestClock.adjust("100 millis")
        yield* Fiber.interrupt(quick)
        assert.strictEqual(yield* limitOf(bulkhead), 10)
        const slow = yield* start(bulkhead.protect(Effect.never))
        yield* TestClock.adjust("101 millis")
        yield* Fiber.interrupt(slow)
        assert.strictEqual(yield* limitOf(bulkhead), 5)
      }))

    // `TestClock.setTime` moves the wall clock and not the monotonic one, as an NTP correction does to `Date.now()`.
    it.effect("a wall clock stepped back makes no slow call fast and no retryAfter negative", () =>
      Effect.gen(function*() {
        yield* TestClock.setTime(3_600_000)
        const bulkhead = yield* adaptive({ initial: 1, decreaseFactor: 0.5 })
        const gate = yield* Deferred.make<void>()
        const slow = yield* start(bulkhead.protect(Deferred.await(gate)))
        yield* TestClock.adjust("200 millis")
        yield* TestClock.setTime(0)
        yield* Deferred.succeed(gate, undefined)
        yield* Fiber.join(slow)
        // It ran 200 ms, past the target, whatever the wall clock says: the limit stays at its minimum.
        assert.strictEqual(yield* limitOf(bulkhead), 1)
        assert.strictEqual((yield* bulkhead.snapshot).averageCallMillis, 200)
        yield* start(bulkhead.protect(Effect.never))
        assert.strictEqual(Duration.toMillis((yield* rejectionOf(bulkhead.protect(Effect.void))).retryAfter), 200)
      }))

    it.effect("the limit is exported as bulkhead_limit", () =>
      Effect.gen(function*() {
        const bulkhead = yield* adaptive({ initial: 10, decreaseFactor: 0.5 })
        assert.strictEqual(yield* metricValue("bulkhead_limit"), 10)
        yield* Effect.ignore(bulkhead.protect(Effect.fail(new Boom())))
        assert.strictEqual(yield* metricValue("bulkhead_limit"), 5)
      }).pipe(Effect.provideService(Metric.MetricRegistry, new Map())))
  })

  describe("metrics and snapshot", () => {
    it.effect("exports active, queued, limit, calls and rejections by reason, tagged with the policy", () =>
      Effect.gen(function*() {
        const bulkhead = yield* Bulkhead.make({ name: "db", maxConcurrent: 1, maxQueue: 1, maxWait: "1 second" })
        yield* start(bulkhead.protect(Effect.sleep("5 seconds")))
        yield* start(Effect.ignore(bulkhead.protect(Effect.void)))
        yield* Effect.ignore(bulkhead.protect(Effect.void))
        assert.strictEqual(yield* metricValue("bulkhead_active"), 1)
        assert.strictEqual(yield* metricValue("bulkhead_queued"), 1)
        assert.strictEqual(yield* metricValue("bulkhead_limit"), 1)
        assert.strictEqual(yield* metricValue("bulkhead_rejections_total", { reason: "QueueFull" }), 1)
        yield* TestClock.adjust("1 second")
        assert.strictEqual(yield* metricValue("bulkhead_queued"), 0)
        assert.strictEqual(yield* metricValue("bulkhead_rejections_total", { reason: "WaitTimeout" }), 1)
        assert.strictEqual(yield* metricValue("bulkhead_calls_total"), 1)
        const snapshot = yield* bulkhead.snapshot
        assert.deepStrictEqual(JSON.parse(JSON.stringify(snapshot)), snapshot)
      }).pipe(Effect.provideService(Metric.MetricRegistry, new Map())))

    it.effect("metrics leave the registry when the bulkhead's scope closes", () =>
      Effect.gen(function*() {
        yield* Effect.scoped(Bulkhead.make({ name: "db", maxConcurrent: 1 }))
        const left = (yield* Metric.snapshot).filter((m) => m.attributes?.["policy"] === "db")
        assert.deepStrictEqual(left, [])
      }).pipe(Effect.provideService(Metric.MetricRegistry, new Map())))
  })

  describe("errors", () => {
    it.effect("BulkheadFull encodes retryAfter as millis and round-trips", () =>
      Effect.gen(function*() {
        const error = new Bulkhead.BulkheadFull({
          policy: "db",
          reason: "WaitTimeout",
          limit: 4,
          maxQueue: 8,
          retryAfter: Duration.millis(250)
        })
        const encoded = yield* Schema.encodeEffect(Bulkhead.BulkheadFull)(error)
        assert.strictEqual(encoded.retryAfter, 250)
        const decoded = yield* Schema.decodeEffect(Bulkhead.BulkheadFull)(encoded)
        assert.strictEqual(decoded.message, error.message)
      }))

    it.effect("a circuit breaker around the bulkhead does not count its rejections as failures", () =>
      Effect.gen(function*() {
        const bulkhead = yield* Bulkhead.make({ name: "db", maxConcurrent: 1 })
        const breaker = yield* CircuitBreaker.make({ name: "db", trip: CircuitBreaker.consecutive(1) })
        yield* start(bulkhead.protect(Effect.never))
        const error = yield* Effect.flip(Effect.void.pipe(bulkhead.protect, breaker.protect))
        assert.strictEqual(error._tag, "BulkheadFull")
        assert.strictEqual(yield* breaker.state, "Closed")
      }))
  })

  describe("options", () => {
    it.effect("bad values fail with the option's path and what was expected", () =>
      Effect.gen(function*() {
        assert.deepStrictEqual(
          yield* invalid({ name: "", maxConcurrent: 0, maxQueue: -1, maxWait: "soon" as unknown as Duration.Input }),
          [
            "name: Expected a value with a length of at least 1, got \"\"",
            "maxConcurrent: Expected a value greater than or equal to 1, got 0",
            "maxQueue: Expected a value greater than or equal to 0, got -1",
            "maxWait: Expected a duration, got \"soon\", which is not a duration: use a number of milliseconds, " +
            "a Duration, or \"<amount> <unit>\" with a unit among nanos, micros, millis, seconds, minutes, hours, days, weeks " +
            "(\"30 seconds\")"
          ]
        )
        assert.deepStrictEqual(yield* invalid({ name: "db", maxConcurrent: 1.5, maxWait: 0 }), [
          "maxConcurrent: Expected an integer, got 1.5",
          "maxWait: Expected a positive duration, got 0 millis"
        ])
        assert.deepStrictEqual(
          yield* invalid({
            name: "db",
            maxConcurrent: 5,
            adaptive: { min: 0, max: 3, latencyTarget: -1, increaseBy: 0, decreaseFactor: 1 }
          }),
          [
            "adaptive.min: Expected a value greater than or equal to 1, got 0",
            "adaptive.latencyTarget: Expected a positive duration, got -1 millis",
            "adaptive.increaseBy: Expected a value greater than or equal to 1, got 0",
            "adaptive.decreaseFactor: Expected a value less than 1, got 1"
          ]
        )
      }))

    it.effect("the adaptive bounds must hold the starting limit, named by the option that set it", () =>
      Effect.gen(function*() {
        assert.deepStrictEqual(
          yield* invalid({ name: "db", maxConcurrent: 5, adaptive: { min: 4, max: 3, latencyTarget: 100 } }),
          ["adaptive.max: Expected at least adaptive.min (4), got 3"]
        )
        assert.deepStrictEqual(
          yield* invalid({ name: "db", maxConcurrent: 50, adaptive: { min: 4, max: 10, latencyTarget: 100 } }),
          ["maxConcurrent: Expected a value between adaptive.min (4) and adaptive.max (10), got 50"]
        )
        assert.deepStrictEqual(
          yield* invalid({
            name: "db",
            maxConcurrent: 5,
            adaptive: { initial: 1, min: 4, max: 10, latencyTarget: 100 }
          }),
          ["adaptive.initial: Expected a value between adaptive.min (4) and adaptive.max (10), got 1"]
        )
        const error = yield* Effect.flip(Effect.scoped(Bulkhead.make({ name: "db", maxConcurrent: 0 })))
        assert.strictEqual(
          error.message,
          "Invalid options for bulkhead \"db\":\n  maxConcurrent: Expected a value greater than or equal to 1, got 0"
        )
      }))
  })

  describe("layer", () => {
    it.effect("provides the Bulkhead service", () =>
      Effect.gen(function*() {
        const bulkhead = yield* Bulkhead.Bulkhead
        assert.strictEqual(bulkhead.name, "db")
        assert.strictEqual(yield* bulkhead.protect(Effect.succeed(1)), 1)
      }).pipe(Effect.provide(Bulkhead.layer({ name: "db", maxConcurrent: 1 }))))

    it.effect("fails to build with bad options", () =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(Layer.build(Bulkhead.layer({ name: "db", maxConcurrent: -1 })))
        assert.strictEqual(error._tag, "PolicyConfigError")
      }))
  })
})
