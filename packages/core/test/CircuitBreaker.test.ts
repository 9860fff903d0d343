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
  Logger,
  Metric,
  Random,
  Schedule,
  Schema,
  Stream
} from "effect"
import * as Predicate from "effect/Predicate"
import { TestClock } from "effect/testing"
import * as CircuitBreaker from "../src/CircuitBreaker.ts"
import { steppable } from "./clocks.ts"
import { interruptedAfter, protectedCalls } from "./interruption.ts"

class Boom extends Data.TaggedError("Boom")<{ readonly status?: number }> {}

const fail = (status = 500) => Effect.fail(new Boom({ status }))

/** A function of the user's with a bug, and what it throws. */
const bug = new Error("bug")
const throwing = (): never => {
  throw bug
}

/** Runs `n` failing calls through the default circuit. */
const failTimes = (breaker: CircuitBreaker.CircuitBreaker<never>, n: number) =>
  Effect.repeat(Effect.ignore(breaker.protect(fail())), { times: n - 1 })

/** A breaker (`consecutive(1)`, open for one second) tripped and past its open time: the next call probes. */
const halfOpenBreaker = (options: Pick<CircuitBreaker.Options, "name" | "halfOpen">) =>
  Effect.gen(function*() {
    const breaker = yield* CircuitBreaker.make({
      ...options,
      trip: CircuitBreaker.consecutive(1),
      openDuration: "1 second"
    })
    yield* failTimes(breaker, 1)
    yield* TestClock.adjust("1 second")
    return breaker
  })

/** The reason a call was rejected for: `CircuitOpen`, `CircuitHalfOpen` or `CircuitForcedOpen`. */
const rejection = <A, E>(effect: Effect.Effect<A, E | CircuitBreaker.Rejection>) =>
  Effect.map(
    Effect.flip(effect),
    (error) => error instanceof CircuitBreaker.CircuitBreakerError ? error.reason._tag : "not a rejection"
  )

/** What a call's cause holds: the defects, and the tags of the rest. */
const reasons = (exit: Exit.Exit<unknown, unknown>) =>
  Exit.isSuccess(exit)
    ? []
    : exit.cause.reasons.map((reason) => Cause.isDieReason(reason) ? reason.defect : reason._tag)

/** Collects every transition published while `body` runs. */
const recording = <A, E, R>(
  breaker: CircuitBreaker.CircuitBreaker,
  body: Effect.Effect<A, E, R>
) =>
  Effect.gen(function*() {
    const seen: Array<CircuitBreaker.Transition> = []
    yield* breaker.transitions.pipe(
      Stream.runForEach((t) => Effect.sync(() => seen.push(t))),
      Effect.forkScoped({ startImmediately: true })
    )
    const result = yield* body
    yield* Effect.yieldNow
    return { result, seen }
  })

const path = (transitions: ReadonlyArray<CircuitBreaker.Transition>) => transitions.map((t) => `${t.from}->${t.to}`)

/** A breaker that opens when half its calls are slower than a second. */
const slowBreaker = CircuitBreaker.make({
  name: "db",
  trip: CircuitBreaker.slowCallRate({
    threshold: 0.5,
    slowerThan: "1 second",
    window: CircuitBreaker.lastCalls(10)
  })
})

/** The latency histogram of the breaker named "db". */
const latency = Metric.snapshot.pipe(
  Effect.map((all) =>
    all.find((m) => m.id === "circuit_breaker_call_duration_seconds" && m.attributes?.["breaker"] === "db")
      ?.state as Metric.HistogramState
  )
)

/** A call through `breaker` that runs `ran`, during which the wall clock steps by `by`; the stepped clock. */
const acrossStep = (breaker: CircuitBreaker.CircuitBreaker, ran: Duration.Input, by: number) =>
  Effect.gen(function*() {
    const { clock, step } = yield* steppable
    const gate = yield* Deferred.make<void>()
    const call = yield* Effect.forkChild(
      breaker.protect(Deferred.await(gate)).pipe(Effect.provideService(Clock.Clock, clock)),
      { startImmediately: true }
    )
    yield* TestClock.adjust(ran)
    step(by)
    yield* Deferred.succeed(gate, undefined)
    yield* Fiber.join(call)
    return clock
  })

const invalid = (options: CircuitBreaker.Options) =>
  CircuitBreaker.make(options).pipe(
    Effect.flip,
    Effect.map((error) => error.issues.map((issue) => `${issue.path}: ${issue.message}`))
  )

const metricValue = (id: string, attributes: Record<string, string> = {}) =>
  Metric.snapshot.pipe(Effect.map((all) => {
    const found = all.find((m) =>
      m.id === id && m.attributes?.["breaker"] === "db" &&
      Object.entries(attributes).every(([k, v]) => m.attributes?.[k] === v)
    )
    const state = found?.state as { readonly count?: number; readonly value?: number } | undefined
    return state?.count ?? state?.value
  }))

