import { assert, describe, it } from "@effect/vitest"
import {
  Cause,
  Clock,
  Data,
  Deferred,
  type Duration,
  Effect,
  Exit,
  Fiber,
  identity,
  Layer,
  Ref,
  Schedule,
  type Scope,
  Stream
} from "effect"
import { TestClock } from "effect/testing"
import * as Bulkhead from "../src/Bulkhead.ts"
import * as CircuitBreaker from "../src/CircuitBreaker.ts"
import * as CircuitBreakerRegistry from "../src/CircuitBreakerRegistry.ts"
import * as Hedge from "../src/Hedge.ts"
import * as Policy from "../src/Policy.ts"
import * as RateLimiter from "../src/RateLimiter.ts"
import * as Retry from "../src/Retry.ts"
import * as Timeout from "../src/Timeout.ts"
import { interruptedAfter, protectedCalls, runningIn, yieldTimes } from "./interruption.ts"

class Unavailable extends Data.TaggedError("Unavailable") {}

class Invalid extends Data.TaggedError("Invalid") {}

type Attempt = "ok" | "fail" | "hang" | "invalid"

// A call whose attempts go as `script` says (its last entry repeating), and how many it made.
const scripted = (script: ReadonlyArray<Attempt>) => {
  const attempts = { count: 0 }
  const call = Effect.suspend((): Effect.Effect<string, Invalid | Unavailable> => {
    const attempt = script[Math.min(attempts.count++, script.length - 1)]
    return attempt === "ok"
      ? Effect.succeed(`ok after ${attempts.count}`)
      : attempt === "hang"
      ? Effect.never
      : attempt === "invalid"
      ? Effect.fail(new Invalid())
      : Effect.fail(new Unavailable())
  })
  return { attempts, call }
}

// Runs `self` on a child fiber, interrupted once the clock reaches `interruptAt` if given, then moves the clock on
// 10 seconds: its exit.
const settled = <A, E>(self: Effect.Effect<A, E>, interruptAt: Duration.Input | undefined) =>
  Effect.gen(function*() {
    const fiber = yield* Effect.forkChild(self)
    if (interruptAt !== undefined) {
      yield* TestClock.adjust(interruptAt)
      yield* Fiber.interrupt(fiber)
    }
    yield* TestClock.adjust("10 seconds")
    return yield* Fiber.await(fiber)
  })

// A call's outcome as a test compares it: the value, "interrupted", or the cause's text.
const show = (exit: Exit.Exit<unknown, unknown>) =>
  Exit.isSuccess(exit) ? exit.value : Cause.hasInterruptsOnly(exit.cause) ? "interrupted" : String(exit.cause)

/**
 * A part that only records: "slot>" when a run enters it, "<slot" when it leaves. The retry spy runs what is inside
 * it twice, as a retry would, so the record shows which parts each attempt goes through.
 */
const spy = (log: Array<string>, slot: typeof Policy.order[number]) => ({
  name: slot,
  protect: <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
    Effect.suspend(() => {
      log.push(`${slot}>`)
      return Effect.ensuring(
        slot === "retry" ? Effect.andThen(self, self) : self,
        Effect.sync(() => log.push(`<${slot}`))
      )
    }),
  snapshot: Effect.succeed({ spy: slot }),
  snapshots: Effect.succeed([{ spy: slot }])
})

/**
 * A limiter of two calls a second in delay mode, inside a hedge; the primary of the first call to reach the
 * dependency never answers, its hedge does.
 */
const hedgedPartner = (hedgeDelay: Duration.Input) =>
  Effect.gen(function*() {
    const limiter = yield* RateLimiter.make({ name: "partner", limit: 2, window: "1 second", onExceeded: "delay" })
    const policy = yield* Policy.make({
      name: "partner",
      rateLimiter: limiter,
      hedge: yield* Hedge.make({ name: "partner", delay: hedgeDelay, maxHedges: 1 })
    })
    const reached: Array<number> = []
    const call = Effect.flatMap(Clock.currentTimeMillis, (now) => {
      reached.push(now)
      return reached.length === 1 ? Effect.never : Effect.succeed(now)
    })
    return { call, policy, reached }
  })

