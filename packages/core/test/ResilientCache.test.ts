import { assert, describe, it } from "@effect/vitest"
import { Data, Duration, Effect, Fiber, Logger, Metric, Option } from "effect"
import { TestClock } from "effect/testing"
import * as Bulkhead from "../src/Bulkhead.ts"
import * as CircuitBreaker from "../src/CircuitBreaker.ts"
import * as FallbackStore from "../src/FallbackStore.ts"
import * as internal from "../src/internal/resilientCache.ts"
import * as ResilientCache from "../src/ResilientCache.ts"
import * as Retry from "../src/Retry.ts"
import * as Timeout from "../src/Timeout.ts"
import { interruptedAfter, yieldTimes } from "./interruption.ts"

class CacheDown extends Data.TaggedError("CacheDown") {}

type Mode =
  | "up"
  | "failing"
  | "hanging"
  | "dying"
  | "interrupted"
  | { readonly slow: number }
  | { readonly late: number }

/**
 * A map behind a switch: up, failing, hanging, dying, ending interrupted (it joins a fiber something else
 * interrupted), slow (acts once the delay is over) or late (acts at once, answers after the delay); counts the calls
 * that reached it.
 */
const controllable = () => {
  const map = new Map<string, string>()
  const state = { mode: "up" as Mode, calls: 0 }
  const run = <A>(f: () => A): Effect.Effect<A, CacheDown> =>
    Effect.suspend(() => {
      state.calls++
      const mode = state.mode
      if (mode === "failing") return Effect.fail(new CacheDown())
      if (mode === "hanging") return Effect.never
      if (mode === "dying") return Effect.die("driver crashed")
      if (mode === "interrupted") {
        return Effect.forkChild(Effect.never).pipe(Effect.tap(Fiber.interrupt), Effect.flatMap(Fiber.join))
      }
      if (mode === "up") return Effect.sync(f)
      if ("late" in mode) return Effect.flatMap(Effect.sync(f), (a) => Effect.as(Effect.sleep(mode.late), a))
      return Effect.andThen(Effect.sleep(Duration.millis(mode.slow)), Effect.sync(f))
    })
  const backend: ResilientCache.Backend<string, CacheDown> = {
    get: (key) => run(() => Option.fromNullishOr(map.get(key))),
    set: (key, value) => run(() => void map.set(key, value)),
    invalidate: (key) => run(() => (map.delete(key) ? 1 : 0))
  }
  return { map, state, backend }
}

const breakerOptions = { trip: CircuitBreaker.consecutive(3), openDuration: "30 seconds" } as const

/** A cache named "sessions" on `backend`, with `options`, whose failures are kept in `reported`. */
const reportingCache = (
  backend: ResilientCache.Backend<string, CacheDown>,
  options: Omit<ResilientCache.Options<string, CacheDown>, "name" | "backend" | "onFailure">
) =>
  Effect.gen(function*() {
    const reported: Array<ResilientCache.Failure> = []
    const cache = yield* ResilientCache.make({
      name: "sessions",
      backend,
      ...options,
      onFailure: (failure) => Effect.sync(() => void reported.push(failure))
    })
    return { cache, reported }
  })

