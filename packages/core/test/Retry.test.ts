import { assert, describe, it } from "@effect/vitest"
import { Cause, Clock, Data, Duration, Effect, Exit, Fiber, Metric, Random, Schedule, Schema, Stream } from "effect"
import { TestClock } from "effect/testing"
import * as CircuitBreaker from "../src/CircuitBreaker.ts"
import * as Retry from "../src/Retry.ts"
import { steppable } from "./clocks.ts"
import { interruptedAfter } from "./interruption.ts"

class Boom extends Data.TaggedError("Boom")<{
  readonly status: number
  readonly retryAfter?: Duration.Duration
}> {}

const boom = (status = 503, retryAfter?: Duration.Input) =>
  new Boom(retryAfter === undefined ? { status } : { status, retryAfter: Duration.fromInputUnsafe(retryAfter) })

/** A breaker's rejection, as a retry policy would see it from a breaker inside it (or downstream). */
const circuitOpen = (retryAfter: Duration.Duration, forced = false) =>
  new CircuitBreaker.CircuitBreakerError({
    reason: forced
      ? new CircuitBreaker.CircuitForcedOpen({ breaker: "inner", key: "default" })
      : new CircuitBreaker.CircuitOpen({ breaker: "inner", key: "default", retryAfter })
  })

/**
 * A dependency that fails with `failures[i]` on its i-th attempt, then succeeds with the number of attempts made.
 * `times` holds the clock at each attempt.
 */
const scripted = (failures: ReadonlyArray<Effect.Effect<never, Boom>>) => {
  const times: Array<number> = []
  const call = Effect.gen(function*() {
    times.push(yield* Clock.currentTimeMillis)
    const failure = failures[times.length - 1]
    if (failure !== undefined) return yield* failure
    return times.length
  })
  return { call, times }
}

/** A dependency that always fails with `error`, counting its attempts. */
const failing = (error: Boom = boom()) => {
  const state = { attempts: 0 }
  const call = Effect.suspend(() => {
    state.attempts++
    return Effect.fail(error)
  })
  return { call, state }
}

/** Runs `effect` in a fiber while the test clock moves on by `by`, and returns its exit. */
const settle = <A, E>(effect: Effect.Effect<A, E>, by: Duration.Input = "1 hour") =>
  Effect.gen(function*() {
    const fiber = yield* Effect.forkChild(effect)
    yield* TestClock.adjust(by)
    return yield* Fiber.await(fiber)
  })

/** Collects the events a policy publishes while `body` runs. */
const recording = <A, E, R, X, V>(retry: Retry.Retry<X, V>, body: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const seen: Array<Retry.RetryEvent> = []
    yield* retry.events.pipe(
      Stream.runForEach((event) => Effect.sync(() => seen.push(event))),
      Effect.forkScoped({ startImmediately: true })
    )
    const result = yield* body
    yield* Effect.yieldNow
    return { result, seen }
  })

const describeEvent = (event: Retry.RetryEvent): string =>
  event._tag === "Retrying"
    ? `Retrying #${event.attempt} ${event.errorTag} ${Duration.toMillis(event.delay)}ms @${event.at}`
    : event._tag === "GaveUp"
    ? `GaveUp #${event.attempt} ${event.reason} ${event.errorTag} @${event.at}`
    : `Succeeded #${event.attempt} @${event.at}`

/** Steps a schedule by hand (input ignored) until it ends or `max` steps, returning `[output, delay]` in millis. */
const steps = <O>(schedule: Schedule.Schedule<O>, max = 50) =>
  Effect.gen(function*() {
    const step = yield* Schedule.toStep(schedule)
    const out: Array<[O, number]> = []
    let now = 0
    for (let i = 0; i < max; i++) {
      const exit = yield* Effect.exit(step(now, undefined))
      if (Exit.isFailure(exit)) break
      const delay = Duration.toMillis(exit.value[1])
      out.push([exit.value[0], delay])
      now += delay
    }
    return out
  })

const delays = <O>(schedule: Schedule.Schedule<O>, max?: number) =>
  Effect.map(steps(schedule, max), (out) => out.map(([, delay]) => delay))

/** `millis` as a `Duration` holds it: rounded to the nanosecond. */
const ns = (millis: number) => Duration.toMillis(Duration.millis(millis))

/** The first `n` draws of `Random.next` under `seed`. */
const draws = (seed: number, n: number) =>
  Effect.all(Array.from({ length: n }, () => Random.next)).pipe(Random.withSeed(seed))

/** What a schedule constructor throws, as `path: message` lines (none when it does not throw). */
const thrown = (f: () => unknown): ReadonlyArray<string> => {
  const exit = Effect.runSyncExit(Effect.sync(f))
  if (Exit.isSuccess(exit)) return []
  const error = Cause.squash(exit.cause) as {
    readonly _tag: string
    readonly issues: ReadonlyArray<{ readonly path: string; readonly message: string }>
  }
  assert.strictEqual(error._tag, "PolicyConfigError")
  return error.issues.map((issue) => `${issue.path}: ${issue.message}`)
}

const invalid = (options: Retry.Options) =>
  Retry.make(options).pipe(
    Effect.flip,
    Effect.map((error) => error.issues.map((issue) => `${issue.path}: ${issue.message}`))
  )

const metricValue = (id: string, attributes: Record<string, string> = {}) =>
  Metric.snapshot.pipe(Effect.map((all) => {
    const found = all.find((m) =>
      m.id === id && m.attributes?.["policy"] === "db" &&
      Object.entries(attributes).every(([k, v]) => m.attributes?.[k] === v)
    )
    const state = found?.state as { readonly count?: number } | undefined
    return state?.count
  }))

const fast = Retry.constant({ delay: "100 millis", times: 3 })