describe("CircuitBreaker", () => {
  describe("consecutive policy", () => {
    it.effect("opens after n failures in a row, rejects with retryAfter, probes and closes", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({
          name: "db",
          trip: CircuitBreaker.consecutive(3),
          openDuration: "30 seconds"
        })
        yield* failTimes(breaker, 2)
        assert.strictEqual(yield* breaker.state, "Closed")
        yield* Effect.ignore(breaker.protect(fail()))
        assert.strictEqual(yield* breaker.state, "Open")

        yield* TestClock.adjust("10 seconds")
        const error = yield* Effect.flip(breaker.protect(Effect.succeed(1)))
        assert.strictEqual(error._tag, "CircuitBreakerError")
        assert.strictEqual(error.reason._tag, "CircuitOpen")
        assert.strictEqual(error.breaker, "db")
        assert.strictEqual(error.key, "default")
        assert.strictEqual(Duration.toMillis(error.retryAfter), 20_000)
        assert.strictEqual(error.message, `Circuit breaker "db" (key "default") is open; retry after 20s`)

        yield* TestClock.adjust("20 seconds")
        assert.strictEqual(yield* breaker.protect(Effect.succeed(1)), 1)
        assert.strictEqual(yield* breaker.state, "Closed")
      }))

    it.effect("a success resets the streak", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({ name: "db", trip: CircuitBreaker.consecutive(3) })
        yield* failTimes(breaker, 2)
        yield* breaker.protect(Effect.void)
        yield* failTimes(breaker, 2)
        const snapshot = yield* breaker.snapshot
        assert.strictEqual(snapshot.state, "Closed")
        assert.strictEqual(snapshot.consecutiveFailures, 2)
        assert.strictEqual(snapshot.failureCount, 4)
        assert.strictEqual(snapshot.successCount, 1)
      }))

    it.effect("admits the first probe at exactly openedAt + openDuration, not a tick before", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({
          name: "db",
          trip: CircuitBreaker.consecutive(1),
          openDuration: "5 seconds"
        })
        yield* failTimes(breaker, 1)
        yield* TestClock.adjust(Duration.millis(4_999))
        assert.strictEqual(yield* rejection(breaker.protect(Effect.void)), "CircuitOpen")
        yield* TestClock.adjust(Duration.millis(1))
        yield* breaker.protect(Effect.void)
        assert.strictEqual(yield* breaker.state, "Closed")
      }))

    it.effect("a snapshot moves an elapsed Open to HalfOpen, with no timer", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({
          name: "db",
          trip: CircuitBreaker.consecutive(1),
          openDuration: "5 seconds"
        })
        const { seen } = yield* recording(
          breaker,
          Effect.gen(function*() {
            yield* failTimes(breaker, 1)
            yield* TestClock.adjust("1 minute")
            // Nothing happened on its own while time passed...
            assert.strictEqual((yield* breaker.snapshot).state, "HalfOpen")
          })
        )
        // ...the transition is computed when the snapshot looks, stamped with the time it looked.
        assert.deepStrictEqual(path(seen), ["Closed->Open", "Open->HalfOpen"])
        assert.strictEqual(seen[1].at, 60_000)
      }))
  })

  describe("rate policies", () => {
    it.effect("failure rate over the last n calls trips at or above the threshold, after the minimum", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({
          name: "api",
          trip: CircuitBreaker.failureRate({ threshold: 0.5, minimumCalls: 4, window: CircuitBreaker.lastCalls(4) })
        })
        // 3 failures of 3 calls: 100%, but below the minimum number of calls.
        yield* failTimes(breaker, 3)
        assert.strictEqual(yield* breaker.state, "Closed")
        // The 4th call is a success: 3 of 4 = 75% >= 50%.
        yield* breaker.protect(Effect.void)
        assert.strictEqual(yield* breaker.state, "Open")
      }))

    it.effect("the count window slides: old outcomes leave it", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({
          name: "api",
          trip: CircuitBreaker.failureRate({ threshold: 0.5, minimumCalls: 4, window: CircuitBreaker.lastCalls(4) })
        })
        yield* failTimes(breaker, 1)
        for (let i = 0; i < 4; i++) yield* breaker.protect(Effect.void)
        // The failure has slid out: 1 failure of the last 4 = 25%.
        yield* failTimes(breaker, 1)
        assert.strictEqual(yield* breaker.state, "Closed")
        assert.strictEqual((yield* breaker.snapshot).failureRate, 0.25)
        // Exactly 50% trips: at or above.
        yield* failTimes(breaker, 1)
        assert.strictEqual(yield* breaker.state, "Open")
      }))

    it.effect("a rate exactly at a threshold that is not exact in binary trips all the same", () =>
      Effect.gen(function*() {
        // 0.55 * 100 is 55.00000000000001: compared that way, 55 failures of 100 would stay under 0.55.
        for (const [failures, calls, threshold] of [[55, 100, 0.55], [28, 100, 0.28], [7, 50, 0.14]] as const) {
          const breaker = yield* CircuitBreaker.make({
            name: `api-${threshold}`,
            trip: CircuitBreaker.failureRate({
              threshold,
              minimumCalls: calls,
              window: CircuitBreaker.lastCalls(calls)
            })
          })
          for (let i = 0; i < calls - failures; i++) yield* breaker.protect(Effect.void)
          yield* failTimes(breaker, failures - 1)
          assert.strictEqual(yield* breaker.state, "Closed")
          yield* failTimes(breaker, 1)
          assert.strictEqual(yield* breaker.state, "Open")
        }
      }))

    it.effect("time window: buckets are aligned, and calls older than the window stop counting", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({
          name: "api",
          trip: CircuitBreaker.failureRate({
            threshold: 0.5,
            minimumCalls: 4,
            window: CircuitBreaker.rolling("10 seconds", { buckets: 10 })
          })
        })
        // At t = 0.9s: bucket [0s, 1s). Three failures, below the minimum.
        yield* TestClock.adjust(Duration.millis(900))
        yield* failTimes(breaker, 3)
        // At t = 10s the window is [1s, 11s): the bucket of t = 0.9s has left, though the calls are only 9.1s old.
        yield* TestClock.adjust(Duration.millis(9_100))
        yield* breaker.protect(Effect.void)
        const snapshot = yield* breaker.snapshot
        assert.strictEqual(snapshot.state, "Closed")
        assert.strictEqual(snapshot.failureRate, 0)
        // Three failures now make 3 of 4 = 75%.
        yield* failTimes(breaker, 3)
        assert.strictEqual(yield* breaker.state, "Open")
      }))

    it.effect("slow-call rate: a call is slow only when strictly slower than the threshold", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({
          name: "llm",
          trip: CircuitBreaker.slowCallRate({
            threshold: 1,
            slowerThan: "2 seconds",
            minimumCalls: 2,
            window: CircuitBreaker.lastCalls(2)
          })
        })
        const call = (d: Duration.Input) =>
          Effect.gen(function*() {
            const fiber = yield* Effect.forkChild(breaker.protect(Effect.sleep(d)))
            yield* TestClock.adjust(d)
            yield* Fiber.join(fiber)
          })
        yield* call("2 seconds")
        yield* call("2 seconds")
        assert.strictEqual(yield* breaker.state, "Closed")
        assert.strictEqual((yield* breaker.snapshot).slowCallCount, 0)
        yield* call(Duration.millis(2_001))
        yield* call(Duration.millis(2_001))
        const snapshot = yield* breaker.snapshot
        assert.strictEqual(snapshot.state, "Open")
        assert.strictEqual(snapshot.slowCallCount, 2)
        assert.strictEqual(snapshot.successCount, 4)
      }))

    it.effect("a wall clock stepped forward makes no call in flight slow, nor opens a slow-call-rate breaker", () =>
      Effect.gen(function*() {
        const breaker = yield* slowBreaker
        yield* acrossStep(breaker, "10 millis", 3_600_000)
        const snapshot = yield* breaker.snapshot
        assert.strictEqual(snapshot.state, "Closed")
        assert.strictEqual(snapshot.slowCallCount, 0)
        const histogram = yield* latency
        assert.deepStrictEqual([histogram.count, histogram.max], [1, 0.01])
      }).pipe(Effect.provideService(Metric.MetricRegistry, new Map())))

    it.effect("a wall clock stepped back gives no negative duration: a slow call stays slow, the histogram positive", () =>
      Effect.gen(function*() {
        const breaker = yield* slowBreaker
        const clock = yield* acrossStep(breaker, "2 seconds", -3_600_000)
        const snapshot = yield* breaker.snapshot.pipe(Effect.provideService(Clock.Clock, clock))
        assert.strictEqual(snapshot.slowCallCount, 1)
        assert.strictEqual(snapshot.state, "Open")
        const histogram = yield* latency
        assert.deepStrictEqual([histogram.count, histogram.min, histogram.sum], [1, 2, 2])
      }).pipe(Effect.provideService(Metric.MetricRegistry, new Map())))

    it.effect("without a slow-call policy, a wall clock stepped back puts no negative duration in the histogram", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({ name: "db" })
        yield* acrossStep(breaker, "2 seconds", -3_600_000)
        const histogram = yield* latency
        assert.deepStrictEqual([histogram.count, histogram.min, histogram.max, histogram.sum], [1, 0, 0, 0])
      }).pipe(Effect.provideService(Metric.MetricRegistry, new Map())))

    it.effect("combined policies trip when any holds, and the transition names which", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({
          name: "api",
          trip: [
            CircuitBreaker.consecutive(10),
            CircuitBreaker.failureRate({ threshold: 0.6, minimumCalls: 5, window: CircuitBreaker.lastCalls(5) })
          ]
        })
        const { seen } = yield* recording(
          breaker,
          Effect.gen(function*() {
            for (const ok of [false, true, false, true, false]) {
              yield* Effect.ignore(breaker.protect(ok ? Effect.void : fail()))
            }
          })
        )
        assert.deepStrictEqual(seen.map((t) => t.reason), [{
          _tag: "FailureRate",
          rate: 0.6,
          threshold: 0.6,
          calls: 5
        }])
        assert.strictEqual(CircuitBreaker.describeReason(seen[0].reason), "failure rate 60% >= 60% over 5 calls")
      }))
  })

  describe("open duration", () => {
    it.effect("a schedule makes each consecutive opening longer; a probe failure reopens with the next", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({
          name: "db",
          trip: CircuitBreaker.consecutive(1),
          openDuration: Schedule.exponential("1 second")
        })
        yield* failTimes(breaker, 1)
        assert.strictEqual((yield* breaker.snapshot).retryAfterMillis, 1_000)
        yield* TestClock.adjust("1 second")
        yield* failTimes(breaker, 1) // the probe fails
        assert.strictEqual((yield* breaker.snapshot).retryAfterMillis, 2_000)
        yield* TestClock.adjust("2 seconds")
        yield* failTimes(breaker, 1)
        assert.strictEqual((yield* breaker.snapshot).retryAfterMillis, 4_000)
      }))

    it.effect("the backoff restarts once the circuit stays closed as long as it was last open", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({
          name: "db",
          trip: CircuitBreaker.consecutive(1),
          openDuration: Schedule.exponential("1 second")
        })
        yield* failTimes(breaker, 1)
        yield* TestClock.adjust("1 second")
        yield* failTimes(breaker, 1)
        yield* TestClock.adjust("2 seconds")
        yield* breaker.protect(Effect.void) // closes after a 2s opening
        // Flapping: a trip 1s after closing keeps the backoff going.
        yield* TestClock.adjust("1 second")
        yield* failTimes(breaker, 1)
        assert.strictEqual((yield* breaker.snapshot).retryAfterMillis, 4_000)
        yield* TestClock.adjust("4 seconds")
        yield* breaker.protect(Effect.void)
        // Closed for 4s, as long as the last opening: the next trip starts over.
        yield* TestClock.adjust("4 seconds")
        yield* failTimes(breaker, 1)
        assert.strictEqual((yield* breaker.snapshot).retryAfterMillis, 1_000)
      }))

    it.effect("a schedule that throws keeps the last delay (the default at the first), and says so in the log", () =>
      Effect.gen(function*() {
        const logged: Array<string> = []
        const logger = Logger.make(({ logLevel, message }) => {
          logged.push(`${logLevel} ${(Array.isArray(message) ? message : [message]).join(" ")}`)
        })
        // Grows for two openings, then meets a bug in the user's code: open as long as the last good delay, where it
        // used to be taken for a schedule that ended, silently.
        const breaker = yield* CircuitBreaker.make({
          name: "db",
          trip: CircuitBreaker.consecutive(1),
          openDuration: Schedule.exponential("1 second").pipe(
            Schedule.modifyDelay((step) => step.attempt >= 3 ? throwing() : Effect.succeed(step.duration))
          )
        })
        yield* failTimes(breaker, 1)
        yield* TestClock.adjust("1 second")
        yield* failTimes(breaker, 1)
        assert.strictEqual((yield* breaker.snapshot).retryAfterMillis, 2_000)
        yield* TestClock.adjust("2 seconds")
        yield* failTimes(breaker, 1).pipe(Effect.provide(Logger.layer([logger])))
        const snapshot = yield* breaker.snapshot
        assert.deepStrictEqual([snapshot.state, snapshot.retryAfterMillis], ["Open", 2_000])
        assert.deepStrictEqual(logged, [
          `Error Circuit breaker "db": its openDuration schedule failed at opening 3; open for 2000 ms`
        ])
        // At the first opening there is no last delay: the default open duration, 30 seconds.
        const broken = yield* CircuitBreaker.make({
          name: "broken",
          trip: CircuitBreaker.consecutive(1),
          openDuration: Schedule.exponential("1 second").pipe(Schedule.modifyDelay(throwing))
        })
        yield* failTimes(broken, 1).pipe(Effect.provide(Logger.layer([logger])))
        assert.strictEqual((yield* broken.snapshot).retryAfterMillis, 30_000)
      }))

    it.effect("jittered schedules are reproducible under a seeded Random", () =>
      Effect.gen(function*() {
        const openFor = Effect.gen(function*() {
          const breaker = yield* CircuitBreaker.make({
            name: "db",
            trip: CircuitBreaker.consecutive(1),
            openDuration: Schedule.exponential("1 second").pipe(Schedule.jittered)
          })
          yield* failTimes(breaker, 1)
          return (yield* breaker.snapshot).retryAfterMillis!
        }).pipe(Effect.scoped, Random.withSeed(42))
        const first = yield* openFor
        assert.isAtLeast(first, 800)
        assert.isAtMost(first, 1_200)
        assert.strictEqual(yield* openFor, first)
      }))

    // `TestClock.setTime` moves the wall clock and not the monotonic one, as an NTP correction does to `Date.now()`.
    it.effect("a wall clock stepped back keeps the circuit open no longer than its open time", () =>
      Effect.gen(function*() {
        yield* TestClock.setTime(3_600_000)
        const breaker = yield* CircuitBreaker.make({
          name: "db",
          trip: CircuitBreaker.consecutive(1),
          openDuration: "30 seconds"
        })
        yield* failTimes(breaker, 1)
        yield* TestClock.adjust("10 seconds")
        yield* TestClock.setTime(0)
        // The monotonic clock says 20 of the 30 seconds are left, whatever the wall clock says.
        assert.strictEqual((yield* breaker.snapshot).retryAfterMillis, 20_000)
        const rejected = yield* Effect.flip(breaker.protect(Effect.succeed("early")))
        assert.strictEqual(Duration.toMillis(rejected.retryAfter), 20_000)
        yield* TestClock.adjust("19999 millis")
        assert.strictEqual(yield* breaker.state, "Open")
        yield* TestClock.adjust("1 millis")
        assert.strictEqual(yield* breaker.protect(Effect.succeed("probe")), "probe")
        assert.strictEqual(yield* breaker.state, "Closed")
      }))
    it.effect("a wall clock stepped back shows no negative time in state", () =>
      Effect.gen(function*() {
        yield* TestClock.setTime(3_600_000)
        const breaker = yield* CircuitBreaker.make({ name: "db", trip: CircuitBreaker.consecutive(1) })
        yield* failTimes(breaker, 1)
        yield* TestClock.setTime(0)
        const snapshot = yield* breaker.snapshot
        assert.deepStrictEqual([snapshot.state, snapshot.timeInStateMillis], ["Open", 0])
      }))
  })

  describe("half-open", () => {
    it.effect("1000 concurrent calls admit exactly the permitted probes; the rest get CircuitHalfOpen", () =>
      Effect.gen(function*() {
        const breaker = yield* halfOpenBreaker({ name: "db", halfOpen: { maxProbes: 3, successThreshold: 3 } })
        const gate = yield* Deferred.make<void>()
        const fibers = yield* Effect.forEach(
          Array.from({ length: 1000 }),
          () => Effect.forkChild(Effect.exit(breaker.protect(Deferred.await(gate))), { startImmediately: true })
        )
        assert.strictEqual((yield* breaker.snapshot).halfOpen?.probesInFlight, 3)
        yield* Deferred.succeed(gate, undefined)
        const exits = yield* Fiber.joinAll(fibers)
        const admitted = exits.filter(Exit.isSuccess).length
        const rejected = exits.filter((exit) =>
          Exit.isFailure(exit) && exit.cause.reasons.some((r) =>
            r._tag === "Fail" && r.error._tag === "CircuitBreakerError" && r.error.reason._tag === "CircuitHalfOpen"
          )
        ).length
        assert.strictEqual(admitted, 3)
        assert.strictEqual(rejected, 997)
        assert.strictEqual(yield* breaker.state, "Closed")
      }))

    it.effect("one protected effect run twice at once counts as two calls", () =>
      Effect.gen(function*() {
        const breaker = yield* halfOpenBreaker({ name: "db", halfOpen: { maxProbes: 2, successThreshold: 2 } })
        const probe = breaker.protect(Effect.sleep("10 millis"))
        const both = yield* Effect.forkChild(Effect.all([probe, probe], { concurrency: 2 }))
        yield* TestClock.adjust("10 millis")
        yield* Fiber.join(both)
        const snapshot = yield* breaker.snapshot
        assert.strictEqual(snapshot.state, "Closed")
        assert.strictEqual(snapshot.successCount, 2)
      }))

    it.effect("a protected effect nested in itself counts each run once", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({ name: "poll", trip: CircuitBreaker.consecutive(10) })
        let depth = 0
        const poll: Effect.Effect<number, never> = breaker.protect(
          Effect.suspend(() => ++depth < 3 ? poll : Effect.succeed(depth))
        ) as Effect.Effect<number, never>
        assert.strictEqual(yield* poll, 3)
        assert.strictEqual((yield* breaker.snapshot).successCount, 3)
      }))

    it.effect("needs successThreshold probe successes to close; any probe failure reopens", () =>
      Effect.gen(function*() {
        const breaker = yield* halfOpenBreaker({ name: "db", halfOpen: { successThreshold: 3 } })
        yield* breaker.protect(Effect.void)
        yield* breaker.protect(Effect.void)
        assert.strictEqual((yield* breaker.snapshot).halfOpen?.successes, 2)
        yield* failTimes(breaker, 1)
        assert.strictEqual(yield* breaker.state, "Open")
      }))

    it.effect("a probe that hangs past maxProbeTime frees its slot, and its late outcome is dropped", () =>
      Effect.gen(function*() {
        const breaker = yield* halfOpenBreaker({ name: "db", halfOpen: { maxProbeTime: "10 seconds" } })
        const hung = yield* Deferred.make<void>()
        const slow = yield* Effect.forkChild(breaker.protect(Effect.andThen(Deferred.await(hung), fail())))
        yield* Effect.yieldNow
        assert.strictEqual(yield* rejection(breaker.protect(Effect.void)), "CircuitHalfOpen")
        yield* TestClock.adjust("10 seconds")
        // The slot is free again: this probe succeeds and closes the circuit.
        yield* breaker.protect(Effect.void)
        assert.strictEqual(yield* breaker.state, "Closed")
        // The hung probe fails at last; its outcome belongs to a state that has gone.
        yield* Deferred.succeed(hung, undefined)
        yield* Effect.ignore(Fiber.join(slow))
        const snapshot = yield* breaker.snapshot
        assert.strictEqual(snapshot.state, "Closed")
        assert.strictEqual(snapshot.failureCount, 1)
      }))

    it.effect("an interrupted probe frees its slot and counts as nothing", () =>
      Effect.gen(function*() {
        const breaker = yield* halfOpenBreaker({ name: "db" })
        const probe = yield* Effect.forkChild(breaker.protect(Effect.never))
        yield* Effect.yieldNow
        yield* Fiber.interrupt(probe)
        const snapshot = yield* breaker.snapshot
        assert.strictEqual(snapshot.state, "HalfOpen")
        assert.strictEqual(snapshot.halfOpen?.probesInFlight, 0)
        assert.strictEqual(snapshot.ignoredCount, 1)
        yield* breaker.protect(Effect.void)
        assert.strictEqual(yield* breaker.state, "Closed")
      }))

    it.effect("a probe interrupted at any point gives its slot back", () =>
      Effect.gen(function*() {
        for (const [name, call] of Object.entries(protectedCalls)) {
          for (let turns = 0; turns < 30; turns++) {
            // Two probes on a key, and a schedule for the open time: a failed probe settles through an effect.
            const breaker = yield* CircuitBreaker.make({
              name: "db",
              openDuration: Schedule.spaced("1 second"),
              halfOpen: { maxProbes: 2, successThreshold: 2 }
            })
            yield* CircuitBreaker.setState(breaker, "Open", { key: "k", openFor: "1 second" })
            yield* TestClock.adjust("1 second")
            yield* interruptedAfter(breaker.protectKey(call, "k"), turns)
            const label = `${name}, interrupted after ${turns} turns`
            const snapshot = yield* breaker.snapshotKey("k")
            assert.strictEqual(snapshot.halfOpen?.probesInFlight ?? 0, 0, label)
            if (snapshot.circuit === "HalfOpen") {
              const both = Effect.all([
                breaker.protectKey(Effect.succeed(2), "k"),
                breaker.protectKey(Effect.succeed(3), "k")
              ], {
                concurrency: 2
              })
              assert.deepStrictEqual(yield* both, [2, 3], `${label}: two probes are not admitted`)
            }
          }
        }
      }).pipe(Effect.scoped))

    it.effect("gradual recovery admits a deterministic, rising share of calls", () =>
      Effect.gen(function*() {
        const breaker = yield* halfOpenBreaker({
          name: "cache",
          halfOpen: { recoveryFactor: 0.25, successThreshold: 2 }
        })
        const pattern: Array<string> = []
        for (let i = 0; i < 8; i++) {
          const exit = yield* Effect.exit(breaker.protect(Effect.void))
          pattern.push(Exit.isSuccess(exit) ? "run" : "reject")
        }
        // Credit starts at 1 - 0.25: the first call runs. The share is then 0.625 (1 of 2 successes):
        // credit 0.625 (reject), 1.25 (run, 0.25 left); the second success closes the circuit.
        assert.deepStrictEqual(pattern, ["run", "reject", "run", "run", "run", "run", "run", "run"])
        assert.strictEqual(yield* breaker.state, "Closed")
      }))

    it.effect("gradual recovery at a share not exact in binary: one call in 10 at 0.1", () =>
      Effect.gen(function*() {
        const breaker = yield* halfOpenBreaker({
          name: "cache",
          halfOpen: { recoveryFactor: 0.1, successThreshold: 5 }
        })
        // The first call runs and stays in flight, so the share stays 0.1 (no success yet).
        yield* Effect.forkChild(breaker.protect(Effect.never), { startImmediately: true })
        const pattern: Array<string> = []
        for (let i = 0; i < 10; i++) {
          const exit = yield* Effect.exit(breaker.protect(Effect.void))
          pattern.push(Exit.isSuccess(exit) ? "run" : "reject")
        }
        // Ten shares of 0.1 add up to 0.9999999999999999: that is a credit of 1 all the same.
        assert.deepStrictEqual(pattern, [...Array.from({ length: 9 }, () => "reject"), "run"])
      }))

    it.effect("gradual recovery: a credit admitted within rounding of 1 leaves no debt for the next call", () =>
      Effect.gen(function*() {
        // Ten shares add up to 1 - 6e-10, within rounding of 1: every tenth call runs, not every tenth then eleventh.
        const breaker = yield* halfOpenBreaker({
          name: "cache",
          halfOpen: { recoveryFactor: 0.09999999994, successThreshold: 5 }
        })
        yield* Effect.forkChild(breaker.protect(Effect.never), { startImmediately: true })
        const pattern: Array<string> = []
        for (let i = 0; i < 20; i++) {
          // Every admitted call stays in flight, so the share stays the same (no success yet).
          const before = (yield* breaker.snapshot).rejectedCount
          yield* Effect.forkChild(Effect.ignore(breaker.protect(Effect.never)), { startImmediately: true })
          pattern.push((yield* breaker.snapshot).rejectedCount > before ? "reject" : "run")
        }
        const tenth = [...Array.from({ length: 9 }, () => "reject"), "run"]
        assert.deepStrictEqual(pattern, [...tenth, ...tenth])
      }))

    it.effect("gradual recovery: a failure among the admitted calls reopens", () =>
      Effect.gen(function*() {
        const breaker = yield* halfOpenBreaker({
          name: "cache",
          halfOpen: { recoveryFactor: 0.1, successThreshold: 10 }
        })
        yield* breaker.protect(Effect.void)
        // With 1 success of 10 the share is 0.19: the next 5 calls are rejected, the 6th runs.
        for (let i = 0; i < 5; i++) {
          assert.strictEqual(yield* rejection(breaker.protect(Effect.void)), "CircuitHalfOpen")
        }
        yield* Effect.ignore(breaker.protect(fail()))
        assert.strictEqual(yield* breaker.state, "Open")
      }))
  })

  describe("generations", () => {
    it.effect("a slow call admitted before a trip does not count against what follows", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({
          name: "db",
          trip: CircuitBreaker.consecutive(2),
          openDuration: "1 second"
        })
        const release = yield* Deferred.make<void>()
        const slow = yield* Effect.forkChild(breaker.protect(Effect.andThen(Deferred.await(release), fail())))
        yield* Effect.yieldNow
        yield* failTimes(breaker, 2)
        yield* TestClock.adjust("1 second")
        yield* breaker.protect(Effect.void) // probe closes the circuit
        yield* failTimes(breaker, 1)
        // The slow call fails now: counted, it would make two in a row and trip the circuit.
        yield* Deferred.succeed(release, undefined)
        yield* Effect.ignore(Fiber.join(slow))
        const snapshot = yield* breaker.snapshot
        assert.strictEqual(snapshot.state, "Closed")
        assert.strictEqual(snapshot.consecutiveFailures, 1)
      }))

    it.effect("a manual control starts a new generation", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({ name: "db", trip: CircuitBreaker.consecutive(1) })
        const release = yield* Deferred.make<void>()
        const slow = yield* Effect.forkChild(breaker.protect(Effect.andThen(Deferred.await(release), fail())))
        yield* Effect.yieldNow
        yield* breaker.reset()
        yield* Deferred.succeed(release, undefined)
        yield* Effect.ignore(Fiber.join(slow))
        assert.strictEqual(yield* breaker.state, "Closed")
      }))
  })

  describe("classification", () => {
    it.effect("errors outside isFailure pass through untouched and count as neither", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({
          name: "api",
          trip: CircuitBreaker.consecutive(2),
          isFailure: (error) => !(error instanceof Boom && error.status === 404)
        })
        for (let i = 0; i < 5; i++) {
          const error = yield* Effect.flip(breaker.protect(fail(404)))
          assert.strictEqual(error._tag, "Boom")
        }
        const snapshot = yield* breaker.snapshot
        assert.strictEqual(snapshot.state, "Closed")
        assert.strictEqual(snapshot.ignoredCount, 5)
        assert.strictEqual(snapshot.totalCalls, 0)
        yield* failTimes(breaker, 2)
        assert.strictEqual(yield* breaker.state, "Open")
      }))

    it.effect("a nested breaker's rejections never count: they say nothing about the dependency", () =>
      Effect.gen(function*() {
        const outer = yield* CircuitBreaker.make({ name: "outer", trip: CircuitBreaker.consecutive(1) })
        const inner = yield* CircuitBreaker.make({ name: "inner" })
        yield* inner.forceOpen()
        for (let i = 0; i < 3; i++) {
          assert.strictEqual(yield* rejection(outer.protect(inner.protect(Effect.void))), "CircuitForcedOpen")
        }
        const snapshot = yield* outer.snapshot
        assert.strictEqual(snapshot.state, "Closed")
        assert.strictEqual(snapshot.ignoredCount, 3)
      }))

    it.effect("defects count by default; isDefectFailure narrows them", () =>
      Effect.gen(function*() {
        const counted = yield* CircuitBreaker.make({ name: "a", trip: CircuitBreaker.consecutive(1) })
        yield* Effect.exit(counted.protect(Effect.die("bug")))
        assert.strictEqual(yield* counted.state, "Open")
        const narrowed = yield* CircuitBreaker.make({
          name: "b",
          trip: CircuitBreaker.consecutive(1),
          isDefectFailure: () => false
        })
        yield* Effect.exit(narrowed.protect(Effect.die("bug")))
        assert.strictEqual(yield* narrowed.state, "Closed")
      }))

    it.effect("interruption never counts", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({ name: "db", trip: CircuitBreaker.consecutive(1) })
        yield* Effect.exit(breaker.protect(Effect.interrupt))
        const fiber = yield* Effect.forkChild(breaker.protect(Effect.never))
        yield* Effect.yieldNow
        yield* Fiber.interrupt(fiber)
        const snapshot = yield* breaker.snapshot
        assert.strictEqual(snapshot.state, "Closed")
        assert.strictEqual(snapshot.ignoredCount, 2)
      }))

    it.effect("recent failures keep the last 50, oldest first, with tag and message", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({ name: "db", trip: CircuitBreaker.consecutive(1_000) })
        for (let i = 0; i < 60; i++) {
          yield* TestClock.adjust("1 second")
          yield* Effect.ignore(breaker.protect(Effect.fail(new Error(`attempt ${i}`))))
        }
        const { lastFailureAt, recentFailures } = yield* breaker.snapshot
        assert.strictEqual(recentFailures.length, 50)
        assert.deepStrictEqual(recentFailures[0], { at: 11_000, tag: "Error", message: "attempt 10" })
        assert.strictEqual(recentFailures[49].message, "attempt 59")
        assert.strictEqual(lastFailureAt, 60_000)
      }))
  })

  describe("manual states", () => {
    it.effect("forceOpen rejects everything as forced; reset brings a fresh Closed", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({ name: "db" })
        yield* breaker.forceOpen()
        const error = yield* Effect.flip(breaker.protect(Effect.void))
        assert.strictEqual(error.reason._tag, "CircuitForcedOpen")
        assert.isFalse(Duration.isFinite(error.retryAfter))
        yield* TestClock.adjust("1 day")
        assert.strictEqual(yield* breaker.state, "ForcedOpen")
        yield* breaker.reset()
        yield* breaker.protect(Effect.void)
        assert.strictEqual(yield* breaker.state, "Closed")
      }))

    it.effect("Disabled admits everything, keeps counting and never trips", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({ name: "db", trip: CircuitBreaker.consecutive(1) })
        yield* breaker.disable()
        yield* failTimes(breaker, 10)
        const snapshot = yield* breaker.snapshot
        assert.strictEqual(snapshot.state, "Disabled")
        assert.strictEqual(snapshot.failureCount, 10)
        assert.strictEqual(snapshot.rejectedCount, 0)
      }))

    it.effect("MetricsOnly runs the machine and publishes its transitions, but never rejects", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({
          name: "db",
          trip: CircuitBreaker.consecutive(2),
          openDuration: "1 second"
        })
        const { seen } = yield* recording(
          breaker,
          Effect.gen(function*() {
            yield* breaker.metricsOnly()
            yield* failTimes(breaker, 2)
            // The live breaker would reject these; they run, uncounted.
            assert.strictEqual(yield* breaker.protect(Effect.succeed("ran")), "ran")
            yield* Effect.ignore(breaker.protect(fail()))
            const snapshot = yield* breaker.snapshot
            assert.strictEqual(snapshot.state, "MetricsOnly")
            assert.strictEqual(snapshot.circuit, "Open")
            assert.strictEqual(snapshot.rejectedCount, 2)
            assert.strictEqual(snapshot.failureCount, 2)
            assert.strictEqual(snapshot.successCount, 0)
            yield* TestClock.adjust("1 second")
            yield* breaker.protect(Effect.void)
          })
        )
        assert.deepStrictEqual(path(seen), [
          "Closed->MetricsOnly",
          "Closed->Open",
          "Open->HalfOpen",
          "HalfOpen->Closed"
        ])
        assert.deepStrictEqual(seen.map((t) => t.shadow), [false, true, true, true])
      }))

    it.effect("resetting a closed breaker publishes no transition", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({ name: "db" })
        const { seen } = yield* recording(breaker, Effect.andThen(breaker.reset(), breaker.reset()))
        assert.deepStrictEqual(seen, [])
        assert.strictEqual((yield* breaker.snapshot).stateChanges, 0)
      }))

    it.effect("setState puts a breaker or one key into any state, for testing fallbacks", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({ name: "search" })
        for (const state of CircuitBreaker.states) {
          yield* CircuitBreaker.setState(breaker, state)
          assert.strictEqual(yield* breaker.state, state)
        }
        yield* CircuitBreaker.setState(breaker, "Open", { key: "tenant-1", openFor: "5 seconds" })
        assert.strictEqual(yield* rejection(breaker.protectKey("tenant-1")(Effect.void)), "CircuitOpen")
        assert.strictEqual(yield* breaker.protectKey("tenant-2")(Effect.succeed(2)), 2)
        yield* TestClock.adjust("5 seconds")
        assert.strictEqual(yield* breaker.stateKey("tenant-1"), "HalfOpen")
      }))
  })

  describe("rejections", () => {
    it.effect("one error, CircuitBreakerError: catchTag handles every rejection, catchReason one kind", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({ name: "db", trip: CircuitBreaker.consecutive(1) })
        yield* Effect.ignore(breaker.protect(fail()))
        const call = breaker.protect(Effect.succeed("live"))
        const onOpen = call.pipe(
          Effect.catchReason("CircuitBreakerError", "CircuitOpen", (open) => Effect.succeed(`open ${open.key}`))
        )
        assert.strictEqual(yield* onOpen, "open default")
        yield* breaker.forceOpen()
        // Another kind passes through catchReason, and catchTag takes it.
        const forced = yield* Effect.flip(onOpen)
        assert.strictEqual(forced.reason._tag, "CircuitForcedOpen")
        const any = yield* call.pipe(Effect.catchTag("CircuitBreakerError", (e) => Effect.succeed(e.reason._tag)))
        assert.strictEqual(any, "CircuitForcedOpen")
      }))

    it.effect("retryAfter reads the open time left, zero when half-open, infinite when forced open", () =>
      Effect.gen(function*() {
        const breaker = yield* halfOpenBreaker({ name: "db" })
        const probe = yield* Effect.forkChild(breaker.protect(Effect.sleep("1 second")), { startImmediately: true })
        const half = yield* Effect.flip(breaker.protect(Effect.void))
        assert.strictEqual(half.reason._tag, "CircuitHalfOpen")
        assert.isTrue(Duration.isZero(half.retryAfter))
        assert.strictEqual(
          half.message,
          `Circuit breaker "db" (key "default") is half-open and not admitting more calls`
        )
        yield* TestClock.adjust("1 second")
        yield* Fiber.join(probe)
        yield* breaker.forceOpen("k")
        const forced = yield* Effect.flip(breaker.protectKey("k")(Effect.void))
        assert.deepStrictEqual([forced.breaker, forced.key, Duration.isFinite(forced.retryAfter)], ["db", "k", false])
        assert.strictEqual(forced.message, `Circuit breaker "db" (key "k") is forced open`)
      }))

    it.effect("a rejection crosses a wire: it encodes with its reason, and decodes with the same readings", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({ name: "db", trip: CircuitBreaker.consecutive(1) })
        yield* Effect.ignore(breaker.protect(fail()))
        yield* TestClock.adjust("10 seconds")
        const error = yield* Effect.flip(breaker.protect(Effect.void))
        const codec = Schema.toCodecJson(CircuitBreaker.CircuitBreakerError)
        const encoded = yield* Schema.encodeEffect(codec)(error)
        assert.deepStrictEqual(encoded, {
          _tag: "CircuitBreakerError",
          reason: { _tag: "CircuitOpen", breaker: "db", key: "default", retryAfter: 20_000 }
        })
        const decoded = yield* Schema.decodeUnknownEffect(codec)(encoded)
        assert.instanceOf(decoded, CircuitBreaker.CircuitBreakerError)
        assert.strictEqual(Duration.toMillis(decoded.retryAfter), 20_000)
        assert.strictEqual(decoded.message, error.message)
      }))

    it.effect("rejections under load share one cached error per key, generation and millisecond", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({ name: "db", trip: CircuitBreaker.consecutive(1) })
        yield* Effect.ignore(breaker.protect(fail()))
        const first = yield* Effect.flip(breaker.protect(Effect.void))
        const second = yield* Effect.flip(breaker.protect(Effect.void))
        assert.strictEqual(first, second)
        yield* TestClock.adjust("1 millis")
        const later = yield* Effect.flip(breaker.protect(Effect.void))
        assert.notStrictEqual(later, first) // retryAfter has moved on
        assert.strictEqual(Duration.toMillis(first.retryAfter) - Duration.toMillis(later.retryAfter), 1)
      }))
  })

  describe("result classification", () => {
    interface Response {
      readonly status: number
      readonly body: string
    }

    it.effect("isFailureResult counts a success value as a failure, and the caller still gets the value", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make<Response>({
          name: "http",
          trip: CircuitBreaker.consecutive(2),
          isFailureResult: (response) => response.status >= 500
        })
        const respond = (status: number) => breaker.protect(Effect.succeed({ status, body: `${status}` }))
        assert.deepStrictEqual(yield* respond(503), { status: 503, body: "503" })
        assert.strictEqual((yield* respond(200)).status, 200) // a success: the streak starts again
        yield* respond(503)
        assert.strictEqual(yield* breaker.state, "Closed")
        assert.strictEqual((yield* respond(502)).status, 502)
        assert.strictEqual(yield* breaker.state, "Open")
        const snapshot = yield* breaker.snapshot
        assert.deepStrictEqual([snapshot.failureCount, snapshot.successCount], [3, 1])
        assert.deepStrictEqual(snapshot.recentFailures.map((f) => f.tag), [
          "FailureResult",
          "FailureResult",
          "FailureResult"
        ])
        assert.strictEqual(yield* rejection(respond(200)), "CircuitOpen")
      }))

    it.effect("protect takes effects of the success type isFailureResult reads; any breaker fits where one is held", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make<Response>({
          name: "http",
          isFailureResult: (response) => response.status === 503
        })
        // @ts-expect-error a string is not a Response: isFailureResult could not read it
        yield* Effect.ignore(breaker.protect(Effect.succeed("text")))
        // A subtype is fine, and keeps its own type.
        const tagged = yield* breaker.protect(Effect.succeed({ status: 200, body: "", etag: "x" }))
        assert.strictEqual(tagged.etag, "x")
        // A breaker of any success type is a `CircuitBreaker<never>`, as registries, policies and health checks hold
        // them: everything but protecting a success works.
        const held: CircuitBreaker.CircuitBreaker<never> = breaker
        assert.strictEqual(yield* held.state, "Closed")
        // @ts-expect-error held as any breaker, it cannot say what its isFailureResult reads
        yield* Effect.ignore(held.protect(Effect.succeed("text")))
        // @ts-expect-error nor can a breaker for anything stand for it: it would hand its predicate a string
        const anything: CircuitBreaker.CircuitBreaker = breaker
        assert.strictEqual(anything.name, "http")
      }))

    it.effect("the breaker in context protects any effect, so layer's isFailureResult reads unknown and narrows", () =>
      Effect.gen(function*() {
        // @ts-expect-error the service would call a Response-only predicate with whatever a program protects
        CircuitBreaker.layer({ name: "http", isFailureResult: (r: { readonly status: number }) => r.status === 503 })
        const program = Effect.gen(function*() {
          const breaker = yield* CircuitBreaker.CircuitBreaker
          // Anything goes through the service; only 503 responses count as failures.
          yield* breaker.protect(Effect.succeed("text"))
          for (let i = 0; i < 3; i++) yield* breaker.protect(Effect.succeed({ status: 503, body: "" }))
          return yield* breaker.state
        })
        const state = yield* program.pipe(Effect.provide(CircuitBreaker.layer({
          name: "http",
          trip: CircuitBreaker.consecutive(3),
          isFailureResult: (value) => Predicate.hasProperty(value, "status") && value.status === 503
        })))
        assert.strictEqual(state, "Open")
      }))
  })

  describe("predicates that throw", () => {
    class Flaky extends Data.TaggedError("Flaky")<{}> {}
    it.effect("a probe that isFailureResult throws on settles as a defect: the caller gets it, the circuit opens again", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make<{ readonly status: number }>({
          name: "http",
          trip: CircuitBreaker.consecutive(1),
          openDuration: "1 second",
          isFailureResult: throwing
        })
        yield* failTimes(breaker, 1)
        yield* TestClock.adjust("1 second")
        const probed = yield* Effect.exit(breaker.protect(Effect.succeed({ status: 200 })))
        assert.deepStrictEqual(reasons(probed), [bug])
        // The probe's slot came back with its outcome: the circuit opened again instead of waiting on it for ever.
        const snapshot = yield* breaker.snapshot
        assert.deepStrictEqual([snapshot.state, snapshot.halfOpen], ["Open", null])
        assert.deepStrictEqual(snapshot.recentFailures.map((failure) => [failure.tag, failure.message]), [
          ["Boom", ""],
          ["Error", "bug"]
        ])
        yield* TestClock.adjust("1 second")
        assert.strictEqual(yield* breaker.state, "HalfOpen")
      }))

    it.effect("isFailure and isDefectFailure that throw: the call counts as a failure, the caller gets its error and the defect", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({
          name: "http",
          trip: CircuitBreaker.consecutive(2),
          isFailure: throwing,
          isDefectFailure: throwing
        })
        // As after a finalizer that dies, the caller's error is a defect too: nothing can take the cause for a typed one.
        const [error, defect] = reasons(yield* Effect.exit(breaker.protect(Effect.fail(new Flaky()))))
        assert.instanceOf(error, Flaky)
        assert.strictEqual(defect, bug)
        yield* Effect.exit(breaker.protect(Effect.fail(new Flaky())))
        const snapshot = yield* breaker.snapshot
        assert.deepStrictEqual([snapshot.state, snapshot.failureCount], ["Open", 2])
      }))
  })

  describe("keyed breakers", () => {
    it.effect("each key has its own circuit", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({ name: "hosts", trip: CircuitBreaker.consecutive(1) })
        yield* Effect.ignore(breaker.protectKey("a.example")(fail()))
        assert.strictEqual(yield* rejection(breaker.protectKey("a.example")(Effect.void)), "CircuitOpen")
        assert.strictEqual(yield* breaker.protectKey("b.example")(Effect.succeed("b")), "b")
        const error = yield* Effect.flip(breaker.protectKey("a.example")(Effect.void))
        assert.strictEqual(error.key, "a.example")
      }))

    it.effect("100k keys touched once leave at most the cap", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({ name: "tenants", keys: { maxKeys: 1_000 } })
        for (let i = 0; i < 100_000; i++) yield* breaker.protectKey(`tenant-${i}`)(Effect.void)
        const snapshots = yield* breaker.snapshots
        // The default circuit plus the 1000 most recent keys.
        assert.strictEqual(snapshots.length, 1_001)
        assert.strictEqual(snapshots[1].key, "tenant-99000")
      }))

    it.effect("idle keys are evicted, open ones are kept until their open time is over", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({
          name: "tenants",
          trip: CircuitBreaker.consecutive(1),
          openDuration: "1 hour",
          keys: { idleTimeToLive: "1 minute" }
        })
        yield* breaker.protectKey("idle")(Effect.void)
        yield* Effect.ignore(breaker.protectKey("open")(fail()))
        yield* TestClock.adjust("2 minutes")
        yield* breaker.protectKey("fresh")(Effect.void)
        const keys = (yield* breaker.snapshots).map((s) => s.key)
        assert.deepStrictEqual(keys, ["default", "open", "fresh"])
      }))

    it.effect("keys under a manual control are never evicted, and the idle sweep drains the keys behind them", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({ name: "tenants", keys: { idleTimeToLive: "1 minute" } })
        yield* breaker.forceOpen("forced")
        yield* breaker.disable("disabled")
        yield* breaker.metricsOnly("shadow")
        yield* breaker.protectKey("idle-1")(Effect.void)
        yield* breaker.protectKey("idle-2")(Effect.void)
        yield* TestClock.adjust("2 minutes")
        for (const key of ["new-1", "new-2", "new-3"]) yield* breaker.protectKey(key)(Effect.void)
        const keys = (yield* breaker.snapshots).map((s) => s.key).sort()
        assert.deepStrictEqual(keys, ["default", "disabled", "forced", "new-1", "new-2", "new-3", "shadow"])
        assert.strictEqual(yield* breaker.stateKey("forced"), "ForcedOpen")
        assert.strictEqual(yield* breaker.stateKey("disabled"), "Disabled")
        assert.strictEqual(yield* breaker.stateKey("shadow"), "MetricsOnly")
      }))

    it.effect("at the cap, the least recently used Closed key goes before any Open one; manual keys never", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({
          name: "tenants",
          trip: CircuitBreaker.consecutive(1),
          openDuration: "1 hour",
          keys: { maxKeys: 3 }
        })
        yield* Effect.ignore(breaker.protectKey("open")(fail()))
        yield* breaker.forceOpen("forced")
        yield* breaker.protectKey("closed")(Effect.void)
        yield* breaker.protectKey("next")(Effect.void)
        assert.deepStrictEqual((yield* breaker.snapshots).map((s) => s.key), ["default", "open", "forced", "next"])
        // No Closed key left but the newest: the LRU Open key goes, the forced one stays.
        yield* Effect.ignore(breaker.protectKey("next")(fail()))
        yield* breaker.protectKey("last")(Effect.void)
        assert.deepStrictEqual((yield* breaker.snapshots).map((s) => s.key), ["default", "forced", "next", "last"])
        assert.strictEqual(yield* breaker.stateKey("forced"), "ForcedOpen")
      }))

    it.effect("a HalfOpen key with a probe in flight is never evicted, by idle time or at the cap", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({
          name: "tenants",
          trip: CircuitBreaker.consecutive(1),
          openDuration: "1 second",
          halfOpen: { maxProbeTime: "10 minutes" },
          keys: { idleTimeToLive: "1 minute", maxKeys: 2 }
        })
        yield* Effect.ignore(breaker.protectKey("probing")(fail()))
        yield* TestClock.adjust("1 second")
        const probe = yield* Effect.forkChild(breaker.protectKey("probing")(Effect.sleep("5 minutes")), {
          startImmediately: true
        })
        yield* TestClock.adjust("2 minutes") // idle for longer than idleTimeToLive
        for (const key of ["a", "b", "c"]) yield* breaker.protectKey(key)(Effect.void) // each at the cap
        assert.deepStrictEqual((yield* breaker.snapshots).map((s) => s.key).sort(), ["c", "default", "probing"])
        assert.strictEqual((yield* breaker.snapshotKey("probing")).halfOpen?.probesInFlight, 1)
        // The probe's outcome finds its key, and closes it.
        yield* TestClock.adjust("3 minutes")
        yield* Fiber.join(probe)
        assert.strictEqual(yield* breaker.stateKey("probing"), "Closed")
      }))

    // A fixed probe, and a call admitted by gradual recovery (which holds no probe slot, but kept its key all the same).
    const hungCalls = [
      ["a probe", { maxProbeTime: "30 seconds" }],
      ["gradual recovery: a call", { maxProbeTime: "30 seconds", recoveryFactor: 0.5, successThreshold: 2 }]
    ] as const
    for (const [what, halfOpen] of hungCalls) {
      it.effect(`${what} hung past maxProbeTime no longer keeps its key: the key goes when idle, or at the cap`, () =>
        Effect.gen(function*() {
          const breaker = yield* CircuitBreaker.make({
            name: "tenants",
            trip: CircuitBreaker.consecutive(1),
            openDuration: "1 second",
            halfOpen,
            keys: { idleTimeToLive: "1 minute", maxKeys: 2 }
          })
          for (const hung of ["idle", "capped"]) {
            yield* Effect.ignore(breaker.protectKey(hung)(fail()))
            yield* TestClock.adjust("1 second")
            // A call admitted half-open that never ends, and no call to its key after it.
            yield* Effect.forkChild(breaker.protectKey(hung)(Effect.never), { startImmediately: true })
          }
          // Past maxProbeTime but not idle: the cap takes the least recently used hung key.
          yield* TestClock.adjust("45 seconds")
          yield* breaker.protectKey("a")(Effect.void)
          assert.deepStrictEqual((yield* breaker.snapshots).map((s) => s.key).sort(), ["a", "capped", "default"])
          // Idle for longer than idleTimeToLive: the sweep takes the other one.
          yield* TestClock.adjust("2 minutes")
          yield* breaker.protectKey("a")(Effect.void)
          yield* breaker.protectKey("b")(Effect.void)
          assert.deepStrictEqual((yield* breaker.snapshots).map((s) => s.key).sort(), ["a", "b", "default"])
        }))
    }

    it.effect("eviction drops the key's metric series", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({
          name: "tenants",
          perKeyMetrics: true,
          keys: { maxKeys: 2 }
        })
        for (const key of ["a", "b", "c"]) yield* breaker.protectKey(key)(Effect.void)
        const series = (yield* Metric.snapshot)
          .filter((m) => m.id === "circuit_breaker_key_state")
          .map((m) => m.attributes?.["key"])
        assert.deepStrictEqual(series, ["b", "c"])
      }).pipe(Effect.provideService(Metric.MetricRegistry, new Map())))

    it.effect("a breaker-wide control covers existing keys and keys created later", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({ name: "tenants" })
        yield* breaker.protectKey("a")(Effect.void)
        yield* breaker.forceOpen()
        assert.strictEqual(yield* rejection(breaker.protectKey("a")(Effect.void)), "CircuitForcedOpen")
        assert.strictEqual(yield* rejection(breaker.protectKey("b")(Effect.void)), "CircuitForcedOpen")
        yield* breaker.reset()
        assert.strictEqual(yield* breaker.protectKey("c")(Effect.succeed("c")), "c")
      }))
  })

  describe("export and restore", () => {
    it.effect("an open breaker comes back open, for the time it had left", () =>
      Effect.gen(function*() {
        const first = yield* CircuitBreaker.make({
          name: "db",
          trip: CircuitBreaker.consecutive(1),
          openDuration: "30 seconds"
        })
        yield* failTimes(first, 1)
        yield* TestClock.adjust("10 seconds")
        const saved = yield* first.export()
        // A restarted process: a new breaker, the state restored from a store.
        const second = yield* CircuitBreaker.make({ name: "db2", trip: CircuitBreaker.consecutive(1) })
        yield* second.restore(saved)
        const error = yield* Effect.flip(second.protect(Effect.void))
        assert.strictEqual(Duration.toMillis(error.retryAfter), 20_000)
        yield* TestClock.adjust("20 seconds")
        yield* second.protect(Effect.void)
        assert.strictEqual(yield* second.state, "Closed")
      }))

    it.effect("restored or set into HalfOpen, a key admits the next call as a probe, and it closes", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({ name: "db", trip: CircuitBreaker.consecutive(1) })
        yield* CircuitBreaker.setState(breaker, "HalfOpen")
        assert.strictEqual(yield* breaker.state, "HalfOpen")
        assert.strictEqual(yield* breaker.protect(Effect.succeed(1)), 1)
        assert.strictEqual(yield* breaker.state, "Closed")

        yield* breaker.restore({
          mode: "Live",
          phase: "HalfOpen",
          openedAt: 0,
          openUntil: 0,
          openings: 1,
          lastOpenMillis: 30_000,
          closedAt: 0
        }, "tenant")
        assert.strictEqual(yield* breaker.stateKey("tenant"), "HalfOpen")
        assert.strictEqual(yield* breaker.protectKey("tenant")(Effect.succeed(2)), 2)
        assert.strictEqual(yield* breaker.stateKey("tenant"), "Closed")
        // A probe failure reopens as a probe from a real opening would.
        yield* CircuitBreaker.setState(breaker, "HalfOpen", { key: "tenant" })
        yield* Effect.ignore(breaker.protectKey("tenant")(fail()))
        assert.strictEqual(yield* breaker.stateKey("tenant"), "Open")
      }))

    it.effect("a state that is not a PersistedState is a defect naming the field, and leaves the key as it was", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({ name: "db", trip: CircuitBreaker.consecutive(1) })
        yield* failTimes(breaker, 1)
        const saved = yield* breaker.export()
        // Read from a store without its Schema: a typo, a field lost on the way.
        const bad = (fields: Record<string, unknown>) => ({ ...saved, ...fields }) as CircuitBreaker.PersistedState
        for (
          const [state, issue] of [
            [bad({ phase: "Opened" }), `phase: Expected "Closed" | "Open" | "HalfOpen", got "Opened"`],
            [bad({ openUntil: null }), "openUntil: Expected number"],
            [bad({ mode: "Forced" }), `mode: Expected "Live" | "MetricsOnly" | "ForcedOpen" | "Disabled", got "Forced"`]
          ] as const
        ) {
          const exit = yield* Effect.exit(breaker.restore(state, "tenant"))
          const defect = Exit.isFailure(exit) ? Cause.squash(exit.cause) : undefined
          assert.instanceOf(defect, Error)
          assert.include(defect.message, `Invalid options for restore of circuit breaker "db":\n  ${issue}`)
          assert.strictEqual(yield* breaker.stateKey("tenant"), "Closed")
          assert.strictEqual(yield* breaker.protectKey(Effect.succeed(1), "tenant"), 1)
        }
        yield* breaker.restore(saved, "tenant")
        assert.strictEqual(yield* breaker.stateKey("tenant"), "Open")
      }))

    it.effect("the exported state is plain data that round-trips through its Schema", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({ name: "db" })
        yield* breaker.forceOpen()
        const saved = yield* breaker.export()
        const json = JSON.stringify(Schema.encodeSync(CircuitBreaker.PersistedState)(saved))
        const back = Schema.decodeUnknownSync(CircuitBreaker.PersistedState)(JSON.parse(json))
        assert.deepStrictEqual(back, saved)
        assert.strictEqual(back.mode, "ForcedOpen")
      }))
  })

  describe("windows in the snapshot", () => {
    it.effect("tripFailures: the failures that opened the circuit, while open or half-open; a failed probe adds one", () =>
      Effect.gen(function*() {
        const streak = yield* CircuitBreaker.make({ name: "streak", trip: CircuitBreaker.consecutive(3) })
        yield* failTimes(streak, 2)
        assert.strictEqual((yield* streak.snapshot).tripFailures, null)
        yield* failTimes(streak, 1)
        assert.strictEqual((yield* streak.snapshot).tripFailures, 3)
        yield* TestClock.adjust("30 seconds")
        assert.strictEqual((yield* streak.snapshot).tripFailures, 3)
        yield* failTimes(streak, 1) // the probe fails: open again
        assert.strictEqual((yield* streak.snapshot).tripFailures, 4)
        yield* TestClock.adjust("1 minute")
        yield* streak.protect(Effect.void)
        assert.deepStrictEqual([(yield* streak.snapshot).state, (yield* streak.snapshot).tripFailures], [
          "Closed",
          null
        ])
        const rate = yield* CircuitBreaker.make({
          name: "rate",
          trip: CircuitBreaker.failureRate({ threshold: 0.5, minimumCalls: 10, window: CircuitBreaker.lastCalls(10) })
        })
        for (let i = 0; i < 4; i++) yield* rate.protect(Effect.void)
        yield* failTimes(rate, 6)
        assert.deepStrictEqual([(yield* rate.snapshot).state, (yield* rate.snapshot).tripFailures], ["Open", 6])
      }))

    it.effect("a count window slides while the lifetime totals grow", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({
          name: "db",
          trip: CircuitBreaker.failureRate({ threshold: 0.9, minimumCalls: 4, window: CircuitBreaker.lastCalls(4) })
        })
        yield* Effect.ignore(breaker.protect(fail()))
        for (let i = 0; i < 3; i++) yield* breaker.protect(Effect.void)
        let snapshot = yield* breaker.snapshot
        assert.deepStrictEqual(snapshot.window, { calls: 4, failures: 1, successes: 3, slowCalls: 0 })
        assert.strictEqual(snapshot.failureRate, 0.25)
        for (let i = 0; i < 2; i++) yield* breaker.protect(Effect.void)
        snapshot = yield* breaker.snapshot
        // The failure has left the window; the totals still count it.
        assert.deepStrictEqual(snapshot.window, { calls: 4, failures: 0, successes: 4, slowCalls: 0 })
        assert.deepStrictEqual([snapshot.totalCalls, snapshot.failureCount, snapshot.successCount], [6, 1, 5])
        assert.strictEqual(snapshot.failureRate, 0)
      }))

    it.effect("a rolling window drops calls older than its length, failures and slow calls alike", () =>
      Effect.gen(function*() {
        const window = CircuitBreaker.rolling("10 seconds", { buckets: 10 })
        const breaker = yield* CircuitBreaker.make({
          name: "db",
          trip: [
            CircuitBreaker.failureRate({ threshold: 0.9, minimumCalls: 100, window }),
            CircuitBreaker.slowCallRate({ threshold: 0.9, slowerThan: "1 second", minimumCalls: 100, window })
          ]
        })
        yield* Effect.ignore(breaker.protect(fail())) // at 0s
        const slow = yield* Effect.forkChild(breaker.protect(Effect.sleep("2 seconds")), { startImmediately: true })
        yield* TestClock.adjust("2 seconds")
        yield* Fiber.join(slow) // at 2s, slow
        assert.deepStrictEqual((yield* breaker.snapshot).window, { calls: 2, failures: 1, successes: 1, slowCalls: 1 })
        yield* TestClock.adjust("8500 millis")
        yield* breaker.protect(Effect.void) // at 10.5s: the window is [1s, 11s), the failure at 0s is out
        let snapshot = yield* breaker.snapshot
        assert.deepStrictEqual(snapshot.window, { calls: 2, failures: 0, successes: 2, slowCalls: 1 })
        yield* TestClock.adjust("2 seconds") // at 12.5s: [3s, 13s), the slow call is out
        snapshot = yield* breaker.snapshot
        assert.deepStrictEqual(snapshot.window, { calls: 1, failures: 0, successes: 1, slowCalls: 0 })
        assert.deepStrictEqual([snapshot.totalCalls, snapshot.failureCount, snapshot.slowCallCount], [3, 1, 1])
      }))

    it.effect("with only a consecutive policy, the window is the current streak", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({ name: "db", trip: CircuitBreaker.consecutive(3) })
        yield* failTimes(breaker, 2)
        assert.deepStrictEqual((yield* breaker.snapshot).window, { calls: 2, failures: 2, successes: 0, slowCalls: 0 })
        yield* breaker.protect(Effect.void)
        const snapshot = yield* breaker.snapshot
        assert.deepStrictEqual(snapshot.window, { calls: 0, failures: 0, successes: 0, slowCalls: 0 })
        assert.strictEqual(snapshot.totalCalls, 3)
      }))

    it.effect("a trip clears the window, not the totals", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({
          name: "db",
          trip: CircuitBreaker.failureRate({ threshold: 0.5, minimumCalls: 2, window: CircuitBreaker.lastCalls(10) })
        })
        yield* breaker.protect(Effect.void)
        yield* Effect.ignore(breaker.protect(fail()))
        const snapshot = yield* breaker.snapshot
        assert.strictEqual(snapshot.state, "Open")
        assert.deepStrictEqual(snapshot.window, { calls: 0, failures: 0, successes: 0, slowCalls: 0 })
        assert.deepStrictEqual([snapshot.totalCalls, snapshot.failureCount], [2, 1])
      }))
  })

  describe("events and metrics", () => {
    it.effect("every transition is published with from, to, reason, at and key", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({
          name: "db",
          trip: CircuitBreaker.consecutive(2),
          openDuration: "1 second"
        })
        const { seen } = yield* recording(
          breaker,
          Effect.gen(function*() {
            yield* failTimes(breaker, 2)
            yield* TestClock.adjust("1 second")
            yield* breaker.protect(Effect.void)
            yield* breaker.forceOpen()
            yield* breaker.reset()
          })
        )
        assert.deepStrictEqual(
          seen.map(({ at, from, reason, to }) => ({ from, to, reason: reason._tag, at })),
          [
            { from: "Closed", to: "Open", reason: "ConsecutiveFailures", at: 0 },
            { from: "Open", to: "HalfOpen", reason: "OpenElapsed", at: 1_000 },
            { from: "HalfOpen", to: "Closed", reason: "ProbesSucceeded", at: 1_000 },
            { from: "Closed", to: "ForcedOpen", reason: "Manual", at: 1_000 },
            { from: "ForcedOpen", to: "Closed", reason: "Manual", at: 1_000 }
          ]
        )
        assert.isTrue(seen.every((t) => t.breaker === "db" && t.key === "default"))
        const generations = seen.map((t) => t.generation)
        assert.deepStrictEqual(generations, [...generations].sort((a, b) => a - b))
      }))

    it.effect("Effect metrics count calls by outcome, rejections, transitions and the state", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({ name: "db", trip: CircuitBreaker.consecutive(2) })
        yield* breaker.protect(Effect.void)
        yield* failTimes(breaker, 2)
        yield* Effect.ignore(breaker.protect(Effect.void))
        assert.strictEqual(yield* metricValue("circuit_breaker_calls_total", { outcome: "success" }), 1)
        assert.strictEqual(yield* metricValue("circuit_breaker_calls_total", { outcome: "failure" }), 2)
        assert.strictEqual(yield* metricValue("circuit_breaker_rejections_total"), 1)
        assert.strictEqual(yield* metricValue("circuit_breaker_transitions_total", { to: "Open" }), 1)
        assert.strictEqual(yield* metricValue("circuit_breaker_state"), 1)
      }).pipe(Effect.provideService(Metric.MetricRegistry, new Map())))

    it.effect("the state gauge of a keyed breaker is its circuit worst off: one circuit per host never calls the default", () =>
      Effect.gen(function*() {
        const hosts = yield* CircuitBreaker.make({ name: "db", trip: CircuitBreaker.consecutive(1) })
        yield* hosts.protectKey(Effect.void, "cdn.example")
        assert.strictEqual(yield* metricValue("circuit_breaker_state"), 0)
        yield* Effect.ignore(hosts.protectKey(Effect.fail("down"), "api.example"))
        assert.strictEqual(yield* metricValue("circuit_breaker_state"), 1)
        yield* hosts.forceOpen("cdn.example")
        assert.strictEqual(yield* metricValue("circuit_breaker_state"), 3)
      }).pipe(Effect.provideService(Metric.MetricRegistry, new Map())))

    it.effect("metrics leave the registry when the breaker's scope closes", () =>
      Effect.gen(function*() {
        yield* Effect.scoped(CircuitBreaker.make({ name: "db" }))
        const left = (yield* Metric.snapshot).filter((m) => m.attributes?.["breaker"] === "db")
        assert.deepStrictEqual(left, [])
      }).pipe(Effect.provideService(Metric.MetricRegistry, new Map())))
  })

  describe("options", () => {
    it.effect("bad values fail with the option's path and the expected range", () =>
      Effect.gen(function*() {
        assert.deepStrictEqual(yield* invalid({ name: "db", trip: CircuitBreaker.consecutive(0) }), [
          "trip[0].failures: Expected a value greater than or equal to 1, got 0"
        ])
        assert.deepStrictEqual(
          yield* invalid({
            name: "db",
            trip: CircuitBreaker.failureRate({ threshold: 1.5, window: CircuitBreaker.lastCalls(10) })
          }),
          ["trip[0].threshold: Expected a share in (0, 1], got 1.5"]
        )
        assert.deepStrictEqual(yield* invalid({ name: "db", openDuration: -5 }), [
          "openDuration: Expected a Schedule or a non-negative duration, got -5 millis"
        ])
        assert.deepStrictEqual(
          yield* invalid({
            name: "db",
            trip: CircuitBreaker.failureRate({ threshold: 0.5, minimumCalls: 20, window: CircuitBreaker.lastCalls(10) })
          }),
          ["trip[0].minimumCalls: Expected at most the window size (10), got 20"]
        )
        assert.deepStrictEqual(yield* invalid({ name: "db", halfOpen: { maxProbes: 0, maxProbeTime: "-1 second" } }), [
          "halfOpen.maxProbes: Expected a value greater than or equal to 1, got 0",
          "halfOpen.maxProbeTime: Expected a positive duration, got -1000 millis"
        ])
        assert.deepStrictEqual(yield* invalid({ name: "" }), [
          "name: Expected a value with a length of at least 1, got \"\""
        ])
        // What is allocated up front has a maximum: a huge count is an option error, not a RangeError later.
        assert.deepStrictEqual(
          yield* invalid({
            name: "db",
            eventBuffer: 1e12,
            trip: [
              CircuitBreaker.failureRate({ threshold: 0.5, window: CircuitBreaker.lastCalls(1e12) }),
              CircuitBreaker.failureRate({
                threshold: 0.5,
                window: CircuitBreaker.rolling("365 days", { buckets: 1e9 })
              })
            ]
          }),
          [
            "trip[0].window.size: Expected a value less than or equal to 1000000, got 1000000000000",
            "trip[1].window.buckets: Expected a value less than or equal to 100000, got 1000000000",
            "eventBuffer: Expected a value less than or equal to 100000, got 1000000000000"
          ]
        )
        // A long window's default buckets (one a second) stop at that maximum.
        assert.deepStrictEqual(CircuitBreaker.rolling("365 days"), {
          _tag: "Time",
          length: "365 days",
          buckets: 100_000
        })
        // Names the HTTP API could not reach by path.
        assert.deepStrictEqual(yield* invalid({ name: "payments\n" }), [
          "name: Expected a name without control characters, got \"payments\\n\""
        ])
        assert.deepStrictEqual(yield* invalid({ name: "x".repeat(201) }), [
          `name: Expected a value with a length of at most 200, got "${"x".repeat(201)}"`
        ])
        assert.deepStrictEqual(yield* invalid({ name: ".." }), [
          "name: Expected a name other than \".\" and \"..\" (a URL path collapses them: the HTTP API could not reach it), " +
          "got \"..\""
        ])
        // 10 buckets of 5 ms would be whole milliseconds only as 10 buckets of 1 ms: a window of 10 ms, not 5.
        assert.deepStrictEqual(
          yield* invalid({
            name: "db",
            trip: CircuitBreaker.failureRate({
              threshold: 0.5,
              window: CircuitBreaker.rolling("5 millis", { buckets: 10 })
            })
          }),
          ["trip[0].window.buckets: Expected at most one bucket per millisecond of length (5), got 10"]
        )
      }))

    it.effect("one bucket per millisecond of length is allowed: the window is exactly its length", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({
          name: "db",
          trip: CircuitBreaker.failureRate({
            threshold: 0.5,
            minimumCalls: 2,
            window: CircuitBreaker.rolling("5 millis", { buckets: 5 })
          })
        })
        yield* Effect.ignore(breaker.protect(Effect.fail("boom")))
        yield* Effect.ignore(breaker.protect(Effect.fail("boom")))
        assert.strictEqual(yield* breaker.state, "Open")
      }))

    it.effect("the error message lists every issue", () =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(
          CircuitBreaker.make({ name: "db", trip: CircuitBreaker.consecutive(0), halfOpen: { recoveryFactor: 2 } })
        )
        assert.strictEqual(
          error.message,
          "Invalid options for circuit breaker \"db\":\n" +
            "  trip[0].failures: Expected a value greater than or equal to 1, got 0\n" +
            "  halfOpen.recoveryFactor: Expected a share in (0, 1], got 2 (a share, not a percent: write 0.02 for 2%)"
        )
      }))
  })
})