describe("ResilientCache", () => {
  describe("a failing cache", () => {
    it.effect("a failing get is a miss, a failing set is false, a failing invalidate is 0; all reported", () =>
      Effect.gen(function*() {
        const { backend, map, state } = controllable()
        const { cache, reported } = yield* reportingCache(backend, {
          circuitBreaker: { trip: CircuitBreaker.consecutive(10) }
        })
        map.set("a", "1")
        state.mode = "failing"
        assert.deepStrictEqual(yield* cache.get("a"), Option.none())
        assert.isFalse(yield* cache.set("b", "2"))
        assert.strictEqual(yield* cache.invalidate("a"), 0)
        assert.deepStrictEqual(
          reported.map((f) => [f.operation, f.key, f.kind, (f.cause as CacheDown)._tag]),
          [["get", "a", "Error", "CacheDown"], ["set", "b", "Error", "CacheDown"], [
            "invalidate",
            "a",
            "Error",
            "CacheDown"
          ]]
        )
        state.mode = "dying"
        assert.deepStrictEqual(yield* cache.get("a"), Option.none())
        assert.strictEqual(reported[3].kind, "Defect")
        const snapshot = yield* cache.snapshot
        assert.deepStrictEqual(snapshot.errors, { get: 2, set: 1, invalidate: 1 })
        assert.strictEqual(snapshot.misses, 2)
        assert.strictEqual(snapshot.breaker.failureCount, 4)
      }).pipe(Effect.scoped))

    it.effect("a backend that throws instead of returning an effect: each call is a reported defect, never a failure", () =>
      Effect.gen(function*() {
        const closed = new Error("client is closed")
        const throwing = (): never => {
          throw closed
        }
        const { cache, reported } = yield* reportingCache({ get: throwing, set: throwing, invalidate: throwing }, {
          circuitBreaker: { trip: CircuitBreaker.consecutive(10) }
        })
        assert.deepStrictEqual(yield* cache.get("a"), Option.none())
        assert.isFalse(yield* cache.set("b", "2"))
        assert.strictEqual(yield* cache.invalidate("a"), 0)
        assert.deepStrictEqual(reported.map((f) => [f.operation, f.kind, f.cause]), [
          ["get", "Defect", closed],
          ["set", "Defect", closed],
          ["invalidate", "Defect", closed]
        ])
        assert.strictEqual((yield* cache.snapshot).breaker.failureCount, 3)
      }).pipe(Effect.scoped))

    it.effect("an onFailure that throws or dies is logged: the cache's calls still answer", () =>
      Effect.gen(function*() {
        const { backend, state } = controllable()
        const logged: Array<string> = []
        const logger = Logger.make(({ logLevel, message }) => {
          logged.push(`${logLevel} ${(Array.isArray(message) ? message : [message]).join(" ")}`)
        })
        let hooked = 0
        const cache = yield* ResilientCache.make({
          name: "sessions",
          backend,
          circuitBreaker: { trip: CircuitBreaker.consecutive(10) },
          onFailure: () => {
            if (hooked++ === 0) throw new Error("hook bug")
            return Effect.die("hook died")
          }
        })
        state.mode = "failing"
        const answers = yield* Effect.all([cache.get("a"), cache.set("b", "2")]).pipe(
          Effect.provide(Logger.layer([logger]))
        )
        assert.deepStrictEqual(answers, [Option.none(), false])
        assert.deepStrictEqual(logged, [
          `Warn Resilient cache "sessions": onFailure failed on get`,
          `Warn Resilient cache "sessions": onFailure failed on set`
        ])
      }).pipe(Effect.scoped))

    it.effect("a backend call that ends interrupted on its own is a reported defect: the caller was not interrupted", () =>
      Effect.gen(function*() {
        const { backend, state } = controllable()
        const { cache, reported } = yield* reportingCache(backend, {
          circuitBreaker: { trip: CircuitBreaker.consecutive(10) }
        })
        state.mode = "interrupted"
        assert.deepStrictEqual(yield* cache.get("a"), Option.none())
        assert.isFalse(yield* cache.set("b", "2"))
        assert.strictEqual(yield* cache.invalidate("a"), 0)
        assert.deepStrictEqual(reported.map((f) => [f.operation, f.kind]), [
          ["get", "Defect"],
          ["set", "Defect"],
          ["invalidate", "Defect"]
        ])
        assert.deepStrictEqual((yield* cache.snapshot).errors, { get: 1, set: 1, invalidate: 1 })
      }).pipe(Effect.scoped))

    it.effect("the breaker opens: a dead cache is skipped without a call, and probed again later", () =>
      Effect.gen(function*() {
        const { backend, map, state } = controllable()
        const cache = yield* ResilientCache.make({
          name: "sessions",
          backend,
          circuitBreaker: breakerOptions,
          onFailure: () => Effect.void
        })
        state.mode = "failing"
        for (let i = 0; i < 3; i++) yield* cache.get("a")
        assert.strictEqual(state.calls, 3)
        assert.deepStrictEqual(yield* cache.get("a"), Option.none())
        assert.isFalse(yield* cache.set("a", "1"))
        assert.strictEqual(yield* cache.invalidate("a"), 0)
        assert.strictEqual(state.calls, 3, "no call reaches the backend while the breaker is open")
        const open = yield* cache.snapshot
        assert.strictEqual(open.skipped, 3)
        assert.strictEqual(open.breaker.state, "Open")

        state.mode = "up"
        map.set("a", "fresh")
        yield* TestClock.adjust("30 seconds")
        assert.deepStrictEqual(yield* cache.get("a"), Option.some("fresh"))
        assert.strictEqual((yield* cache.snapshot).breaker.state, "Closed")
      }).pipe(Effect.scoped))
  })

  describe("a hanging cache", () => {
    it.effect("each call waits `timeout` at most, then no call waits once the breaker is open", () =>
      Effect.gen(function*() {
        const { backend, state } = controllable()
        const { cache, reported } = yield* reportingCache(backend, {
          timeout: "100 millis",
          circuitBreaker: breakerOptions
        })
        state.mode = "hanging"
        for (let i = 0; i < 3; i++) {
          const fiber = yield* Effect.forkChild(cache.get("a"))
          yield* TestClock.adjust("99 millis")
          assert.isUndefined(fiber.pollUnsafe(), "still within the timeout")
          yield* TestClock.adjust("1 millis")
          assert.deepStrictEqual(yield* Fiber.join(fiber), Option.none())
        }
        // Open now: answered with no time passing.
        const fiber = yield* Effect.forkChild(cache.set("a", "1"))
        yield* Effect.yieldNow
        assert.isFalse(yield* Fiber.join(fiber))
        assert.strictEqual(state.calls, 3)
        const snapshot = yield* cache.snapshot
        assert.strictEqual(snapshot.timeouts, 3)
        assert.strictEqual(snapshot.errors.get, 3)
        assert.strictEqual(snapshot.breaker.state, "Open")
        // The timeout names the cache and its duration.
        const cause = reported[0].cause
        assert.deepStrictEqual(reported.map((f) => f.kind), ["Timeout", "Timeout", "Timeout"])
        assert.isTrue(Timeout.isTimeoutError(cause))
        assert.strictEqual((cause as Timeout.TimeoutError).operation, "sessions")
        assert.strictEqual(Duration.toMillis((cause as Timeout.TimeoutError).duration), 100)
      }).pipe(Effect.scoped))
  })

  describe("a slow cache", () => {
    it.effect("a call under the timeout answers when the cache does; one over it is cut at the timeout", () =>
      Effect.gen(function*() {
        const { backend, map, state } = controllable()
        const cache = yield* ResilientCache.make({ name: "sessions", backend, timeout: "250 millis" })
        map.set("a", "1")
        state.mode = { slow: 200 }
        const under = yield* Effect.forkChild(cache.get("a"))
        yield* TestClock.adjust("200 millis")
        assert.deepStrictEqual(yield* Fiber.join(under), Option.some("1"))

        state.mode = { slow: 400 }
        const over = yield* Effect.forkChild(cache.get("a"))
        yield* TestClock.adjust("249 millis")
        assert.isUndefined(over.pollUnsafe())
        yield* TestClock.adjust("1 millis")
        assert.deepStrictEqual(yield* Fiber.join(over), Option.none())
        const snapshot = yield* cache.snapshot
        assert.strictEqual(snapshot.hits, 1)
        assert.strictEqual(snapshot.misses, 1)
        assert.strictEqual(snapshot.hitRate, 0.5)
        assert.strictEqual(snapshot.timeouts, 1)
      }).pipe(Effect.scoped))
  })

  describe("with a retry", () => {
    it.effect("a failed call is retried, each attempt under its own timeout; the breaker sees one outcome per call", () =>
      Effect.gen(function*() {
        const { backend, map, state } = controllable()
        const retry = yield* Retry.make({
          name: "sessions",
          schedule: Retry.exponential({ base: "50 millis", times: 2 })
        })
        const { cache, reported } = yield* reportingCache(backend, {
          timeout: "100 millis",
          retry,
          circuitBreaker: breakerOptions
        })
        map.set("a", "1")
        // The first attempt hangs and is cut at its timeout; the retry, 50 millis later, answers.
        state.mode = "hanging"
        const healed = yield* Effect.forkChild(cache.get("a"))
        yield* TestClock.adjust("100 millis")
        state.mode = "up"
        assert.isUndefined(healed.pollUnsafe(), "waiting for the retry")
        yield* TestClock.adjust("50 millis")
        assert.deepStrictEqual(yield* Fiber.join(healed), Option.some("1"))
        assert.strictEqual(state.calls, 2)

        // Three failed attempts are one failed call: reported once, one failure for the breaker.
        state.mode = "failing"
        const failed = yield* Effect.forkChild(cache.set("b", "2"))
        yield* TestClock.adjust("150 millis")
        assert.isFalse(yield* Fiber.join(failed))
        assert.strictEqual(state.calls, 5)
        assert.deepStrictEqual(reported.map((f) => [f.operation, f.kind]), [["set", "Error"]])
        const snapshot = yield* cache.snapshot
        assert.strictEqual(snapshot.timeouts, 0)
        assert.deepStrictEqual(snapshot.errors, { get: 0, set: 1, invalidate: 0 })
        assert.strictEqual(snapshot.breaker.state, "Closed")
        assert.strictEqual(snapshot.breaker.failureCount, 1)
        assert.strictEqual(snapshot.breaker.successCount, 1)
        const retried = yield* retry.snapshot
        assert.strictEqual(retried.calls, 2)
        assert.strictEqual(retried.retries, 3)
        assert.strictEqual(retried.succeededAfterRetry, 1)
      }).pipe(Effect.scoped))

    // A retry that judges values (`isFailureResult`) takes the composed path; the other, the fused one.
    for (const judged of [false, true]) {
      it.effect(`each retried attempt has a timeout of its own, the next one answers (judging values: ${judged})`, () =>
        Effect.gen(function*() {
          const { backend, map, state } = controllable()
          const retry = yield* Retry.make({
            name: "sessions",
            schedule: Retry.exponential({ base: "50 millis", times: 2 }),
            ...(judged ? { isFailureResult: () => false } : {})
          })
          const cache = yield* ResilientCache.make({ name: "sessions", backend, timeout: "100 millis", retry })
          map.set("a", "1")
          // The first attempt fails at once, the second (50 millis later) hangs until its timeout, the third answers.
          state.mode = "failing"
          const fiber = yield* Effect.forkChild(cache.get("a"))
          yield* Effect.yieldNow
          state.mode = "hanging"
          yield* TestClock.adjust("50 millis")
          assert.strictEqual(state.calls, 2)
          state.mode = "up"
          yield* TestClock.adjust("100 millis")
          yield* TestClock.adjust("100 millis")
          assert.deepStrictEqual(yield* Fiber.join(fiber), Option.some("1"))
          assert.strictEqual(state.calls, 3)
          assert.strictEqual((yield* cache.snapshot).timeouts, 0)
        }).pipe(Effect.scoped))
    }

    // A half-open breaker's probe takes the composed path (the breaker has a transition to publish): retried too.
    it.effect("a probe of the half-open breaker is retried as any call is, and closes it", () =>
      Effect.gen(function*() {
        const { backend, map, state } = controllable()
        const retry = yield* Retry.make({
          name: "sessions",
          schedule: Retry.exponential({ base: "50 millis", times: 2 })
        })
        const cache = yield* ResilientCache.make({
          name: "sessions",
          backend,
          timeout: "100 millis",
          retry,
          circuitBreaker: { trip: CircuitBreaker.consecutive(1), openDuration: "30 seconds" }
        })
        map.set("a", "1")
        state.mode = "failing"
        const opening = yield* Effect.forkChild(cache.get("a"))
        yield* TestClock.adjust("150 millis")
        assert.deepStrictEqual(yield* Fiber.join(opening), Option.none())
        assert.strictEqual((yield* cache.snapshot).breaker.state, "Open")
        yield* TestClock.adjust("30 seconds")
        // The probe's first attempt fails; its retry answers.
        const calls = state.calls
        const probe = yield* Effect.forkChild(cache.get("a"))
        yield* Effect.yieldNow
        state.mode = "up"
        yield* TestClock.adjust("50 millis")
        assert.deepStrictEqual(yield* Fiber.join(probe), Option.some("1"))
        assert.strictEqual(state.calls, calls + 2)
        assert.strictEqual((yield* cache.snapshot).breaker.state, "Closed")
      }).pipe(Effect.scoped))

    it.effect("a retry that judges values too (isFailureResult) retries all the same, through the composed path", () =>
      Effect.gen(function*() {
        const { backend, map, state } = controllable()
        const judged: Array<unknown> = []
        const retry = yield* Retry.make({
          name: "sessions",
          schedule: Retry.exponential({ base: "50 millis", times: 2 }),
          isFailureResult: (value: unknown) => {
            judged.push(value)
            return false
          }
        })
        const cache = yield* ResilientCache.make({ name: "sessions", backend, timeout: "100 millis", retry })
        map.set("a", "1")
        state.mode = "failing"
        const fiber = yield* Effect.forkChild(cache.get("a"))
        yield* Effect.yieldNow
        state.mode = "up"
        yield* TestClock.adjust("50 millis")
        assert.deepStrictEqual(yield* Fiber.join(fiber), Option.some("1"))
        assert.strictEqual(state.calls, 2)
        assert.deepStrictEqual(judged, [Option.some("1")])
      }).pipe(Effect.scoped))
  })

  describe("L1", () => {
    it.effect("serves what it holds while the backend is down, for `l1.ttl`", () =>
      Effect.gen(function*() {
        const { backend, state } = controllable()
        const cache = yield* ResilientCache.make({
          name: "sessions",
          backend,
          l1: { maxEntries: 10, ttl: "1 minute" },
          onFailure: () => Effect.void
        })
        assert.isTrue(yield* cache.set("user-1", "alice"))
        state.mode = "failing"
        assert.deepStrictEqual(yield* cache.get("user-1"), Option.some("alice"))
        // Written while the backend is down: L1 only.
        assert.isFalse(yield* cache.set("user-2", "bob"))
        assert.deepStrictEqual(yield* cache.get("user-2"), Option.some("bob"))
        assert.strictEqual(state.calls, 2, "the two sets reached the backend, the L1 hits did not")
        yield* TestClock.adjust("1 minute")
        assert.deepStrictEqual(yield* cache.get("user-1"), Option.none())
        const snapshot = yield* cache.snapshot
        assert.strictEqual(snapshot.l1Hits, 2)
        assert.strictEqual(snapshot.hits, 2)
        assert.strictEqual(snapshot.misses, 1)
        assert.strictEqual(snapshot.l1Entries, 0)
      }).pipe(Effect.scoped))

    it.effect("fills from backend hits, evicts the least recently used, and invalidate clears it", () =>
      Effect.gen(function*() {
        const { backend, map } = controllable()
        const cache = yield* ResilientCache.make({ name: "sessions", backend, l1: { maxEntries: 2, ttl: "1 hour" } })
        map.set("a", "1")
        map.set("b", "2")
        map.set("c", "3")
        yield* cache.get("a")
        yield* cache.get("b")
        yield* cache.get("a") // "b" is now the least recently used
        yield* cache.get("c") // evicts "b"
        map.clear()
        assert.deepStrictEqual(yield* cache.get("a"), Option.some("1"))
        assert.deepStrictEqual(yield* cache.get("c"), Option.some("3"))
        assert.deepStrictEqual(yield* cache.get("b"), Option.none())
        map.set("a", "1")
        assert.strictEqual(yield* cache.invalidate("a"), 1)
        assert.deepStrictEqual(yield* cache.get("a"), Option.none())
      }).pipe(Effect.scoped))
    describe("a read that a write overtakes does not fill the L1 with what it read", () => {
      for (const write of ["set", "invalidate"] as const) {
        it.effect(`${write} completing while a get is in flight`, () =>
          Effect.gen(function*() {
            const { backend, map, state } = controllable()
            const cache = yield* ResilientCache.make({
              name: "sessions",
              backend,
              l1: { maxEntries: 10, ttl: "1 hour" }
            })
            map.set("a", "old")
            // The get reads "old" at once and answers 100 ms later; the write completes meanwhile.
            state.mode = { late: 100 }
            const reading = yield* Effect.forkChild(cache.get("a"))
            yield* Effect.yieldNow
            state.mode = "up"
            if (write === "set") assert.isTrue(yield* cache.set("a", "new"))
            else assert.strictEqual(yield* cache.invalidate("a"), 1)
            yield* TestClock.adjust("100 millis")
            // It started first: it may answer with what it read...
            assert.deepStrictEqual(yield* Fiber.join(reading), Option.some("old"))
            // ...but a read after the write does not see the value the write replaced or removed.
            assert.deepStrictEqual(yield* cache.get("a"), write === "set" ? Option.some("new") : Option.none())
          }).pipe(Effect.scoped))
      }

      it.effect("a get that ran while an invalidate was in flight", () =>
        Effect.gen(function*() {
          const { backend, map, state } = controllable()
          const cache = yield* ResilientCache.make({ name: "sessions", backend, l1: { maxEntries: 10, ttl: "1 hour" } })
          map.set("a", "old")
          // The invalidate reaches the backend 100 ms from now; a get reads "old" meanwhile.
          state.mode = { slow: 100 }
          const invalidating = yield* Effect.forkChild(cache.invalidate("a"))
          yield* Effect.yieldNow
          state.mode = "up"
          assert.deepStrictEqual(yield* cache.get("a"), Option.some("old"))
          yield* TestClock.adjust("100 millis")
          assert.strictEqual(yield* Fiber.join(invalidating), 1)
          assert.deepStrictEqual(yield* cache.get("a"), Option.none())
        }).pipe(Effect.scoped))

      it.effect("a set issued while an invalidate was in flight is the last write: its value stays in the L1", () =>
        Effect.gen(function*() {
          const { backend, state } = controllable()
          const cache = yield* ResilientCache.make({
            name: "sessions",
            backend,
            l1: { maxEntries: 10, ttl: "1 hour" },
            timeout: "250 millis",
            onFailure: () => Effect.void
          })
          // The backend hangs: the invalidate and then the set time out, and the L1 alone serves.
          state.mode = "hanging"
          const invalidating = yield* Effect.forkChild(cache.invalidate("a"))
          yield* Effect.yieldNow
          const setting = yield* Effect.forkChild(cache.set("a", "new"))
          yield* Effect.yieldNow
          yield* TestClock.adjust("250 millis")
          assert.strictEqual(yield* Fiber.join(invalidating), 0)
          assert.isFalse(yield* Fiber.join(setting))
          // A miss would wait on the backend until the timeout: the read is forked and the clock moved past it.
          const reading = yield* Effect.forkChild(cache.get("a"))
          yield* Effect.yieldNow
          yield* TestClock.adjust("250 millis")
          assert.deepStrictEqual(yield* Fiber.join(reading), Option.some("new"))
          assert.strictEqual((yield* cache.snapshot).l1Hits, 1)
        }).pipe(Effect.scoped))

      it.effect("a get that ran while an invalidate was in flight, the invalidate interrupted once the backend acted", () =>
        Effect.gen(function*() {
          const { backend, map } = controllable()
          // The backend drops the key 100 ms after the call, and answers 100 ms after that.
          const invalidate = (key: string) =>
            Effect.sleep("100 millis").pipe(
              Effect.andThen(Effect.sync(() => (map.delete(key) ? 1 : 0))),
              Effect.tap(() => Effect.sleep("100 millis"))
            )
          const cache = yield* ResilientCache.make({
            name: "sessions",
            backend: { ...backend, invalidate },
            l1: { maxEntries: 10, ttl: "1 hour" }
          })
          map.set("a", "old")
          const invalidating = yield* Effect.forkChild(cache.invalidate("a"))
          yield* Effect.yieldNow
          // Read before the backend dropped it: "old" goes into the L1.
          assert.deepStrictEqual(yield* cache.get("a"), Option.some("old"))
          yield* TestClock.adjust("150 millis")
          assert.isFalse(map.has("a"))
          yield* Fiber.interrupt(invalidating)
          assert.deepStrictEqual(yield* cache.get("a"), Option.none())
        }).pipe(Effect.scoped))
    })

    it.effect("a get interrupted at any point leaves no read of its key in flight", () =>
      Effect.gen(function*() {
        // The reads in flight are not public: the L1s that started one are caught to look at them.
        const l1s = new Set<internal.L1<unknown>>()
        const startRead = internal.L1.prototype.startRead
        internal.L1.prototype.startRead = function(this: internal.L1<unknown>, key: string) {
          l1s.add(this)
          return startRead.call(this, key)
        }
        yield* Effect.addFinalizer(() => Effect.sync(() => void (internal.L1.prototype.startRead = startRead)))
        const { backend, state } = controllable()
        const cache = yield* ResilientCache.make({ name: "sessions", backend, l1: { maxEntries: 10, ttl: "1 hour" } })
        // A backend that answers at once, and one still answering when the interruption comes.
        for (const mode of ["up", { slow: 10 }] as const) {
          state.mode = mode
          for (let turns = 0; turns < 40; turns++) {
            yield* interruptedAfter(cache.get("a"), turns)
            yield* yieldTimes(10)
            for (const l1 of l1s) assert.strictEqual(l1.reads.size, 0, `${mode}: interrupted after ${turns} turns`)
          }
        }
        assert.strictEqual(l1s.size, 1)
      }).pipe(Effect.scoped))
  })

  it.effect("getOrCompute computes and stores on a miss, and computes when the cache is down", () =>
    Effect.gen(function*() {
      const { backend, map, state } = controllable()
      const cache = yield* ResilientCache.make({ name: "answers", backend, onFailure: () => Effect.void })
      let computed = 0
      const compute = Effect.sync(() => `answer-${++computed}`)
      assert.strictEqual(yield* cache.getOrCompute("q", compute), "answer-1")
      assert.strictEqual(yield* cache.getOrCompute("q", compute), "answer-1")
      assert.strictEqual(map.get("q"), "answer-1")
      state.mode = "failing"
      assert.strictEqual(yield* cache.getOrCompute("q", compute), "answer-2")
      const error = yield* Effect.flip(cache.getOrCompute("r", Effect.fail("no answer")))
      assert.strictEqual(error, "no answer")
    }).pipe(Effect.scoped))

  it.effect("fromFallbackStore: a FallbackStore as the backend, with the cache's ttl", () =>
    Effect.gen(function*() {
      const store = yield* FallbackStore.makeMemory()
      const cache = yield* ResilientCache.make({
        name: "pages",
        backend: ResilientCache.fromFallbackStore(store),
        ttl: "10 seconds"
      })
      assert.isTrue(yield* cache.set("/", "home"))
      assert.deepStrictEqual(yield* cache.get("/"), Option.some("home"))
      yield* TestClock.adjust("10 seconds")
      assert.deepStrictEqual(yield* cache.get("/"), Option.none())
      yield* cache.set("/", "home")
      assert.strictEqual(yield* cache.invalidate("/"), 1)
      assert.strictEqual(yield* cache.invalidate("/"), 0)
    }).pipe(Effect.scoped))

  it.effect("an L1 whose ttl is longer than the cache's ttl serves no value past the cache's ttl", () =>
    Effect.gen(function*() {
      const store = yield* FallbackStore.makeMemory()
      const cache = yield* ResilientCache.make({
        name: "codes",
        backend: ResilientCache.fromFallbackStore(store),
        ttl: "10 seconds",
        l1: { maxEntries: 10, ttl: "5 minutes" }
      })
      yield* cache.set("written", "1")
      yield* store.set("read", "2", { ttl: "10 seconds" })
      assert.deepStrictEqual(yield* cache.get("read"), Option.some("2")) // fills the L1
      yield* TestClock.adjust("9 seconds")
      assert.deepStrictEqual(yield* cache.get("written"), Option.some("1"))
      yield* TestClock.adjust("1 second")
      assert.deepStrictEqual(yield* cache.get("written"), Option.none())
      assert.deepStrictEqual(yield* cache.get("read"), Option.none())
      assert.strictEqual((yield* cache.snapshot).l1Entries, 0)
    }).pipe(Effect.scoped))

  it.effect("bad options fail with PolicyConfigError naming each field", () =>
    Effect.gen(function*() {
      const { backend } = controllable()
      const error = yield* Effect.flip(ResilientCache.make({
        name: "",
        backend,
        timeout: "0 millis",
        ttl: -1,
        l1: { maxEntries: 0, ttl: "soon" as Duration.Input },
        retry: { times: 3 } as unknown as Retry.Retry<unknown, unknown>
      }))
      assert.strictEqual(error._tag, "PolicyConfigError")
      assert.deepStrictEqual(error.issues.map((issue) => issue.path).sort(), [
        "l1.maxEntries",
        "l1.ttl",
        "name",
        "retry",
        "timeout",
        "ttl"
      ])
      assert.match(error.message, /retry: Expected a retry policy made by Retry\.make/)
      const breaker = yield* Effect.flip(
        ResilientCache.make({ name: "c", backend, circuitBreaker: { trip: CircuitBreaker.consecutive(0) } })
      )
      assert.strictEqual(breaker._tag, "PolicyConfigError")
    }).pipe(Effect.scoped))

  it.effect("exports its figures as metrics", () =>
    Effect.gen(function*() {
      const { backend, map, state } = controllable()
      const cache = yield* ResilientCache.make({ name: "metered", backend, onFailure: () => Effect.void })
      map.set("a", "1")
      yield* cache.get("a")
      yield* cache.get("b")
      state.mode = "failing"
      yield* cache.set("a", "2")
      const all = yield* Metric.snapshot
      const value = (id: string, attributes: Record<string, string>) => {
        const found = all.find((m) =>
          m.id === id && m.attributes?.["policy"] === "metered" &&
          Object.entries(attributes).every(([k, v]) => m.attributes?.[k] === v)
        )
        return (found?.state as { readonly count?: number } | undefined)?.count
      }
      assert.strictEqual(value("resilient_cache_reads_total", { outcome: "Hit" }), 1)
      assert.strictEqual(value("resilient_cache_reads_total", { outcome: "Miss" }), 1)
      assert.strictEqual(value("resilient_cache_errors_total", { operation: "set" }), 1)
    }).pipe(Effect.scoped))
})