describe("Retry", () => {
  describe("backoff schedules", () => {
    it.effect("exponential: base * factor^n, capped, for `times` retries, the output being the delay", () =>
      Effect.gen(function*() {
        assert.deepStrictEqual(
          yield* steps(Retry.exponential({ base: "100 millis", cap: "1 second", times: 6 })),
          [100, 200, 400, 800, 1000, 1000].map((ms) => [Duration.millis(ms), ms])
        )
        assert.deepStrictEqual(
          yield* delays(Retry.exponential({ base: "10 millis", factor: 3, times: 4 })),
          [10, 30, 90, 270]
        )
      }))

    it.effect("linear: base, 2 base, 3 base..., capped", () =>
      Effect.gen(function*() {
        assert.deepStrictEqual(yield* delays(Retry.linear({ base: "250 millis", times: 4 })), [250, 500, 750, 1000])
        assert.deepStrictEqual(
          yield* steps(Retry.linear({ base: "1 second", cap: "2500 millis", times: 4 })),
          [1000, 2000, 2500, 2500].map((ms) => [Duration.millis(ms), ms])
        )
      }))

    it.effect("fibonacci: base, base, 2 base, 3 base, 5 base..., capped", () =>
      Effect.gen(function*() {
        assert.deepStrictEqual(yield* delays(Retry.fibonacci({ base: "100 millis", times: 6 })), [
          100,
          100,
          200,
          300,
          500,
          800
        ])
        assert.deepStrictEqual(yield* delays(Retry.fibonacci({ base: "100 millis", cap: "250 millis", times: 5 })), [
          100,
          100,
          200,
          250,
          250
        ])
      }))

    it.effect("constant: the same delay `times` times; times 0 makes no retry", () =>
      Effect.gen(function*() {
        assert.deepStrictEqual(
          yield* steps(Retry.constant({ delay: "500 millis", times: 3 })),
          [500, 500, 500].map((ms) => [Duration.millis(ms), ms])
        )
        assert.deepStrictEqual(yield* delays(Retry.constant({ delay: 0, times: 2 })), [0, 0])
        assert.deepStrictEqual(yield* delays(Retry.exponential({ base: "1 second", times: 0 })), [])
      }))

    it("constructors throw PolicyConfigError naming the option and the expected value", () => {
      assert.deepStrictEqual(thrown(() => Retry.exponential({ base: -1, times: 3 })), [
        "base: Expected a positive duration, got -1 millis"
      ])
      assert.deepStrictEqual(thrown(() => Retry.exponential({ base: "1 second", factor: 0.5, times: 1.5 })), [
        "times: Expected an integer, got 1.5",
        "factor: Expected a value greater than or equal to 1, got 0.5"
      ])
      assert.deepStrictEqual(
        thrown(() => Retry.linear({ base: "1 second", cap: "soon" as Duration.Input, times: -1 })),
        [
          "cap: Expected a duration, got \"soon\", which is not a duration: use a number of milliseconds, " +
          "a Duration, or \"<amount> <unit>\" with a unit among nanos, micros, millis, seconds, minutes, hours, days, weeks " +
          "(\"30 seconds\")",
          "times: Expected a value greater than or equal to 0, got -1"
        ]
      )
      assert.deepStrictEqual(thrown(() => Retry.constant({ delay: -5, times: 1 })), [
        "delay: Expected a non-negative duration, got -5 millis"
      ])
      // A cap below the base would make every delay the cap: a unit mistake, caught by every backoff alike.
      for (
        const backoff of [Retry.decorrelatedJitter, Retry.exponential, Retry.linear, Retry.fibonacci] as const
      ) {
        assert.deepStrictEqual(
          thrown(() => backoff({ base: "1 second", cap: "500 millis", times: 3 })),
          ["cap: Expected at least base (1000 millis), got \"500 millis\""]
        )
      }
      // A cap equal to the base is a constant delay, not a mistake.
      for (
        const backoff of [Retry.decorrelatedJitter, Retry.exponential, Retry.linear, Retry.fibonacci] as const
      ) {
        assert.deepStrictEqual(thrown(() => backoff({ base: "1 second", cap: "1 second", times: 3 })), [])
      }
      assert.deepStrictEqual(thrown(() => Retry.fibonacci({ base: "1 second", times: 2 })), [])
    })
  })

  describe("jitter", () => {
    it.effect("fullJitter: each delay d becomes d * draw, exactly, under Random.withSeed", () =>
      Effect.gen(function*() {
        const schedule = Retry.exponential({ base: "100 millis", cap: "1 second", times: 5 }).pipe(Retry.fullJitter)
        const got = yield* steps(schedule).pipe(Random.withSeed(42))
        const drawn = yield* draws(42, 5)
        const nominal = [100, 200, 400, 800, 1000]
        assert.deepStrictEqual(got.map(([, delay]) => delay), nominal.map((d, i) => ns(d * drawn[i])))
        // The output stays the un-jittered delay.
        assert.deepStrictEqual(got.map(([output]) => output), nominal.map((d) => Duration.millis(d)))
        // The same seed replays the same delays.
        assert.deepStrictEqual(yield* steps(schedule).pipe(Random.withSeed(42)), got)
      }))

    it.effect("equalJitter: each delay d becomes d/2 + d/2 * draw, exactly", () =>
      Effect.gen(function*() {
        const schedule = Retry.linear({ base: "200 millis", times: 4 }).pipe(Retry.equalJitter)
        const got = yield* delays(schedule).pipe(Random.withSeed("equal"))
        const drawn = yield* Effect.all(Array.from({ length: 4 }, () => Random.next)).pipe(Random.withSeed("equal"))
        assert.deepStrictEqual(got, [200, 400, 600, 800].map((d, i) => ns(d / 2 + d / 2 * drawn[i])))
      }))

    it.effect.prop(
      "fullJitter stays in [0, d), equalJitter in [d/2, d), jittered in [0.8 d, 1.2 d)",
      [Schema.Int],
      ([seed]) =>
        Effect.gen(function*() {
          const nominal = [50, 100, 200, 400, 800, 1600, 3200, 5000]
          const base = Retry.exponential({ base: "50 millis", cap: "5 seconds", times: nominal.length })
          const full = yield* delays(Retry.fullJitter(base))
          const equal = yield* delays(Retry.equalJitter(base))
          const proportional = yield* delays(Retry.jittered(base))
          nominal.forEach((d, i) => {
            assert.isTrue(full[i] >= 0 && full[i] < d, `full ${full[i]} for ${d}`)
            assert.isTrue(equal[i] >= d / 2 && equal[i] < d, `equal ${equal[i]} for ${d}`)
            assert.isTrue(proportional[i] >= 0.8 * d && proportional[i] <= 1.2 * d, `jittered ${proportional[i]}`)
          })
        }).pipe(Random.withSeed(seed)),
      { arbitrary: { runs: 200 } }
    )

    it.effect("decorrelatedJitter: min(cap, between(base, previous * 3)), exactly, from base each run", () =>
      Effect.gen(function*() {
        const schedule = Retry.decorrelatedJitter({ base: "100 millis", cap: "2 seconds", times: 8 })
        const got = yield* delays(schedule).pipe(Random.withSeed(7))
        const drawn = yield* draws(7, 8)
        let previous = 100
        const expected = drawn.map((draw) => {
          previous = Math.min(2000, draw * (previous * 3 - 100) + 100)
          return ns(previous)
        })
        assert.deepStrictEqual(got, expected)
        // Each run of the schedule starts again from base: the first delay is in [base, 3 base).
        const again = yield* delays(schedule, 1).pipe(Random.withSeed(8))
        assert.isTrue(again[0] >= 100 && again[0] < 300)
      }))

    it.effect.prop(
      "decorrelatedJitter delays stay in [base, min(cap, 3 * previous)]",
      [Schema.Int],
      ([seed]) =>
        Effect.gen(function*() {
          const got = yield* delays(Retry.decorrelatedJitter({ base: "10 millis", cap: "1 second", times: 30 }))
          assert.strictEqual(got.length, 30)
          let previous = 10
          for (const delay of got) {
            assert.isTrue(delay >= 10 && delay <= Math.min(1000, previous * 3), `${delay} after ${previous}`)
            previous = delay
          }
        }).pipe(Random.withSeed(seed)),
      { arbitrary: { runs: 100 } }
    )

    it.effect("a seeded policy retries at exactly the jittered times", () =>
      Effect.gen(function*() {
        const retry = yield* Retry.make({
          name: "db",
          schedule: Retry.exponential({ base: "1 second", times: 3 }).pipe(Retry.fullJitter)
        })
        const { call, times } = scripted([Effect.fail(boom()), Effect.fail(boom()), Effect.fail(boom())])
        const exit = yield* settle(retry.protect(call).pipe(Random.withSeed(3)))
        assert.deepStrictEqual(exit, Exit.succeed(4))
        const [a, b, c] = yield* draws(3, 3)
        const t1 = ns(1000 * a)
        const t2 = t1 + ns(2000 * b)
        const t3 = t2 + ns(4000 * c)
        assert.strictEqual(times.length, 4)
        ;[0, t1, t2, t3].forEach((t, i) => assert.closeTo(times[i], t, 1e-6))
      }))
  })

  describe("policy", () => {
    it.effect("a call that succeeds at once never builds or steps the schedule, and publishes nothing", () =>
      Effect.gen(function*() {
        let built = 0
        let stepped = 0
        const counting = Schedule.fromStep(Effect.sync(() => {
          built++
          return (_now: number, _input: unknown) =>
            Effect.sync((): [number, Duration.Duration] => [stepped++, Duration.zero])
        })).pipe(Schedule.upTo({ times: 1 }))
        const retry = yield* Retry.make({ name: "db", schedule: counting })
        const { seen } = yield* recording(retry, Effect.repeat(retry.protect(Effect.succeed(1)), { times: 99 }))
        assert.deepStrictEqual([built, stepped, seen.length], [0, 0, 0])
        const { call } = scripted([Effect.fail(boom())])
        assert.strictEqual(yield* retry.protect(call), 2)
        assert.deepStrictEqual([built, stepped], [1, 1])
        const snapshot = yield* retry.snapshot
        assert.deepStrictEqual([snapshot.calls, snapshot.retries, snapshot.succeededAfterRetry], [101, 1, 1])
      }))

    it.effect("retries typed failures after the schedule's delays, and the success ends the call", () =>
      Effect.gen(function*() {
        const retry = yield* Retry.make({ name: "db", schedule: Retry.exponential({ base: "100 millis", times: 5 }) })
        const { call, times } = scripted([Effect.fail(boom()), Effect.fail(boom())])
        const { result, seen } = yield* recording(retry, settle(retry.protect(call)))
        assert.deepStrictEqual(result, Exit.succeed(3))
        assert.deepStrictEqual(times, [0, 100, 300])
        assert.deepStrictEqual(seen.map(describeEvent), [
          "Retrying #1 Boom 100ms @0",
          "Retrying #2 Boom 200ms @100",
          "Succeeded #3 @300"
        ])
      }))

    it.effect("gives up when the schedule ends, failing with the last error, unchanged", () =>
      Effect.gen(function*() {
        const retry = yield* Retry.make({ name: "db", schedule: fast })
        const last = boom(500)
        const { call, times } = scripted([
          Effect.fail(boom()),
          Effect.fail(boom()),
          Effect.fail(boom()),
          Effect.fail(last)
        ])
        const { result, seen } = yield* recording(retry, settle(retry.protect(call)))
        assert.deepStrictEqual(result, Exit.fail(last))
        assert.deepStrictEqual(times, [0, 100, 200, 300])
        assert.strictEqual(describeEvent(seen.at(-1)!), "GaveUp #4 ScheduleDone Boom @300")
        assert.deepStrictEqual((yield* retry.snapshot).giveUps, {
          ScheduleDone: 1,
          NotRetryable: 0,
          RetryAfterTooLong: 0,
          BudgetExhausted: 0
        })
      }))

    it.effect("never retries a defect", () =>
      Effect.gen(function*() {
        const retry = yield* Retry.make({ name: "db", schedule: fast })
        let attempts = 0
        const { result, seen } = yield* recording(
          retry,
          settle(retry.protect(Effect.suspend(() => {
            attempts++
            return Effect.die(new Error("bug"))
          })))
        )
        assert.strictEqual(attempts, 1)
        assert.isTrue(Exit.isFailure(result) && Cause.hasDies(result.cause))
        assert.deepStrictEqual(seen.map(describeEvent), ["GaveUp #1 NotRetryable Error @0"])
      }))

    it.effect("an interrupted attempt propagates at once: no retry, no event", () =>
      Effect.gen(function*() {
        const retry = yield* Retry.make({ name: "db", schedule: fast })
        let attempts = 0
        const { result, seen } = yield* recording(
          retry,
          settle(retry.protect(Effect.suspend(() => {
            attempts++
            return Effect.interrupt
          })))
        )
        assert.strictEqual(attempts, 1)
        assert.isTrue(Exit.hasInterrupts(result))
        assert.deepStrictEqual(seen, [])
      }))

    it.effect("interrupting the caller while it waits to retry stops the retries", () =>
      Effect.gen(function*() {
        const retry = yield* Retry.make({ name: "db", schedule: Retry.constant({ delay: "1 second", times: 5 }) })
        const { call, state } = failing()
        const fiber = yield* Effect.forkChild(retry.protect(call))
        yield* TestClock.adjust("1500 millis")
        assert.strictEqual(state.attempts, 2)
        yield* Fiber.interrupt(fiber)
        yield* TestClock.adjust("1 minute")
        assert.strictEqual(state.attempts, 2)
        assert.isTrue(Exit.hasInterrupts(yield* Fiber.await(fiber)))
      }))

    it.effect("`while` decides per error: 503 is retried, 404 fails at once", () =>
      Effect.gen(function*() {
        const retry = yield* Retry.make({
          name: "db",
          schedule: fast,
          while: (error) => error instanceof Boom && error.status === 503
        })
        const { call, times } = scripted([Effect.fail(boom(503)), Effect.fail(boom(404))])
        const { result, seen } = yield* recording(retry, settle(retry.protect(call)))
        assert.deepStrictEqual(result, Exit.fail(boom(404)))
        assert.deepStrictEqual(times, [0, 100])
        assert.deepStrictEqual(seen.map(describeEvent), [
          "Retrying #1 Boom 100ms @0",
          "GaveUp #2 NotRetryable Boom @100"
        ])
      }))

    it.effect("a `while` that throws: no retry, and the caller gets its error and the thrown value as defects", () =>
      Effect.gen(function*() {
        const misread = new Error("misread")
        const retry = yield* Retry.make({
          name: "db",
          schedule: fast,
          while: () => {
            throw misread
          }
        })
        const { call, state } = failing()
        const { result, seen } = yield* recording(retry, settle(retry.protect(call)))
        assert.strictEqual(state.attempts, 1)
        assert.deepStrictEqual(
          Exit.isFailure(result) && result.cause.reasons.map((reason) => Cause.isDieReason(reason) && reason.defect),
          [boom(), misread]
        )
        assert.deepStrictEqual(seen.map(describeEvent), ["GaveUp #1 NotRetryable Boom @0"])
      }))

    it("isRetryable: everything but a forced-open circuit, a spent budget and a config error", () => {
      const spent = new Retry.RetryBudgetExhausted({ policy: "db", attempts: 1, calls: 0, retries: 0, cause: null })
      assert.deepStrictEqual(
        [
          boom(),
          circuitOpen(Duration.seconds(1)),
          circuitOpen(Duration.infinity, true),
          spent,
          "text",
          null,
          new Error("x")
        ].map(Retry.isRetryable),
        [true, true, false, false, true, true, true]
      )
    })

    it.effect("waits a longer retryAfter instead of the schedule's delay (a breaker's open circuit)", () =>
      Effect.gen(function*() {
        const retry = yield* Retry.make({ name: "db", schedule: fast })
        const open = circuitOpen(Duration.seconds(2))
        const times: Array<number> = []
        const call = Effect.gen(function*() {
          times.push(yield* Clock.currentTimeMillis)
          if (times.length === 1) return yield* Effect.fail(open)
          if (times.length === 2) return yield* Effect.fail(boom(503, "50 millis"))
          return "ok"
        })
        const { result, seen } = yield* recording(retry, settle(retry.protect(call)))
        assert.deepStrictEqual(result, Exit.succeed("ok"))
        // 2 s from the breaker; then the schedule's 100 ms, longer than the error's 50 ms.
        assert.deepStrictEqual(times, [0, 2000, 2100])
        assert.deepStrictEqual(seen.map(describeEvent).slice(0, 2), [
          "Retrying #1 CircuitBreakerError 2000ms @0",
          "Retrying #2 Boom 100ms @2000"
        ])
      }))

    it.effect("gives up at once when retryAfter exceeds maxRetryAfter, or is infinite", () =>
      Effect.gen(function*() {
        const retry = yield* Retry.make({ name: "db", schedule: fast, maxRetryAfter: "5 seconds" })
        const tooLong = boom(429, "6 seconds")
        const { result, seen } = yield* recording(retry, settle(retry.protect(Effect.fail(tooLong)), "1 millis"))
        assert.deepStrictEqual(result, Exit.fail(tooLong))
        assert.deepStrictEqual(seen.map(describeEvent), ["GaveUp #1 RetryAfterTooLong Boom @0"])
        // Exactly maxRetryAfter is still waited for.
        const { call, times } = scripted([Effect.fail(boom(429, "5 seconds"))])
        assert.deepStrictEqual(yield* settle(retry.protect(call)), Exit.succeed(2))
        assert.strictEqual(times[1] - times[0], 5000)
        // Without maxRetryAfter, an infinite retryAfter (a forced-open breaker) still gives up.
        const eager = yield* Retry.make({ name: "eager", schedule: fast, while: () => true })
        const forced = circuitOpen(Duration.infinity, true)
        const { result: eagerResult, seen: eagerSeen } = yield* recording(
          eager,
          settle(eager.protect(Effect.fail(forced)), "1 millis")
        )
        assert.deepStrictEqual(eagerResult, Exit.fail(forced))
        assert.deepStrictEqual(eagerSeen.map((e) => e._tag === "GaveUp" ? e.reason : e._tag), ["RetryAfterTooLong"])
      }))

    it.effect("maxElapsed: no retry starts past it, counted from the first attempt's start", () =>
      Effect.gen(function*() {
        const retry = yield* Retry.make({
          name: "db",
          schedule: Retry.exponential({ base: "1 second", times: 10 }),
          maxElapsed: "5 seconds"
        })
        // Attempts at 0, 1, 3; the next would start at 7 > 5: the schedule gives up without sleeping.
        const { call, times } = scripted(Array.from({ length: 10 }, () => Effect.fail(boom())))
        const { result, seen } = yield* recording(retry, settle(retry.protect(call), "3 seconds"))
        assert.isTrue(Exit.isFailure(result))
        assert.deepStrictEqual(times, [0, 1000, 3000])
        assert.strictEqual(describeEvent(seen.at(-1)!), "GaveUp #3 ScheduleDone Boom @3000")
        // A retryAfter that would end past maxElapsed gives up at once too.
        const late = scripted([Effect.fail(boom(503, "1 second")), Effect.fail(boom(503, "6 seconds"))])
        const { seen: lateSeen } = yield* recording(retry, settle(retry.protect(late.call), "1 second"))
        assert.deepStrictEqual(late.times.map((t) => t - late.times[0]), [0, 1000])
        assert.strictEqual(describeEvent(lateSeen.at(-1)!), "GaveUp #2 RetryAfterTooLong Boom @4000")
      }))

    it.effect("maxElapsed is on the monotonic clock: a wall clock stepped forward ends no call early", () =>
      Effect.gen(function*() {
        const { clock, step } = yield* steppable
        const retry = yield* Retry.make({ name: "db", schedule: fast, maxElapsed: "1 second" })
        const { call, times } = scripted([Effect.fail(boom()), Effect.fail(boom())])
        const fiber = yield* Effect.forkChild(Effect.provideService(retry.protect(call), Clock.Clock, clock))
        yield* TestClock.adjust("50 millis")
        // An NTP correction a minute ahead while the call waits to retry: 150 ms of it have passed, not 60 s.
        step(60_000)
        yield* TestClock.adjust("1 second")
        assert.deepStrictEqual(yield* Fiber.await(fiber), Exit.succeed(3))
        assert.deepStrictEqual(times.length, 3)
      }))

    it.effect("maxElapsed is on the monotonic clock: a wall clock stepped back lets no retry start past it", () =>
      Effect.gen(function*() {
        const { clock, step } = yield* steppable
        const retry = yield* Retry.make({
          name: "db",
          schedule: Retry.constant({ delay: "300 millis", times: 20 }),
          maxElapsed: "1 second"
        })
        const { call, state } = failing()
        const fiber = yield* Effect.forkChild(Effect.provideService(retry.protect(call), Clock.Clock, clock))
        yield* TestClock.adjust("100 millis")
        step(-3_600_000)
        yield* TestClock.adjust("1 minute")
        assert.isTrue(Exit.isFailure(yield* Fiber.await(fiber)))
        // Attempts at 0, 300, 600 and 900 ms; the next would start at 1200 ms.
        assert.strictEqual(state.attempts, 4)
        assert.strictEqual((yield* retry.snapshot).giveUps.ScheduleDone, 1)
      }))

    it.effect("protect adds no error without a budget, and RetryBudgetExhausted with one", () =>
      Effect.gen(function*() {
        const plain = yield* Retry.make({ name: "plain", schedule: fast })
        const budgeted = yield* Retry.make({ name: "budgeted", schedule: fast, budget: yield* Retry.budget() })
        const call: Effect.Effect<number, Boom> = Effect.succeed(1)
        const a: Effect.Effect<number, Boom> = plain.protect(call)
        const b: Effect.Effect<number, Boom | Retry.RetryBudgetExhausted> = budgeted.protect(call)
        // Either policy fits where a `Retry` is expected (checked by the compiler).
        const policies: ReadonlyArray<Retry.Retry> = [plain, budgeted]
        assert.deepStrictEqual([yield* a, yield* b, ...policies.map((policy) => policy.name)], [
          1,
          1,
          "plain",
          "budgeted"
        ])
      }))

    it.effect("inside a circuit breaker, a retried call is one outcome for the breaker", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({ name: "cb", trip: CircuitBreaker.consecutive(2) })
        const retry = yield* Retry.make({ name: "db", schedule: Retry.constant({ delay: "10 millis", times: 2 }) })
        const { call, state } = failing()
        const first = yield* settle(call.pipe(retry.protect, breaker.protect))
        assert.isTrue(Exit.isFailure(first))
        assert.strictEqual(state.attempts, 3)
        const snapshot = yield* breaker.snapshot
        assert.deepStrictEqual([snapshot.state, snapshot.failureCount], ["Closed", 1])
      }))

    describe("isFailureResult", () => {
      interface Response {
        readonly status: number
        readonly attempt: number
      }
      /** A dependency that answers `statuses[i]` on its i-th attempt (the last one from then on), as values. */
      const answering = (statuses: ReadonlyArray<number>) => {
        const times: Array<number> = []
        const call = Effect.gen(function*() {
          times.push(yield* Clock.currentTimeMillis)
          const attempt = times.length
          return { status: statuses[Math.min(attempt, statuses.length) - 1], attempt } satisfies Response
        })
        return { call, times }
      }
      const is503 = (response: Response) => response.status === 503

      it.effect("retries a classified value on the schedule until a good one comes", () =>
        Effect.gen(function*() {
          const retry = yield* Retry.make({ name: "http", schedule: fast, isFailureResult: is503 })
          const { call, times } = answering([503, 503, 200])
          const { result, seen } = yield* recording(retry, settle(retry.protect(call)))
          assert.deepStrictEqual(result, Exit.succeed({ status: 200, attempt: 3 }))
          assert.deepStrictEqual(times, [0, 100, 200])
          assert.deepStrictEqual(seen.map(describeEvent), [
            "Retrying #1 FailureResult 100ms @0",
            "Retrying #2 FailureResult 100ms @100",
            "Succeeded #3 @200"
          ])
          const snapshot = yield* retry.snapshot
          assert.deepStrictEqual([snapshot.retries, snapshot.succeededAfterRetry], [2, 1])
        }))

      it.effect("when the schedule gives up, the call succeeds with the last value", () =>
        Effect.gen(function*() {
          const retry = yield* Retry.make({ name: "http", schedule: fast, isFailureResult: is503 })
          const { call, times } = answering([503])
          const { result, seen } = yield* recording(retry, settle(retry.protect(call)))
          // `fast` retries 3 times: the 4th answer is the one returned, not the first.
          assert.deepStrictEqual(result, Exit.succeed({ status: 503, attempt: 4 }))
          assert.strictEqual(times.length, 4)
          assert.strictEqual(describeEvent(seen.at(-1)!), "GaveUp #4 ScheduleDone FailureResult @300")
          assert.strictEqual((yield* retry.snapshot).giveUps.ScheduleDone, 1)
        }))

      it.effect("a classified value is retried whatever `while` says; errors still go through `while`", () =>
        Effect.gen(function*() {
          const retry = yield* Retry.make({ name: "http", schedule: fast, while: () => false, isFailureResult: is503 })
          const { call, times } = answering([503, 200])
          assert.deepStrictEqual(yield* settle(retry.protect(call)), Exit.succeed({ status: 200, attempt: 2 }))
          assert.strictEqual(times.length, 2)
          const { call: failingCall, state } = failing()
          assert.deepStrictEqual(yield* settle(retry.protect(failingCall)), Exit.fail(boom()))
          assert.strictEqual(state.attempts, 1)
        }))

      it.effect("a classified value the budget cannot pay to retry is returned, not RetryBudgetExhausted", () =>
        Effect.gen(function*() {
          const budget = yield* Retry.budget({ ratio: 0, minPerSecond: 0 })
          const retry = yield* Retry.make({ name: "http", schedule: fast, budget, isFailureResult: is503 })
          const { call } = answering([503])
          assert.deepStrictEqual(yield* settle(retry.protect(call)), Exit.succeed({ status: 503, attempt: 1 }))
          assert.strictEqual((yield* retry.snapshot).budgetRejections, 1)
        }))

      it.effect("a breaker outside sees the value the retry gave up on as a success: only the retry classifies", () =>
        Effect.gen(function*() {
          const breaker = yield* CircuitBreaker.make({ name: "cb", trip: CircuitBreaker.consecutive(1) })
          const retry = yield* Retry.make({ name: "http", schedule: fast, isFailureResult: is503 })
          const { call } = answering([503])
          const exit = yield* settle(call.pipe(retry.protect, breaker.protect))
          assert.deepStrictEqual(exit, Exit.succeed({ status: 503, attempt: 4 }))
          assert.strictEqual(yield* breaker.state, "Closed")
        }))
    })
  })

  describe("budget", () => {
    it.effect("1000 concurrent failing callers get exactly floor(ratio * calls + minPerSecond * window) retries", () =>
      Effect.gen(function*() {
        const budget = yield* Retry.budget({ ratio: 0.2, minPerSecond: 10, window: "10 seconds" })
        const retry = yield* Retry.make({ name: "db", schedule: fast, budget })
        // Each attempt yields before failing, so that the fibers' deposits and withdrawals interleave.
        const { call: fail, state } = failing()
        const call = Effect.andThen(Effect.yieldNow, fail)
        const fibers = yield* Effect.forEach(
          Array.from({ length: 1000 }),
          () => Effect.forkChild(Effect.flip(retry.protect(call)))
        )
        yield* TestClock.adjust("1 second")
        const errors = yield* Fiber.joinAll(fibers)
        const allowed = Math.floor(0.2 * 1000 + 10 * 10)
        assert.strictEqual(state.attempts, 1000 + allowed)
        const snapshot = yield* retry.snapshot
        assert.strictEqual(snapshot.retries, allowed)
        assert.deepStrictEqual(snapshot.budget, {
          ratio: 0.2,
          minPerSecond: 10,
          windowMillis: 10_000,
          calls: 1000,
          retries: allowed,
          available: 0
        })
        // Every caller ends with the budget's refusal, since none could spend its three retries.
        const exhausted = errors.filter((e) => e._tag === "RetryBudgetExhausted")
        assert.strictEqual(exhausted.length, 1000)
        assert.strictEqual(snapshot.budgetRejections, 1000)
        assert.strictEqual(snapshot.giveUps.BudgetExhausted, 1000)
      }))

    it.effect.prop(
      "sequential failing callers get exactly floor(ratio * calls) retries",
      [
        Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 150 })),
        Schema.Literals([0, 0.05, 0.1, 0.2, 0.29, 0.5, 1, 1.5])
      ],
      ([calls, ratio]) =>
        Effect.gen(function*() {
          const budget = yield* Retry.budget({ ratio, minPerSecond: 0 })
          const retry = yield* Retry.make({
            name: "db",
            schedule: Retry.constant({ delay: 0, times: 1000 }),
            budget
          })
          const { call, state } = failing()
          for (let i = 0; i < calls; i++) yield* Effect.flip(retry.protect(call))
          assert.strictEqual(state.attempts - calls, Math.floor(ratio * calls + 1e-9))
        }).pipe(Effect.scoped),
      { arbitrary: { runs: 100 } }
    )

    it.effect("the window is on the monotonic clock: a wall clock stepped forward leaves the retries counted", () =>
      Effect.gen(function*() {
        const { clock, step } = yield* steppable
        const onStepped = Effect.provideService(Clock.Clock, clock)
        const budget = yield* onStepped(Retry.budget({ ratio: 0, minPerSecond: 0.1, window: "10 seconds" }))
        const retry = yield* Retry.make({
          name: "db",
          schedule: Retry.constant({ delay: "0 millis", times: 1 }),
          budget
        })
        const { call, state } = failing()
        // The window's one retry (0.1/s over 10 s) goes to the first call; a minute's NTP step is no time passed.
        yield* Effect.flip(onStepped(retry.protect(call)))
        step(60_000)
        const error = yield* Effect.flip(onStepped(retry.protect(call)))
        assert.deepStrictEqual([state.attempts, error._tag], [3, "RetryBudgetExhausted"])
        assert.deepStrictEqual(yield* onStepped(budget.snapshot), {
          ratio: 0,
          minPerSecond: 0.1,
          windowMillis: 10_000,
          calls: 2,
          retries: 1,
          available: 0
        })
      }))

    it.effect("a refused retry fails at once with RetryBudgetExhausted, carrying the last error", () =>
      Effect.gen(function*() {
        const budget = yield* Retry.budget({ ratio: 0, minPerSecond: 0.1, window: "10 seconds" })
        const retry = yield* Retry.make({ name: "db", schedule: fast, budget })
        const last = boom(503)
        const { call } = failing(last)
        const { result, seen } = yield* recording(retry, settle(retry.protect(call), "1 second"))
        // One retry is allowed (0.1/s over 10 s), the next is refused at 100 ms.
        assert.isTrue(Exit.isFailure(result))
        const error = Exit.isFailure(result) ? Cause.squash(result.cause) : undefined
        assert.instanceOf(error, Retry.RetryBudgetExhausted)
        const spent = error as Retry.RetryBudgetExhausted
        assert.deepStrictEqual([spent.policy, spent.attempts, spent.calls, spent.retries], ["db", 2, 1, 1])
        assert.strictEqual(spent.cause, last)
        assert.strictEqual(
          spent.message,
          "Retry policy \"db\" gave up after 2 attempts: the retry budget is spent (1 retries for 1 calls in its window)"
        )
        assert.deepStrictEqual(seen.map(describeEvent), [
          "Retrying #1 Boom 100ms @0",
          "GaveUp #2 BudgetExhausted Boom @100"
        ])
      }))

    it.effect("the window slides: calls and retries older than the window no longer count", () =>
      Effect.gen(function*() {
        const budget = yield* Retry.budget({ ratio: 0, minPerSecond: 1, window: "10 seconds" })
        const retry = yield* Retry.make({ name: "db", schedule: Retry.constant({ delay: 0, times: 1 }), budget })
        const { call, state } = failing()
        const burst = (n: number) => Effect.repeat(Effect.flip(retry.protect(call)), { times: n - 1 })
        yield* burst(20)
        assert.strictEqual(state.attempts, 30)
        yield* TestClock.adjust("9999 millis")
        yield* burst(5)
        assert.strictEqual(state.attempts, 35)
        assert.strictEqual((yield* budget.snapshot).available, 0)
        yield* TestClock.adjust("1 millis")
        assert.deepStrictEqual(yield* budget.snapshot, {
          ratio: 0,
          minPerSecond: 1,
          windowMillis: 10_000,
          calls: 5,
          retries: 0,
          available: 10
        })
        yield* burst(20)
        assert.strictEqual(state.attempts, 35 + 20 + 10)
      }))

    it.effect("one budget is shared by several policies", () =>
      Effect.gen(function*() {
        const budget = yield* Retry.budget({ ratio: 0.5, minPerSecond: 0 })
        const schedule = Retry.constant({ delay: 0, times: 5 })
        const reads = yield* Retry.make({ name: "reads", schedule, budget })
        const writes = yield* Retry.make({ name: "writes", schedule, budget })
        for (let i = 0; i < 6; i++) yield* reads.protect(Effect.void)
        // 7 calls (6 of them by `reads`) pay for floor(0.5 * 7) = 3 retries of `writes`' one failing call.
        const { call, state } = failing()
        const error = yield* Effect.flip(writes.protect(call))
        assert.strictEqual(error._tag, "RetryBudgetExhausted")
        assert.strictEqual(state.attempts, 4)
        assert.deepStrictEqual((yield* budget.snapshot).retries, 3)
        assert.strictEqual((yield* reads.snapshot).budget?.retries, 3)
      }))

    it.effect("a caller interrupted while it waits to retry gets the retry back: not counted, not paid for", () =>
      Effect.gen(function*() {
        // One retry per window (0.1 per second over 10 seconds).
        const budget = yield* Retry.budget({ ratio: 0, minPerSecond: 0.1, window: "10 seconds" })
        const retry = yield* Retry.make({
          name: "db",
          schedule: Retry.constant({ delay: "5 seconds", times: 1 }),
          budget
        })
        const left = failing()
        const caller = yield* Effect.forkChild(retry.protect(left.call))
        // The first attempt failed at 0; its retry is due at 5 s, and the caller leaves at 1 s.
        yield* TestClock.adjust("1 second")
        yield* Fiber.interrupt(caller)
        assert.strictEqual(left.state.attempts, 1)
        const snapshot = yield* retry.snapshot
        assert.deepStrictEqual({ calls: snapshot.calls, retries: snapshot.retries }, { calls: 1, retries: 0 })
        assert.deepStrictEqual(snapshot.budget?.retries, 0)
        // The window's one retry is still there for the next caller.
        const next = failing()
        const waiting = yield* Effect.forkChild(Effect.flip(retry.protect(next.call)))
        yield* TestClock.adjust("5 seconds")
        assert.strictEqual((yield* Fiber.join(waiting))._tag, "Boom")
        assert.strictEqual(next.state.attempts, 2)
        assert.strictEqual((yield* retry.snapshot).retries, 1)
      }))

    it.effect("a caller interrupted at any point before its retry starts leaves nothing withdrawn", () =>
      Effect.gen(function*() {
        const leaks: Array<string> = []
        for (let turns = 0; turns < 120; turns++) {
          yield* Effect.scoped(Effect.gen(function*() {
            const budget = yield* Retry.budget({ ratio: 0, minPerSecond: 0.1, window: "10 seconds" })
            const retry = yield* Retry.make({
              name: "db",
              schedule: Retry.constant({ delay: "5 seconds", times: 1 }),
              budget
            })
            // The clock never moves: the retry's wait never ends, so no retry is ever made.
            yield* interruptedAfter(retry.protect(failing().call), turns)
            const made = (yield* retry.snapshot).retries
            const withdrawn = (yield* budget.snapshot).retries
            if (made !== withdrawn) leaks.push(`after ${turns} turns: made ${made}, withdrawn ${withdrawn}`)
          }))
        }
        assert.deepStrictEqual(leaks, [])
      }))

    it.effect("a retry refunded after its bucket left the window takes nothing from the retries since", () =>
      Effect.gen(function*() {
        const budget = yield* Retry.budget({ ratio: 0, minPerSecond: 0.2, window: "10 seconds" })
        const slow = yield* Retry.make({
          name: "slow",
          schedule: Retry.constant({ delay: "1 minute", times: 1 }),
          budget
        })
        const quick = yield* Retry.make({ name: "quick", schedule: fast, budget })
        const caller = yield* Effect.forkChild(slow.protect(failing().call))
        // The slow retry's withdrawal leaves the window while it waits; a quick call then spends the window's two.
        yield* TestClock.adjust("30 seconds")
        const { call, state } = failing()
        yield* Effect.forkChild(Effect.ignore(quick.protect(call)))
        yield* TestClock.adjust("1 second")
        assert.strictEqual(state.attempts, 3)
        yield* Fiber.interrupt(caller)
        assert.strictEqual((yield* budget.snapshot).retries, 2)
      }))
  })

  describe("events, metrics and snapshot", () => {
    it.effect("Effect metrics count calls, retries, give-ups by reason and budget rejections", () =>
      Effect.gen(function*() {
        const budget = yield* Retry.budget({ ratio: 0, minPerSecond: 0.1, window: "10 seconds" })
        const retry = yield* Retry.make({
          name: "db",
          schedule: fast,
          budget,
          while: (error) => error instanceof Boom && error.status !== 404
        })
        yield* retry.protect(Effect.void)
        yield* settle(retry.protect(Effect.fail(boom(404))))
        yield* settle(retry.protect(Effect.fail(boom(503))))
        assert.strictEqual(yield* metricValue("retry_calls_total"), 3)
        assert.strictEqual(yield* metricValue("retry_retries_total"), 1)
        assert.strictEqual(yield* metricValue("retry_give_ups_total", { reason: "NotRetryable" }), 1)
        assert.strictEqual(yield* metricValue("retry_give_ups_total", { reason: "BudgetExhausted" }), 1)
        assert.strictEqual(yield* metricValue("retry_give_ups_total", { reason: "ScheduleDone" }), 0)
        assert.strictEqual(yield* metricValue("retry_budget_rejections_total"), 1)
      }).pipe(Effect.provideService(Metric.MetricRegistry, new Map())))

    it.effect("metrics leave the registry when the policy's scope closes", () =>
      Effect.gen(function*() {
        yield* Effect.scoped(Retry.make({ name: "db", schedule: fast }))
        const left = (yield* Metric.snapshot).filter((m) => m.attributes?.["policy"] === "db")
        assert.deepStrictEqual(left, [])
      }).pipe(Effect.provideService(Metric.MetricRegistry, new Map())))

    it.effect("the snapshot is plain data", () =>
      Effect.gen(function*() {
        const retry = yield* Retry.make({ name: "db", schedule: fast })
        yield* settle(retry.protect(Effect.fail(boom())))
        const snapshot = yield* retry.snapshot
        assert.deepStrictEqual(JSON.parse(JSON.stringify(snapshot)), snapshot)
        assert.deepStrictEqual(snapshot, {
          name: "db",
          calls: 1,
          retries: 3,
          succeededAfterRetry: 0,
          giveUps: { ScheduleDone: 1, NotRetryable: 0, RetryAfterTooLong: 0, BudgetExhausted: 0 },
          budgetRejections: 0,
          budget: null
        })
      }))
  })

  describe("options", () => {
    it.effect("bad values fail with the option's path and the expected value", () =>
      Effect.gen(function*() {
        assert.deepStrictEqual(
          yield* invalid({
            name: "",
            schedule: "1 second" as unknown as Schedule.Schedule<unknown>,
            maxElapsed: 0,
            maxRetryAfter: "-1 seconds",
            eventBuffer: 0
          }),
          [
            "name: Expected a value with a length of at least 1, got \"\"",
            "schedule: Expected a Schedule, got \"1 second\"",
            "maxElapsed: Expected a positive duration, got 0 millis",
            "maxRetryAfter: Expected a non-negative duration, got -1000 millis",
            "eventBuffer: Expected a value greater than or equal to 1, got 0"
          ]
        )
        assert.deepStrictEqual(yield* invalid({ name: "db", schedule: fast, eventBuffer: 1e12 }), [
          "eventBuffer: Expected a value less than or equal to 100000, got 1000000000000"
        ])
        assert.deepStrictEqual(
          yield* invalid({ name: "db", schedule: fast, budget: {} as Retry.RetryBudget }),
          ["budget: Expected a RetryBudget made by Retry.budget"]
        )
        const badBudget = yield* Effect.flip(Retry.budget({ ratio: -1, minPerSecond: Infinity, window: 0 }))
        assert.deepStrictEqual(badBudget.issues.map((issue) => issue.path), ["ratio", "minPerSecond", "window"])
      }))
  })
})
