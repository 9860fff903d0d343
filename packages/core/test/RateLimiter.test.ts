import { assert, describe, it } from "@effect/vitest"
import { Clock, Data, Duration, Effect, Fiber, Layer, Metric, Schema } from "effect"
import { RateLimiter as EffectRateLimiter } from "effect/persistence"
import { TestClock } from "effect/testing"
import * as CircuitBreaker from "../src/CircuitBreaker.ts"
import * as RateLimiter from "../src/RateLimiter.ts"

class Boom extends Data.TaggedError("Boom") {}

const memory = <A, E, R>(effect: Effect.Effect<A, E, R>) => effect.pipe(Effect.provide(RateLimiter.layerStoreMemory))

/** Runs `n` calls one after the other; each is "ok" or the rejection's tag and retryAfter in millis. */
const burst = (limiter: RateLimiter.RateLimiter, n: number) =>
  Effect.forEach(Array.from({ length: n }), () =>
    Effect.succeed("ok").pipe(
      limiter.protect,
      Effect.catchReason(
        "RateLimiterError",
        "RateLimited",
        (e) => Effect.succeed(`RateLimited ${Duration.toMillis(e.retryAfter)}`)
      )
    ))

const invalid = (options: RateLimiter.Options) =>
  RateLimiter.make(options).pipe(
    Effect.flip,
    Effect.map((error) => error.issues.map((issue) => `${issue.path}: ${issue.message}`)),
    memory
  )

/** A store whose every operation fails, as Redis does when it is down. */
const storeDown = new EffectRateLimiter.RateLimiterError({
  reason: new EffectRateLimiter.RateLimitStoreError({ message: "connection refused" })
})
const StoreDown = Layer.succeed(RateLimiter.RateLimiterStore, {
  fixedWindow: () => Effect.fail(storeDown),
  tokenBucket: () => Effect.fail(storeDown),
  adaptiveConsume: () => Effect.fail(storeDown),
  adaptiveFeedback: () => Effect.fail(storeDown)
})

/** Forks `n` calls at once and returns the clock time at which each ran. */
const startTimes = (limiter: RateLimiter.RateLimiter, n: number, until: Duration.Input) =>
  Effect.gen(function*() {
    const fiber = yield* Effect.forkChild(
      Effect.forEach(
        Array.from({ length: n }),
        () => limiter.protect(Clock.currentTimeMillis),
        { concurrency: "unbounded" }
      )
    )
    yield* TestClock.adjust(until)
    return yield* Fiber.join(fiber)
  })

const metricValue = (id: string) =>
  Metric.snapshot.pipe(Effect.map((all) => {
    const found = all.find((m) => m.id === id && m.attributes?.["policy"] === "api")
    return (found?.state as { readonly count?: number } | undefined)?.count
  }))