describe("ResilientCache: a backend's own rejections", () => {
  it.effect("a backend that fails with its own breaker's rejection has failed: an error, reported, not a skip", () =>
    Effect.gen(function*() {
      // The Redis client shares a breaker of its own with the rest of the service; it is open.
      const redisBreaker = yield* CircuitBreaker.make({ name: "redis" })
      yield* redisBreaker.forceOpen()
      const backend: ResilientCache.Backend<string, unknown> = {
        get: () => redisBreaker.protect(Effect.succeed(Option.none<string>())),
        set: () => redisBreaker.protect(Effect.void),
        invalidate: () => redisBreaker.protect(Effect.succeed(0))
      }
      const failures: Array<ResilientCache.Failure> = []
      const cache = yield* ResilientCache.make({
        name: "sessions",
        backend,
        onFailure: (failure) => Effect.sync(() => void failures.push(failure))
      })
      const found = yield* cache.get("session:alice")
      assert.isTrue(Option.isNone(found))
      const snapshot = yield* cache.snapshot
      // The cache's own breaker is closed: it skipped nothing. The backend call failed.
      assert.strictEqual(snapshot.breaker.state, "Closed")
      assert.deepStrictEqual(
        { skipped: snapshot.skipped, getErrors: snapshot.errors.get, reported: failures.length },
        { skipped: 0, getErrors: 1, reported: 1 }
      )
    }).pipe(Effect.scoped))

  it.effect("a backend behind a full bulkhead (its connection pool) has failed: an error, reported, not a skip", () =>
    Effect.gen(function*() {
      const pool = yield* Bulkhead.make({ name: "redis-pool", maxConcurrent: 1 })
      const backend: ResilientCache.Backend<string, unknown> = {
        get: () => pool.protect(Effect.succeed(Option.none<string>())),
        set: () => pool.protect(Effect.void),
        invalidate: () => pool.protect(Effect.succeed(0))
      }
      const failures: Array<ResilientCache.Failure> = []
      const cache = yield* ResilientCache.make({
        name: "sessions",
        backend,
        onFailure: (failure) => Effect.sync(() => void failures.push(failure))
      })
      // Another user of the pool holds its only connection.
      yield* pool.protect(Effect.never).pipe(Effect.forkScoped({ startImmediately: true }))
      const stored = yield* cache.set("session:alice", "{}")
      assert.isFalse(stored)
      const snapshot = yield* cache.snapshot
      assert.deepStrictEqual(
        { skipped: snapshot.skipped, setErrors: snapshot.errors.set, reported: failures.map((f) => f.operation) },
        { skipped: 0, setErrors: 1, reported: ["set"] }
      )
    }).pipe(Effect.scoped))
})