describe("Policy", () => {
  it.effect("nests the parts in the prescribed order, whatever order they are given in", () =>
    Effect.gen(function*() {
      const log: Array<string> = []
      // Given innermost first, on purpose.
      const stages = {
        chaos: spy(log, "chaos"),
        bulkhead: spy(log, "bulkhead"),
        timeout: spy(log, "timeout"),
        hedge: spy(log, "hedge"),
        rateLimiter: spy(log, "rateLimiter"),
        retry: spy(log, "retry"),
        circuitBreaker: spy(log, "circuitBreaker")
      } as unknown as Policy.Stages
      const policy = yield* Policy.make({ name: "recorded", ...stages })
      yield* policy.protect(Effect.sync(() => log.push("call")))
      const attempt = [
        "hedge>",
        "rateLimiter>",
        "timeout>",
        "bulkhead>",
        "chaos>",
        "call",
        "<chaos",
        "<bulkhead",
        "<timeout",
        "<rateLimiter",
        "<hedge"
      ]
      assert.deepStrictEqual(log, ["circuitBreaker>", "retry>", ...attempt, ...attempt, "<retry", "<circuitBreaker"])
      assert.deepStrictEqual((yield* policy.snapshot).order, Policy.order)
    }))

  it.effect("skips the parts left out", () =>
    Effect.gen(function*() {
      const log: Array<string> = []
      const stages = { timeout: spy(log, "timeout"), circuitBreaker: spy(log, "circuitBreaker") }
      const policy = yield* Policy.make({ name: "two", ...stages as unknown as Policy.Stages })
      yield* policy.protect(Effect.sync(() => log.push("call")))
      assert.deepStrictEqual(log, ["circuitBreaker>", "timeout>", "call", "<timeout", "<circuitBreaker"])
      assert.deepStrictEqual((yield* policy.snapshot).order, ["circuitBreaker", "timeout"])
    }))

  it.effect("the breaker sees one outcome per call; retry and a per-attempt timeout work inside it", () =>
    Effect.gen(function*() {
      const attempts = yield* Ref.make(0)
      // The first attempt hangs, the second fails, the third answers.
      const flaky = Effect.flatMap(
        Ref.updateAndGet(attempts, (n) => n + 1),
        (n) => n === 1 ? Effect.never : n === 2 ? Effect.fail(new Unavailable()) : Effect.succeed("ok")
      )
      const policy = yield* Policy.make({
        name: "search",
        circuitBreaker: yield* CircuitBreaker.make({ name: "search", trip: CircuitBreaker.consecutive(1) }),
        retry: yield* Retry.make({ name: "search", schedule: Retry.constant({ delay: "100 millis", times: 3 }) }),
        timeout: yield* Timeout.make({ name: "search", duration: "1 second" })
      })
      const fiber = yield* Effect.forkChild(policy.protect(flaky))
      yield* TestClock.adjust("2 seconds")
      assert.strictEqual(yield* Fiber.join(fiber), "ok")
      assert.strictEqual(yield* Ref.get(attempts), 3)
      const snapshot = yield* policy.snapshot
      const [breaker] = snapshot.stages.circuitBreaker
      assert.strictEqual(breaker.state, "Closed")
      assert.strictEqual(breaker.successCount, 1)
      assert.strictEqual(breaker.failureCount, 0)
      assert.strictEqual(snapshot.stages.retry.retries, 2)
    }))

  it.effect("a retry around a timeout behaves as the two composed by hand: outcomes, counts, budget, interruption", () =>
    Effect.gen(function*() {
      // Each scenario is a list of attempts: answers at once, fails at once, hangs, or fails with a non-retryable error.
      const scenarios: ReadonlyArray<ReadonlyArray<Attempt>> = [
        ["ok"],
        ["fail", "ok"],
        ["hang", "ok"],
        ["hang", "fail", "hang"],
        ["invalid"],
        ["fail", "fail", "fail"]
      ]
      const run = (fused: boolean, script: ReadonlyArray<Attempt>, interruptAt?: Duration.Input) =>
        Effect.gen(function*() {
          const retry = yield* Retry.make({
            name: "search",
            schedule: Retry.constant({ delay: "100 millis", times: 2 }),
            while: (error) => !(error instanceof Invalid),
            budget: yield* Retry.budget({ ratio: 0.5, minPerSecond: 1 })
          })
          const timeout = yield* Timeout.make({ name: "search", duration: "1 second" })
          const protect = fused
            ? (yield* Policy.make({ name: "search", retry, timeout })).protect
            : <A, E, R>(self: Effect.Effect<A, E, R>) => self.pipe(timeout.protect, retry.protect)
          const { attempts, call } = scripted(script)
          const exit = yield* settled(Effect.exit(protect(call)), interruptAt)
          const retries = yield* retry.snapshot
          const deadlines = yield* timeout.snapshot
          return {
            exit: Exit.isSuccess(exit)
              ? Exit.isSuccess(exit.value) ? exit.value.value : String(exit.value.cause)
              : "interrupted",
            attempts: attempts.count,
            retry: {
              ...retries,
              budget: retries.budget && { calls: retries.budget.calls, retries: retries.budget.retries }
            },
            timeout: deadlines
          }
        }).pipe(Effect.scoped)
      for (const script of scenarios) {
        for (const interruptAt of [undefined, "500 millis", "1050 millis"] as const) {
          const composed = yield* run(false, script, interruptAt)
          const fused = yield* run(true, script, interruptAt)
          assert.deepStrictEqual(fused, composed, `${script.join(",")} interrupted at ${interruptAt}`)
        }
      }
      // The figures compared are real ones: a hang is timed out and retried, a non-retryable error is not.
      const hung = yield* run(true, ["hang", "ok"])
      assert.strictEqual(hung.exit, "ok after 2")
      assert.strictEqual(hung.timeout.timeouts, 1)
      assert.strictEqual(hung.retry.retries, 1)
      assert.strictEqual((yield* run(true, ["invalid"])).attempts, 1)
      const stopped = yield* run(true, ["hang", "ok"], "500 millis")
      assert.deepStrictEqual([stopped.exit, stopped.attempts, stopped.timeout.inFlight], ["interrupted", 1, 0])
    }))

  it.effect("a breaker around a retry and a timeout behaves as the three composed by hand, whatever its state", () =>
    Effect.gen(function*() {
      const scenarios: ReadonlyArray<ReadonlyArray<Attempt>> = [
        ["ok"],
        ["fail", "ok"],
        ["hang", "ok"],
        ["fail", "hang"],
        ["hang", "fail", "hang"],
        ["invalid"],
        ["fail", "fail", "fail"]
      ]
      // One scripted call (interrupted or not), then plain calls: at once (rejected if the first opened the
      // circuit), after the open duration (a probe), and once more (closed again). The policy admits a call on a
      // closed circuit in one callback, and takes the composed path for the rest: both must count as the composition.
      const run = (
        fused: boolean,
        script: ReadonlyArray<Attempt>,
        interruptAt: Duration.Input | undefined,
        withRetry: boolean
      ) =>
        Effect.gen(function*() {
          const breaker = yield* CircuitBreaker.make({
            name: "search",
            trip: CircuitBreaker.consecutive(1),
            openDuration: "1 minute"
          })
          const retry = withRetry
            ? yield* Retry.make({
              name: "search",
              schedule: Retry.constant({ delay: "100 millis", times: 2 }),
              while: (error) => !(error instanceof Invalid)
            })
            : undefined
          const timeout = yield* Timeout.make({ name: "search", duration: "1 second" })
          const protect = fused
            ? (yield* Policy.make({ name: "search", circuitBreaker: breaker, timeout, ...(retry ? { retry } : {}) }))
              .protect
            : <A, E, R>(self: Effect.Effect<A, E, R>) =>
              self.pipe(timeout.protect, retry ? retry.protect : identity, breaker.protect)
          const { attempts, call } = scripted(script)
          const first = show(yield* settled(protect(call), interruptAt))
          const later = [show(yield* Effect.exit(protect(Effect.succeed("second"))))]
          yield* TestClock.adjust("2 minutes")
          later.push(show(yield* Effect.exit(protect(Effect.succeed("probe")))))
          later.push(show(yield* Effect.exit(protect(Effect.succeed("closed")))))
          const snapshot = yield* breaker.snapshot
          return {
            first,
            later,
            attempts: attempts.count,
            breaker: {
              state: snapshot.state,
              generation: snapshot.generation,
              totalCalls: snapshot.totalCalls,
              successCount: snapshot.successCount,
              failureCount: snapshot.failureCount,
              ignoredCount: snapshot.ignoredCount,
              rejectedCount: snapshot.rejectedCount,
              stateChanges: snapshot.stateChanges,
              halfOpen: snapshot.halfOpen
            },
            retry: retry === undefined ? undefined : yield* retry.snapshot,
            timeout: yield* timeout.snapshot
          }
        }).pipe(Effect.scoped)
      for (const withRetry of [true, false]) {
        for (const script of scenarios) {
          for (const interruptAt of [undefined, "50 millis", "500 millis", "1050 millis"] as const) {
            const composed = yield* run(false, script, interruptAt, withRetry)
            const fused = yield* run(true, script, interruptAt, withRetry)
            assert.deepStrictEqual(
              fused,
              composed,
              `${script.join(",")} interrupted at ${interruptAt}${withRetry ? "" : " without a retry"}`
            )
          }
        }
      }
      // The figures compared are real ones: a failure opens the circuit, the next call is rejected, the probe closes it.
      const failed = yield* run(true, ["fail", "fail", "fail"], undefined, true)
      assert.strictEqual(failed.attempts, 3)
      assert.match(String(failed.later[0]), /CircuitBreakerOpen|Rejected|open/i)
      assert.deepStrictEqual(failed.later.slice(1), ["probe", "closed"])
      assert.deepStrictEqual([failed.breaker.failureCount, failed.breaker.rejectedCount], [1, 1])
      const stopped = yield* run(true, ["fail", "hang"], "500 millis", true)
      assert.deepStrictEqual([stopped.first, stopped.attempts, stopped.breaker.ignoredCount], ["interrupted", 2, 1])
      assert.strictEqual(stopped.breaker.state, "Closed")
    }))

  describe("a caller interrupted at any point leaves nothing held", () => {
    interface Subject {
      readonly protect: (self: Effect.Effect<number, unknown>) => Effect.Effect<unknown, unknown>
      readonly check: (label: string) => Effect.Effect<void, unknown>
    }
    const parts = Effect.gen(function*() {
      const circuitBreaker = yield* CircuitBreaker.make({ name: "search", trip: CircuitBreaker.consecutive(100) })
      const retry = yield* Retry.make({ name: "search", schedule: Retry.constant({ delay: "100 millis", times: 2 }) })
      const timeout = yield* Timeout.make({ name: "search", duration: "1 second" })
      const check = (label: string) =>
        Effect.gen(function*() {
          assert.strictEqual((yield* timeout.snapshot).inFlight, 0, label)
          const breaker = yield* circuitBreaker.snapshot
          assert.strictEqual(breaker.halfOpen?.probesInFlight ?? 0, 0, label)
        })
      return { stages: { circuitBreaker, retry, timeout }, check }
    })
    // The clock moves on while the caller starts: a retry's wait or a hedge starts at some turn of the sweep.
    const sweep = (make: Effect.Effect<Subject, unknown, Scope.Scope>) =>
      Effect.gen(function*() {
        for (const [name, call] of Object.entries(protectedCalls)) {
          for (let turns = 0; turns < 30; turns++) {
            const subject = yield* make
            const running = { count: 0 }
            yield* interruptedAfter(
              subject.protect(runningIn(running, call)),
              turns,
              Effect.andThen(yieldTimes(4), TestClock.adjust("100 millis"))
            )
            const label = `${name}, interrupted after ${turns} turns`
            assert.strictEqual(running.count, 0, `${label}: an attempt runs on`)
            yield* subject.check(label)
          }
        }
      }).pipe(Effect.scoped)

    it.effect("a breaker, a retry and a timeout, in one callback", () =>
      sweep(Effect.gen(function*() {
        const { check, stages } = yield* parts
        const policy = yield* Policy.make({ name: "search", ...stages })
        return {
          protect: policy.protect,
          check: (label: string) =>
            Effect.gen(function*() {
              yield* check(label)
              // A call whose attempt started was admitted, and settles once (an interrupted one as ignored).
              const started = (yield* stages.timeout.snapshot).calls > 0
              const breaker = yield* stages.circuitBreaker.snapshot
              assert.strictEqual(breaker.totalCalls + breaker.ignoredCount, started ? 1 : 0, `${label}: settlements`)
            })
        }
      })))

    it.effect("every part, composed", () =>
      sweep(Effect.gen(function*() {
        const { check, stages } = yield* parts
        const hedge = yield* Hedge.make({ name: "search", delay: "10 millis" })
        const bulkhead = yield* Bulkhead.make({ name: "search", maxConcurrent: 1, maxQueue: 1 })
        const rateLimiter = yield* RateLimiter.make({ name: "search", limit: 100, window: "1 second" }).pipe(
          Effect.provide(RateLimiter.layerStoreMemory)
        )
        const policy = yield* Policy.make({ name: "search", ...stages, hedge, rateLimiter, bulkhead })
        return {
          protect: policy.protect,
          check: (label: string) =>
            Effect.gen(function*() {
              yield* check(label)
              assert.strictEqual((yield* hedge.snapshot).inFlight, 0, label)
              const held = yield* bulkhead.snapshot
              assert.deepStrictEqual([held.active, held.queued], [0, 0], label)
            })
        }
      })))

    it.effect("a caller interrupted by what its retries ran as they started: retries stopped, call settled", () =>
      Effect.gen(function*() {
        const retrying = yield* Deferred.make<void>()
        const circuitBreaker = yield* CircuitBreaker.make({ name: "search" })
        // The schedule signals each retry it schedules: something watching that interrupts the caller at once.
        const retry = yield* Retry.make({
          name: "search",
          schedule: Schedule.spaced("100 millis").pipe(
            Schedule.tap(() => Deferred.succeed(retrying, undefined)),
            Schedule.upTo({ times: 2 })
          )
        })
        const timeout = yield* Timeout.make({ name: "search", duration: "1 second" })
        const policy = yield* Policy.make({ name: "search", circuitBreaker, retry, timeout })
        let attempts = 0
        const call = Effect.suspend(() => {
          attempts++
          return Effect.andThen(Effect.sleep("10 millis"), Effect.fail("unavailable"))
        })
        const caller = yield* Effect.forkChild(policy.protect(call), { startImmediately: true })
        yield* Effect.forkChild(Effect.andThen(Deferred.await(retrying), Fiber.interrupt(caller)), {
          startImmediately: true
        })
        yield* TestClock.adjust("10 millis")
        const exit = yield* Fiber.await(caller)
        yield* TestClock.adjust("1 second")
        assert.isTrue(Exit.hasInterrupts(exit) && !Exit.hasDies(exit), "the caller is interrupted, not killed")
        assert.strictEqual(attempts, 1, "the retries went on")
        const breaker = yield* circuitBreaker.snapshot
        assert.deepStrictEqual([breaker.totalCalls, breaker.ignoredCount], [0, 1], "the call is settled as interrupted")
        assert.strictEqual((yield* timeout.snapshot).inFlight, 0)
      }))
  })

  it.effect("a call on a closed circuit that opens it has published the transition when the caller resumes", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ name: "search", trip: CircuitBreaker.consecutive(1) })
      const policy = yield* Policy.make({
        name: "search",
        circuitBreaker: breaker,
        timeout: yield* Timeout.make({ name: "search", duration: "1 second" })
      })
      const seen = yield* breaker.transitions.pipe(Stream.take(1), Stream.runCollect, Effect.forkScoped)
      yield* Effect.yieldNow
      const exit = yield* Effect.exit(policy.protect(Effect.fail(new Unavailable())))
      assert.isTrue(Exit.isFailure(exit))
      const published = seen.pollUnsafe()
      assert.isDefined(published)
      assert.deepStrictEqual(
        Exit.map(published!, (all) => all.map((t) => [t.from, t.to])),
        Exit.succeed([["Closed", "Open"]])
      )
    }))

  it.effect("a call that still fails after its retries is one failure for the breaker", () =>
    Effect.gen(function*() {
      const policy = yield* Policy.make({
        name: "search",
        circuitBreaker: yield* CircuitBreaker.make({ name: "search", trip: CircuitBreaker.consecutive(2) }),
        retry: yield* Retry.make({ name: "search", schedule: Retry.constant({ delay: "10 millis", times: 2 }) })
      })
      const fiber = yield* Effect.forkChild(Effect.flip(policy.protect(Effect.fail(new Unavailable()))))
      yield* TestClock.adjust("1 second")
      assert.strictEqual((yield* Fiber.join(fiber))._tag, "Unavailable")
      const [breaker] = (yield* policy.snapshot).stages.circuitBreaker
      assert.strictEqual(breaker.failureCount, 1)
      assert.strictEqual(breaker.state, "Closed")
    }))

  it.effect("a full bulkhead rejects locally and never counts against the breaker", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ name: "db", trip: CircuitBreaker.consecutive(1) })
      const policy = yield* Policy.make({
        name: "db",
        circuitBreaker: breaker,
        bulkhead: yield* Bulkhead.make({ name: "db", maxConcurrent: 1 })
      })
      const busy = yield* Effect.forkChild(policy.protect(Effect.sleep("1 second")), { startImmediately: true })
      for (let i = 0; i < 3; i++) {
        const error = yield* Effect.flip(policy.protect(Effect.void))
        assert.strictEqual(error._tag, "BulkheadFull")
      }
      assert.strictEqual(yield* breaker.state, "Closed")
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(busy)
    }))

  it.effect("a hedge a full bulkhead turned away after its primary failed leaves the failure to the breaker", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ name: "db", trip: CircuitBreaker.consecutive(1) })
      const bulkhead = yield* Bulkhead.make({ name: "db", maxConcurrent: 2, maxQueue: 2, maxWait: "50 millis" })
      const policy = yield* Policy.make({
        name: "db",
        circuitBreaker: breaker,
        hedge: yield* Hedge.make({ name: "db", delay: "100 millis" }),
        bulkhead
      })
      const others = bulkhead.protect(Effect.sleep("1 second"))
      yield* Effect.forkChild(others, { startImmediately: true })
      // The primary fails at 120 ms. Its hedge queued at 100 ms behind a caller queued at 90 ms, which takes the
      // permit the primary frees: the hedge never reaches the dependency, and waits out its 50 ms.
      const call = yield* Effect.forkChild(
        Effect.exit(policy.protect(Effect.andThen(Effect.sleep("120 millis"), Effect.fail(new Unavailable())))),
        { startImmediately: true }
      )
      yield* TestClock.adjust("90 millis")
      yield* Effect.forkChild(others, { startImmediately: true })
      yield* TestClock.adjust("60 millis")
      // The call fails as the dependency did, not as the bulkhead turned its hedge away, and the breaker counts it.
      assert.deepStrictEqual(yield* Fiber.join(call), Exit.fail(new Unavailable()))
      assert.strictEqual(yield* breaker.state, "Open")
      assert.deepStrictEqual((yield* bulkhead.snapshot).rejected, { QueueFull: 0, WaitTimeout: 1 })
    }))

  it.effect("a rate limit inside retry spends a token per attempt and is retried after its retryAfter", () =>
    Effect.gen(function*() {
      const policy = yield* Policy.make({
        name: "api",
        retry: yield* Retry.make({ name: "api", schedule: Retry.constant({ delay: "1 millis", times: 1 }) }),
        rateLimiter: yield* RateLimiter.make({ name: "api", limit: 1, window: "1 second" })
      })
      yield* policy.protect(Effect.void)
      // Over the limit: the retry waits the limiter's retryAfter, not its own 1 ms, and then gets through.
      const fiber = yield* Effect.forkChild(policy.protect(Effect.succeed("second")))
      yield* TestClock.adjust("999 millis")
      assert.isUndefined(fiber.pollUnsafe())
      yield* TestClock.adjust("1 millis")
      assert.strictEqual(yield* Fiber.join(fiber), "second")
    }).pipe(Effect.provide(RateLimiter.layerStoreMemory)))

  it.effect("a hedged attempt spends a token too: no more than the limit reach the dependency", () =>
    Effect.gen(function*() {
      const limiter = yield* RateLimiter.make({ name: "partner", limit: 3, window: "1 minute" })
      const policy = yield* Policy.make({
        name: "partner",
        rateLimiter: limiter,
        hedge: yield* Hedge.make({ name: "partner", delay: "100 millis", maxHedges: 2 })
      })
      let reached = 0
      const call = Effect.suspend(() => {
        reached++
        return Effect.as(Effect.sleep("1 second"), "ok")
      })
      // Two slow calls, each hedged twice: 6 attempts for 3 tokens. A hedge the limiter refuses leaves its call's
      // other attempts running, and the first of them to answer answers the call.
      const calls = yield* Effect.forkChild(
        Effect.forEach([1, 2], () => policy.protect(call), { concurrency: "unbounded" })
      )
      yield* TestClock.adjust("2 seconds")
      assert.deepStrictEqual(yield* Fiber.join(calls), ["ok", "ok"])
      assert.strictEqual(reached, 3)
      assert.strictEqual((yield* limiter.snapshot).admitted, 3)
    }).pipe(Effect.provide(RateLimiter.layerStoreMemory)))

  it.effect("a hedged attempt never waits for a token: a call waiting for its slot reserves no more slots", () =>
    Effect.gen(function*() {
      const limiter = yield* RateLimiter.make({ name: "partner", limit: 1, window: "1 second", onExceeded: "delay" })
      const policy = yield* Policy.make({
        name: "partner",
        rateLimiter: limiter,
        hedge: yield* Hedge.make({ name: "partner", delay: "100 millis", maxHedges: 2 })
      })
      const call = Clock.currentTimeMillis
      // A takes the window's slot; B waits for the next window, which is no slowness of the dependency: its hedges,
      // refused a token, reserve nothing.
      const a = yield* Effect.forkChild(policy.protect(call))
      const b = yield* Effect.forkChild(policy.protect(call))
      yield* TestClock.adjust("1500 millis")
      assert.deepStrictEqual([yield* Fiber.join(a), yield* Fiber.join(b)], [0, 1000])
      // C, at 1.5 s, gets the next window's slot.
      const c = yield* Effect.forkChild(policy.protect(call))
      yield* TestClock.adjust("5 seconds")
      assert.strictEqual(yield* Fiber.join(c), 2000)
      assert.strictEqual((yield* limiter.snapshot).admitted, 3)
    }).pipe(Effect.provide(RateLimiter.layerStoreMemory)))

  describe("a hedge admitted by a fixed window in delay mode counts as the calls that wait do", () => {
    it.effect("a hedge in a window's last slot pushes the next caller to the next window", () =>
      Effect.gen(function*() {
        const { call, policy, reached } = yield* hedgedPartner("100 millis")
        const a = yield* Effect.forkChild(policy.protect(call))
        yield* TestClock.adjust("200 millis")
        assert.strictEqual(yield* Fiber.join(a), 100)
        // The primary at 0 and the hedge at 100 ms took the window's two slots: the next call waits for the next.
        const b = yield* Effect.forkChild(policy.protect(call))
        yield* TestClock.adjust("2 seconds")
        assert.strictEqual(yield* Fiber.join(b), 1000)
        assert.deepStrictEqual(reached, [0, 100, 1000])
      }).pipe(Effect.provide(RateLimiter.layerStoreMemory)))

    it.effect("a hedge that opens a window leaves its other slot to the next caller", () =>
      Effect.gen(function*() {
        const { call, policy, reached } = yield* hedgedPartner("600 millis")
        const a = yield* Effect.forkChild(policy.protect(call))
        yield* TestClock.adjust("700 millis")
        assert.strictEqual(yield* Fiber.join(a), 600)
        // The hedge at 600 ms took one of two slots: the call at 700 ms runs at once.
        const b = yield* Effect.forkChild(policy.protect(call))
        yield* TestClock.adjust("2 seconds")
        assert.strictEqual(yield* Fiber.join(b), 700)
        assert.deepStrictEqual(reached, [0, 600, 700])
      }).pipe(Effect.provide(RateLimiter.layerStoreMemory)))

    it.effect("a hedge that loses the room to another call keeps the later place it got, and fails", () =>
      Effect.gen(function*() {
        const memory = yield* RateLimiter.RateLimiterStore
        // Another instance reserves the window's last slot between the hedge's look for room and its reservation.
        let stealing = true
        const racy = RateLimiter.RateLimiterStore.of({
          ...memory,
          fixedWindow: (options) =>
            options.tokens === 0 && stealing
              ? Effect.tap(memory.fixedWindow(options), () => {
                stealing = false
                return memory.fixedWindow({ ...options, tokens: 1, limit: undefined })
              })
              : memory.fixedWindow(options)
        })
        const limiter = yield* Effect.provideService(
          RateLimiter.make({ name: "partner", limit: 2, window: "1 second", onExceeded: "delay" }),
          RateLimiter.RateLimiterStore,
          racy
        )
        const policy = yield* Policy.make({
          name: "partner",
          rateLimiter: limiter,
          hedge: yield* Hedge.make({ name: "partner", delay: "100 millis", maxHedges: 1 })
        })
        const reached: Array<number> = []
        const call = Effect.flatMap(Clock.currentTimeMillis, (now) => {
          reached.push(now)
          return Effect.as(Effect.sleep("300 millis"), now)
        })
        const a = yield* Effect.forkChild(policy.protect(call))
        yield* TestClock.adjust("200 millis")
        // The first window's slots: the primary's, the other instance's; the second's: the hedge's, which it keeps
        // though refused, and the next caller's. The caller after waits for the third.
        const later = yield* Effect.forkChild(
          Effect.all([policy.protect(call), policy.protect(call)], { concurrency: "unbounded" })
        )
        yield* TestClock.adjust("3 seconds")
        assert.deepStrictEqual([yield* Fiber.join(a), ...yield* Fiber.join(later)], [0, 1000, 2000])
        assert.deepStrictEqual(reached, [0, 1000, 2000])
        const snapshot = yield* limiter.snapshot
        // Each call's hedge was refused.
        assert.deepStrictEqual([snapshot.calls, snapshot.admitted, snapshot.rejected], [6, 3, 3])
      }).pipe(Effect.provide(RateLimiter.layerStoreMemory)))
  })

  it.effect("withFallback answers for whatever the parts finally fail with, piped or called", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ name: "llm" })
      const policy = yield* Policy.make({
        name: "llm",
        circuitBreaker: breaker,
        timeout: yield* Timeout.make({ name: "llm", duration: "1 second" })
      })
      const answer = (error: CircuitBreaker.Rejection | Timeout.TimeoutError | Unavailable) =>
        Effect.succeed(`fallback: ${error._tag === "CircuitBreakerError" ? error.reason._tag : error._tag}`)
      const call: Effect.Effect<string, Unavailable> = Effect.succeed("live")
      assert.strictEqual(yield* call.pipe(policy.protect, Policy.withFallback(answer)), "live")
      yield* breaker.forceOpen()
      assert.strictEqual(yield* call.pipe(policy.protect, Policy.withFallback(answer)), "fallback: CircuitForcedOpen")
      assert.strictEqual(yield* Policy.withFallback(policy.protect(call), answer), "fallback: CircuitForcedOpen")
      yield* breaker.reset()
      const slow = yield* Effect.forkChild(Policy.withFallback(policy.protect(Effect.never), answer))
      yield* TestClock.adjust("1 second")
      assert.strictEqual(yield* Fiber.join(slow), "fallback: TimeoutError")
    }))

  describe("a breaker's predicate that throws", () => {
    const misread = new Error("misread")
    // Breaker and timeout fused into one callback (see `Limiter.runGuarded`): the call settles there, not in a guard.
    const fused = Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make<string>({
        name: "http",
        trip: CircuitBreaker.consecutive(1),
        openDuration: "1 second",
        isFailureResult: (answer) => {
          if (answer === "garbled") throw misread
          return false
        }
      })
      const timeout = yield* Timeout.make({ name: "http", duration: "1 second" })
      return { breaker, policy: yield* Policy.make({ name: "http", circuitBreaker: breaker, timeout }) }
    })

    for (
      const [when, answer] of [["at once", Effect.succeed("garbled")], [
        "later",
        Effect.as(Effect.sleep("10 millis"), "garbled")
      ]] as const
    ) {
      it.effect(`settles the call as a defect the caller gets, on an answer that comes ${when}`, () =>
        Effect.gen(function*() {
          const { breaker, policy } = yield* fused
          const fiber = yield* Effect.forkChild(Effect.exit(policy.protect(answer)))
          yield* TestClock.adjust("10 millis")
          const exit = yield* Fiber.join(fiber)
          assert.deepStrictEqual(exit, Exit.die(misread))
          assert.strictEqual(yield* breaker.state, "Open")
          // A probe then settles too: the circuit opens again rather than wait on a lost probe for ever.
          yield* TestClock.adjust("1 second")
          const probe = yield* Effect.forkChild(Effect.exit(policy.protect(answer)))
          yield* TestClock.adjust("10 millis")
          assert.deepStrictEqual(yield* Fiber.join(probe), Exit.die(misread))
          assert.strictEqual(yield* breaker.state, "Open")
        }))
    }
  })

  describe("isFailureResult", () => {
    interface Response {
      readonly status: number
      readonly attempt: number
    }
    /** Answers `statuses[i]` on the i-th attempt (the last one from then on), as values. */
    const answering = (statuses: ReadonlyArray<number>) => {
      let attempt = 0
      return Effect.sync((): Response => {
        attempt++
        return { status: statuses[Math.min(attempt, statuses.length) - 1], attempt }
      })
    }

    it.effect("inside, a classified value is a failure for every part; outside, the caller gets the last value", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({ name: "http", trip: CircuitBreaker.consecutive(2) })
        const retry = yield* Retry.make({ name: "http", schedule: Retry.constant({ delay: "10 millis", times: 2 }) })
        const policy = yield* Policy.make({
          name: "http",
          circuitBreaker: breaker,
          retry,
          isFailureResult: (response: Response) => response.status >= 500
        })
        const first = yield* Effect.forkChild(policy.protect(answering([503])))
        yield* TestClock.adjust("1 second")
        // Retried twice, then given back as it is: the third answer, not the first.
        assert.deepStrictEqual(yield* Fiber.join(first), { status: 503, attempt: 3 })
        assert.strictEqual((yield* retry.snapshot).retries, 2)
        const counted = yield* breaker.snapshot
        assert.deepStrictEqual([counted.state, counted.failureCount, counted.successCount], ["Closed", 1, 0])
        // A second such call is the breaker's second consecutive failure: it opens, and rejects the next call.
        const second = yield* Effect.forkChild(policy.protect(answering([503])))
        yield* TestClock.adjust("1 second")
        assert.strictEqual((yield* Fiber.join(second)).status, 503)
        assert.strictEqual(yield* breaker.state, "Open")
        const rejected = yield* Effect.flip(policy.protect(answering([200])))
        assert.strictEqual(rejected._tag, "CircuitBreakerError")
      }))

    it.effect("a good value after classified ones is a success for every part", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({ name: "http", trip: CircuitBreaker.consecutive(1) })
        const policy = yield* Policy.make({
          name: "http",
          circuitBreaker: breaker,
          retry: yield* Retry.make({ name: "http", schedule: Retry.constant({ delay: "10 millis", times: 3 }) }),
          isFailureResult: (response: Response) => response.status >= 500
        })
        const fiber = yield* Effect.forkChild(policy.protect(answering([503, 502, 200])))
        yield* TestClock.adjust("1 second")
        assert.deepStrictEqual(yield* Fiber.join(fiber), { status: 200, attempt: 3 })
        const snapshot = yield* breaker.snapshot
        assert.deepStrictEqual([snapshot.state, snapshot.failureCount, snapshot.successCount], ["Closed", 0, 1])
      }))

    it.effect("without a retry, the breaker still counts a classified value and the caller still gets it", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({ name: "http", trip: CircuitBreaker.consecutive(1) })
        const policy = yield* Policy.make({
          name: "http",
          circuitBreaker: breaker,
          isFailureResult: (response: Response) => response.status >= 500
        })
        assert.deepStrictEqual(yield* policy.protect(answering([500])), { status: 500, attempt: 1 })
        assert.strictEqual(yield* breaker.state, "Open")
      }))

    it.effect("a breaker with its own isFailure still counts what the policy classified", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({
          name: "http",
          trip: CircuitBreaker.consecutive(1),
          // Only this error counts among the typed errors; the policy's classified values count whatever it says.
          isFailure: (error) => error instanceof Unavailable
        })
        const policy = yield* Policy.make({
          name: "http",
          circuitBreaker: breaker,
          isFailureResult: (response: Response) => response.status >= 500
        })
        assert.deepStrictEqual(yield* policy.protect(answering([503])), { status: 503, attempt: 1 })
        assert.strictEqual(yield* breaker.state, "Open")
      }))

    it.effect("a hedge takes a classified value as a failure: it waits for a better answer from another attempt", () =>
      Effect.gen(function*() {
        let attempt = 0
        // The primary answers 503 after 150 ms; the hedge, started at 100 ms, answers 200 at 200 ms.
        const call = Effect.suspend(() => {
          const n = ++attempt
          return n === 1
            ? Effect.as(Effect.sleep("150 millis"), { status: 503, attempt: n })
            : Effect.as(Effect.sleep("100 millis"), { status: 200, attempt: n })
        })
        const policy = yield* Policy.make({
          name: "http",
          hedge: yield* Hedge.make({ name: "http", delay: "100 millis" }),
          isFailureResult: (response: Response) => response.status >= 500
        })
        const fiber = yield* Effect.forkChild(policy.protect(call))
        yield* TestClock.adjust("150 millis")
        assert.isUndefined(fiber.pollUnsafe())
        yield* TestClock.adjust("50 millis")
        assert.deepStrictEqual(yield* Fiber.join(fiber), { status: 200, attempt: 2 })
      }))

    it.effect("options are validated: a name, and a function", () =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(
          Policy.make({ name: "", isFailureResult: "status >= 500" as unknown as (value: unknown) => boolean })
        )
        assert.strictEqual(error._tag, "PolicyConfigError")
        assert.deepStrictEqual(error.issues.map((issue) => issue.path), ["name", "isFailureResult"])
      }))
  })

  it.effect("errors accumulate in the type, so catchTag works for each part", () =>
    Effect.gen(function*() {
      const policy = yield* Policy.make({
        name: "typed",
        circuitBreaker: yield* CircuitBreaker.make({ name: "typed" }),
        timeout: yield* Timeout.make({ name: "typed", duration: "1 second" }),
        bulkhead: yield* Bulkhead.make({ name: "typed", maxConcurrent: 1 })
      })
      const handled: Effect.Effect<string, Unavailable> = policy.protect(Effect.fail(new Unavailable())).pipe(
        Effect.catchTags({
          CircuitBreakerError: () => Effect.succeed("rejected"),
          TimeoutError: () => Effect.succeed("slow"),
          BulkheadFull: () => Effect.succeed("busy")
        })
      )
      // The parts' rejections are handled; the call's own error is left, as the type says.
      assert.deepStrictEqual(yield* Effect.exit(handled), Exit.fail(new Unavailable()))
    }))

  it.effect("a named policy is listed in the registry with its parts' snapshots, once per name", () =>
    Effect.gen(function*() {
      yield* Policy.make({
        name: "search",
        circuitBreaker: yield* CircuitBreaker.make({ name: "search" }),
        bulkhead: yield* Bulkhead.make({ name: "search", maxConcurrent: 4 })
      })
      const [snapshot] = (yield* CircuitBreakerRegistry.policySnapshots) as ReadonlyArray<Policy.Snapshot>
      assert.strictEqual(snapshot.name, "search")
      assert.deepStrictEqual(snapshot.order, ["circuitBreaker", "bulkhead"])
      assert.strictEqual(snapshot.stages.bulkhead?.limit, 4)
      const error = yield* Effect.flip(Policy.make({ name: "search" }))
      assert.strictEqual(
        error.message,
        "Invalid options for policy \"search\":\n  name: Expected a name not yet registered, but \"search\" is taken"
      )
      // The snapshot is plain data.
      assert.deepStrictEqual(JSON.parse(JSON.stringify(snapshot)), snapshot)
    }).pipe(Effect.provide(Layer.fresh(CircuitBreakerRegistry.layer))))
})