describe("RateLimiter", () => {
  describe("fixed window", () => {
    it.effect("admits limit calls in a burst, rejects the next until the window has passed", () =>
      Effect.gen(function*() {
        const limiter = yield* RateLimiter.make({ name: "api", limit: 3, window: "1 second" })
        assert.deepStrictEqual(yield* burst(limiter, 4), ["ok", "ok", "ok", "RateLimited 1000"])
        yield* TestClock.adjust("400 millis")
        // retryAfter is the time left until the counter resets.
        assert.deepStrictEqual(yield* burst(limiter, 1), ["RateLimited 600"])
        yield* TestClock.adjust("599 millis")
        assert.deepStrictEqual(yield* burst(limiter, 1), ["RateLimited 1"])
        yield* TestClock.adjust("1 millis")
        assert.deepStrictEqual(yield* burst(limiter, 4), ["ok", "ok", "ok", "RateLimited 1000"])
      }).pipe(memory))

    it.effect("the window lasts `window` from the first admitted call, however the calls are spread over it", () =>
      Effect.gen(function*() {
        const limiter = yield* RateLimiter.make({ name: "api", limit: 2, window: "1 second" })
        assert.deepStrictEqual(yield* burst(limiter, 1), ["ok"])
        // Half the budget used at 0:00.600 does not end the window sooner: the second token, then a rejection.
        yield* TestClock.adjust("600 millis")
        assert.deepStrictEqual(yield* burst(limiter, 2), ["ok", "RateLimited 400"])
        yield* TestClock.adjust("400 millis")
        assert.deepStrictEqual(yield* burst(limiter, 3), ["ok", "ok", "RateLimited 1000"])
      }).pipe(memory))

    it.effect.prop(
      "a burst of n calls admits exactly min(n, limit)",
      [
        Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 20 })),
        Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 40 }))
      ],
      ([limit, n]) =>
        Effect.gen(function*() {
          const limiter = yield* RateLimiter.make({ name: "api", limit, window: "1 minute" })
          const results = yield* burst(limiter, n)
          assert.strictEqual(results.filter((r) => r === "ok").length, Math.min(n, limit))
          // The store counts in fractions of window / limit: rounded up, retryAfter may be a millisecond over.
          assert.isTrue(results.slice(limit).every((r) => r === "RateLimited 60000" || r === "RateLimited 60001"))
        }).pipe(Effect.scoped, memory),
      { arbitrary: { runs: 100 } }
    )

    it.effect("a rejected call does not run and takes no token", () =>
      Effect.gen(function*() {
        const limiter = yield* RateLimiter.make({ name: "api", limit: 1, window: "1 second" })
        let runs = 0
        const call = Effect.sync(() => ++runs).pipe(limiter.protect)
        yield* call
        const error = yield* Effect.flip(call)
        assert.strictEqual(error.reason._tag, "RateLimited")
        assert.strictEqual(runs, 1)
        yield* TestClock.adjust("1 second")
        assert.strictEqual(yield* call, 2)
      }).pipe(memory))
  })

  describe("token bucket", () => {
    it.effect("admits a burst of limit, then one call per window / limit", () =>
      Effect.gen(function*() {
        const limiter = yield* RateLimiter.make({
          name: "api",
          limit: 4,
          window: "1 second",
          algorithm: "token-bucket"
        })
        assert.deepStrictEqual(yield* burst(limiter, 5), ["ok", "ok", "ok", "ok", "RateLimited 250"])
        yield* TestClock.adjust("100 millis")
        assert.deepStrictEqual(yield* burst(limiter, 1), ["RateLimited 150"])
        yield* TestClock.adjust("150 millis")
        assert.deepStrictEqual(yield* burst(limiter, 2), ["ok", "RateLimited 250"])
        yield* TestClock.adjust("1 second")
        assert.deepStrictEqual(yield* burst(limiter, 5), ["ok", "ok", "ok", "ok", "RateLimited 250"])
      }).pipe(memory))

    it.effect("tokens per call: a call costing 2 of a limit of 5 is admitted twice, then waits for 2 tokens", () =>
      Effect.gen(function*() {
        const limiter = yield* RateLimiter.make({
          name: "api",
          limit: 5,
          window: "5 seconds",
          algorithm: "token-bucket",
          tokens: 2
        })
        assert.deepStrictEqual(yield* burst(limiter, 3), ["ok", "ok", "RateLimited 1000"])
      }).pipe(memory))
  })

  describe("delay mode", () => {
    it.effect("fixed window: calls over the limit wait for the window they reserved", () =>
      Effect.gen(function*() {
        const limiter = yield* RateLimiter.make({ name: "api", limit: 2, window: "1 second", onExceeded: "delay" })
        assert.deepStrictEqual(yield* startTimes(limiter, 5, "3 seconds"), [0, 0, 1000, 1000, 2000])
        const snapshot = yield* limiter.snapshot
        assert.deepStrictEqual([snapshot.calls, snapshot.admitted, snapshot.delayed, snapshot.rejected], [5, 5, 3, 0])
      }).pipe(memory))

    it.effect("token bucket: calls over the limit run as tokens come back", () =>
      Effect.gen(function*() {
        const limiter = yield* RateLimiter.make({
          name: "api",
          limit: 2,
          window: "1 second",
          algorithm: "token-bucket",
          onExceeded: "delay"
        })
        assert.deepStrictEqual(yield* startTimes(limiter, 5, "3 seconds"), [0, 0, 500, 1000, 1500])
      }).pipe(memory))

    it.effect("waits exactly the delay Effect's limiter reports: not a millisecond less", () =>
      Effect.gen(function*() {
        const limiter = yield* RateLimiter.make({ name: "api", limit: 1, window: "1 second", onExceeded: "delay" })
        const reference = yield* EffectRateLimiter.make
        const twin = { key: "twin", limit: 1, window: "1 second", onExceeded: "delay" } as const
        // The same history on the limiter's key and on a twin key of the same store.
        yield* limiter.protect(Effect.void)
        yield* reference.consume(twin)
        yield* TestClock.adjust("300 millis")
        const reported = Duration.toMillis((yield* reference.consume(twin)).delay)
        assert.strictEqual(reported, 700)
        let ran = false
        const fiber = yield* Effect.forkChild(limiter.protect(Effect.sync(() => (ran = true))))
        yield* TestClock.adjust(reported - 1)
        assert.isFalse(ran)
        yield* TestClock.adjust("1 millis")
        yield* Fiber.join(fiber)
        assert.isTrue(ran)
      }).pipe(memory))
  })

  describe("keys", () => {
    it.effect("protectKey keeps a budget per key; the error names the store key", () =>
      Effect.gen(function*() {
        const limiter = yield* RateLimiter.make({ name: "api", limit: 1, window: "1 second" })
        yield* Effect.succeed(1).pipe(limiter.protectKey("tenant-a"))
        yield* limiter.protectKey(Effect.succeed(1), "tenant-b")
        yield* limiter.protect(Effect.succeed(1))
        const error = yield* Effect.flip(Effect.succeed(1).pipe(limiter.protectKey("tenant-a")))
        assert.strictEqual(error.reason._tag, "RateLimited")
        assert.strictEqual(error.key, "api:tenant-a")
        assert.strictEqual((yield* limiter.snapshot).calls, 4)
      }).pipe(memory))

    it.effect("limiters on one store and one key share one budget", () =>
      Effect.gen(function*() {
        const a = yield* RateLimiter.make({ name: "a", key: "shared", limit: 2, window: "1 second" })
        const b = yield* RateLimiter.make({ name: "b", key: "shared", limit: 2, window: "1 second" })
        yield* a.protect(Effect.void)
        yield* b.protect(Effect.void)
        const error = yield* Effect.flip(a.protect(Effect.void))
        assert.strictEqual(error.reason._tag, "RateLimited")
        assert.strictEqual(error.key, "shared")
      }).pipe(memory))
  })

  describe("store errors", () => {
    it.effect("allow (the default): the call runs and the failure is counted", () =>
      Effect.gen(function*() {
        const limiter = yield* RateLimiter.make({ name: "api", limit: 1, window: "1 second" })
        assert.deepStrictEqual(yield* burst(limiter, 3), ["ok", "ok", "ok"])
        const snapshot = yield* limiter.snapshot
        assert.deepStrictEqual([snapshot.calls, snapshot.admitted, snapshot.storeErrors], [3, 3, 3])
      }).pipe(Effect.provide(StoreDown)))

    it.effect("fail: the call fails with RateLimiterStoreError and does not run", () =>
      Effect.gen(function*() {
        const limiter = yield* RateLimiter.make({ name: "api", limit: 1, window: "1 second", onStoreError: "fail" })
        let runs = 0
        const error = yield* Effect.flip(limiter.protect(Effect.sync(() => runs++)))
        assert.strictEqual(error._tag, "RateLimiterError")
        assert.strictEqual(error.reason._tag, "RateLimiterStoreError")
        // Nothing to wait for: a retry policy goes by its own schedule.
        assert.strictEqual(Duration.toMillis(error.retryAfter), 0)
        assert.strictEqual(
          error.message,
          "Rate limiter \"api\" (key \"api\") could not reach its store: connection refused"
        )
        assert.strictEqual(runs, 0)
      }).pipe(Effect.provide(StoreDown)))
  })

  describe("errors", () => {
    it.effect("protect adds exactly RateLimiterError: catchTag handles both reasons, catchReason one", () =>
      Effect.gen(function*() {
        const limiter = yield* RateLimiter.make({ name: "api", limit: 1, window: "1 second" })
        const call = (): Effect.Effect<string> =>
          Effect.succeed("ok").pipe(
            limiter.protect,
            Effect.catchTag("RateLimiterError", (e) => Effect.succeed(e.reason._tag))
          )
        assert.deepStrictEqual([yield* call(), yield* call()], ["ok", "RateLimited"])
        const onlyOverLimit: Effect.Effect<string, RateLimiter.RateLimiterError> = Effect.succeed("ok").pipe(
          limiter.protect,
          Effect.catchReason("RateLimiterError", "RateLimited", (reason) => Effect.succeed(reason.policy))
        )
        assert.strictEqual(yield* onlyOverLimit, "api")
      }).pipe(memory))

    it.effect("catchReason picks the store failure apart from the rate limit", () =>
      Effect.gen(function*() {
        const limiter = yield* RateLimiter.make({ name: "api", limit: 1, window: "1 second", onStoreError: "fail" })
        const outcome = yield* Effect.succeed("ok").pipe(
          limiter.protect,
          Effect.catchReason("RateLimiterError", "RateLimited", () => Effect.succeed("over the limit")),
          Effect.catchReason("RateLimiterError", "RateLimiterStoreError", (reason) => Effect.succeed(reason.detail))
        )
        assert.strictEqual(outcome, "connection refused")
      }).pipe(Effect.provide(StoreDown)))

    it.effect("RateLimited reads well and crosses a wire with its durations", () =>
      Effect.gen(function*() {
        const limiter = yield* RateLimiter.make({ name: "api", limit: 2, window: "1 minute" })
        yield* burst(limiter, 2)
        const error = yield* Effect.flip(limiter.protect(Effect.void))
        assert.strictEqual(error.message, "Rate limiter \"api\" (key \"api\") allows 2 per 1m; retry after 1m")
        assert.strictEqual(Duration.toMillis(error.retryAfter), 60000)
        const codec = Schema.toCodecJson(RateLimiter.RateLimiterError)
        const encoded = Schema.encodeSync(codec)(error)
        assert.deepStrictEqual(encoded, {
          _tag: "RateLimiterError",
          reason: {
            _tag: "RateLimited",
            policy: "api",
            key: "api",
            limit: 2,
            window: 60000,
            retryAfter: 60000
          }
        })
        const decoded = Schema.decodeSync(codec)(encoded)
        assert.strictEqual(Duration.toMillis(decoded.retryAfter), 60000)
        assert.strictEqual(decoded.reason._tag, "RateLimited")
      }).pipe(memory))

    it.effect("a breaker outside the limiter never counts a rejection as a failure", () =>
      Effect.gen(function*() {
        const limiter = yield* RateLimiter.make({ name: "api", limit: 1, window: "1 second" })
        const breaker = yield* CircuitBreaker.make({ name: "api", trip: CircuitBreaker.consecutive(1) })
        const call = Effect.fail(new Boom()).pipe(Effect.catchTag("Boom", () => Effect.void), limiter.protect)
        yield* breaker.protect(call)
        const error = yield* Effect.flip(breaker.protect(call))
        assert.strictEqual(error._tag, "RateLimiterError")
        assert.strictEqual(yield* breaker.state, "Closed")
      }).pipe(memory))
  })

  describe("snapshot and metrics", () => {
    it.effect("the snapshot holds the configuration and the counts", () =>
      Effect.gen(function*() {
        const limiter = yield* RateLimiter.make({ name: "api", limit: 2, window: "1 second" })
        yield* burst(limiter, 3)
        assert.deepStrictEqual(yield* limiter.snapshot, {
          name: "api",
          key: "api",
          algorithm: "fixed-window",
          limit: 2,
          windowMillis: 1000,
          tokens: 1,
          onExceeded: "fail",
          onStoreError: "allow",
          calls: 3,
          admitted: 2,
          rejected: 1,
          delayed: 0,
          storeErrors: 0
        })
      }).pipe(memory))

    it.effect("Effect metrics count calls, rejections and waits, tagged with the policy", () =>
      Effect.gen(function*() {
        const limiter = yield* RateLimiter.make({ name: "api", limit: 1, window: "1 second" })
        yield* burst(limiter, 3)
        assert.strictEqual(yield* metricValue("rate_limiter_calls_total"), 3)
        assert.strictEqual(yield* metricValue("rate_limiter_rejections_total"), 2)
        assert.strictEqual(yield* metricValue("rate_limiter_delayed_total"), 0)
        assert.strictEqual(yield* metricValue("rate_limiter_store_errors_total"), 0)
      }).pipe(memory, Effect.provideService(Metric.MetricRegistry, new Map())))

    it.effect("metrics leave the registry when the limiter's scope closes", () =>
      Effect.gen(function*() {
        yield* Effect.scoped(RateLimiter.make({ name: "api", limit: 1, window: "1 second" }))
        assert.deepStrictEqual((yield* Metric.snapshot).filter((m) => m.attributes?.["policy"] === "api"), [])
      }).pipe(memory, Effect.provideService(Metric.MetricRegistry, new Map())))
  })

  describe("options", () => {
    it.effect("bad values fail with the option's path and the expected value", () =>
      Effect.gen(function*() {
        assert.deepStrictEqual(
          yield* invalid({
            name: "api",
            limit: 0,
            window: "0 millis",
            algorithm: "sliding" as RateLimiter.Algorithm,
            tokens: -1
          }),
          [
            "limit: Expected a value greater than or equal to 1, got 0",
            "window: Expected a positive duration, got 0 millis",
            "algorithm: Expected \"fixed-window\" | \"token-bucket\", got \"sliding\"",
            "tokens: Expected a value greater than 0, got -1"
          ]
        )
        assert.deepStrictEqual(yield* invalid({ name: "api", limit: 2, window: "1 second", tokens: 3 }), [
          "tokens: Expected at most the limit (2), got 3"
        ])
        assert.deepStrictEqual(yield* invalid({ name: "", limit: 1.5, window: "soon" as Duration.Input }), [
          "name: Expected a value with a length of at least 1, got \"\"",
          "limit: Expected an integer, got 1.5",
          "window: Expected a duration, got \"soon\", which is not a duration: use a number of milliseconds, " +
          "a Duration, or \"<amount> <unit>\" with a unit among nanos, micros, millis, seconds, minutes, hours, days, weeks " +
          "(\"30 seconds\")"
        ])
      }))

    it.effect("layer provides the limiter as a service", () =>
      Effect.gen(function*() {
        const limiter = yield* RateLimiter.RateLimiter
        assert.strictEqual(yield* limiter.protect(Effect.succeed("ok")), "ok")
        assert.strictEqual(limiter.name, "api")
      }).pipe(
        Effect.provide(
          RateLimiter.layer({ name: "api", limit: 1, window: "1 second" }).pipe(
            Layer.provide(RateLimiter.layerStoreMemory)
          )
        )
      ))
  })
})
