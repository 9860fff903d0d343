import { assert, describe, it } from "@effect/vitest"
import { Clock, Data, Effect, Fiber, Metric, Random, Schema, Stream } from "effect"
import { TestClock } from "effect/testing"
import * as Chaos from "../src/Chaos.ts"

class Unavailable extends Data.TaggedError("Unavailable")<{ readonly status: number }> {}

/** Runs `n` calls one after the other: true where the call was faulted. */
const faults = (chaos: Chaos.Chaos, n: number) =>
  Effect.forEach(
    Array.from({ length: n }),
    () => Effect.succeed(false).pipe(chaos.protect, Effect.catchTag("ChaosFault", () => Effect.succeed(true)))
  )

const count = (pattern: ReadonlyArray<boolean>) => pattern.filter(Boolean).length

const pattern = (seed: string, faultRate: number, n = 1000) =>
  Effect.gen(function*() {
    const chaos = yield* Chaos.make({ name: "db", faultRate })
    return yield* faults(chaos, n)
  }).pipe(Effect.scoped, Random.withSeed(seed))

const invalid = (options: Chaos.Options) =>
  Chaos.make(options).pipe(
    Effect.flip,
    Effect.map((error) => error.issues.map((issue) => `${issue.path}: ${issue.message}`))
  )

const metricValue = (id: string) =>
  Metric.snapshot.pipe(Effect.map((all) => {
    const found = all.find((m) => m.id === id && m.attributes?.["policy"] === "db")
    const state = found?.state as { readonly count?: number; readonly value?: number } | undefined
    return state?.count ?? state?.value
  }))

describe("Chaos", () => {
  describe("faults", () => {
    it.effect("faultRate 0 never faults and 1 always does, without running the call", () =>
      Effect.gen(function*() {
        assert.strictEqual(count(yield* pattern("a", 0)), 0)
        assert.strictEqual(count(yield* pattern("a", 1)), 1000)
        const chaos = yield* Chaos.make({ name: "db", faultRate: 1 })
        let runs = 0
        const error = yield* Effect.flip(chaos.protect(Effect.sync(() => runs++)))
        assert.strictEqual(error._tag, "ChaosFault")
        assert.strictEqual(error.message, "Chaos \"db\" injected a fault")
        assert.strictEqual(runs, 0)
      }))

    it.effect("the same seed gives the same faults; another seed, others", () =>
      Effect.gen(function*() {
        const first = yield* pattern("seed-1", 0.3, 200)
        assert.deepStrictEqual(yield* pattern("seed-1", 0.3, 200), first)
        assert.notDeepEqual(yield* pattern("seed-2", 0.3, 200), first)
      }))

    it.effect.prop(
      "over 1000 calls a seed's fault count is near faultRate * 1000",
      [Schema.String, Schema.Finite.check(Schema.isBetween({ minimum: 0, maximum: 1 }))],
      ([seed, faultRate]) =>
        Effect.gen(function*() {
          const n = count(yield* pattern(seed, faultRate))
          // Binomial(1000, p): its standard deviation is at most 15.8, so 80 is five of them.
          assert.isAtMost(Math.abs(n - faultRate * 1000), 80)
        }),
      { arbitrary: { runs: 30 } }
    )

    it.effect("a custom error replaces ChaosFault in the type and at run time", () =>
      Effect.gen(function*() {
        const chaos = yield* Chaos.make({ name: "db", faultRate: 1, error: () => new Unavailable({ status: 503 }) })
        // Typed: once Unavailable is handled nothing is left, so no ChaosFault hides in the union.
        const handled: Effect.Effect<string> = Effect.succeed("rows").pipe(
          chaos.protect,
          Effect.catchTag("Unavailable", (e) => Effect.succeed(`down ${e.status}`))
        )
        assert.strictEqual(yield* handled, "down 503")
      }))
  })

  describe("latency", () => {
    it.effect("a fixed delay holds every call that long on the clock", () =>
      Effect.gen(function*() {
        const chaos = yield* Chaos.make({ name: "db", latency: { delay: "2 seconds" } })
        const fiber = yield* Effect.forkChild(chaos.protect(Clock.currentTimeMillis))
        yield* TestClock.adjust("1999 millis")
        assert.isUndefined(fiber.pollUnsafe())
        yield* TestClock.adjust("1 millis")
        assert.strictEqual(yield* Fiber.join(fiber), 2000)
      }))

    it.effect("a fault comes after the delay, and the call still does not run", () =>
      Effect.gen(function*() {
        const chaos = yield* Chaos.make({ name: "db", faultRate: 1, latency: { delay: "1 second" } })
        let runs = 0
        const fiber = yield* Effect.forkChild(Effect.flip(chaos.protect(Effect.sync(() => runs++))))
        yield* TestClock.adjust("999 millis")
        assert.isUndefined(fiber.pollUnsafe())
        assert.strictEqual((yield* chaos.snapshot).faults, 0)
        yield* TestClock.adjust("1 millis")
        assert.strictEqual((yield* Fiber.join(fiber))._tag, "ChaosFault")
        assert.strictEqual(runs, 0)
      }))

    it.effect("a range draws each delay uniformly from [min, max]; rate delays that share of the calls", () =>
      Effect.gen(function*() {
        const chaos = yield* Chaos.make({ name: "db", latency: { rate: 0.5, min: "100 millis", max: "300 millis" } })
        const fiber = yield* Effect.forkChild(
          Effect.forEach(
            Array.from({ length: 400 }),
            () => chaos.protect(Clock.currentTimeMillis),
            { concurrency: "unbounded" }
          )
        )
        yield* TestClock.adjust("1 second")
        const times = yield* Fiber.join(fiber)
        const delayed = times.filter((t) => t > 0)
        assert.isTrue(times.every((t) => t === 0 || (t >= 100 && t <= 300)))
        assert.isAtLeast(delayed.length, 150)
        assert.isAtMost(delayed.length, 250)
        assert.strictEqual((yield* chaos.snapshot).delays, delayed.length)
        // Spread over the range, not stuck at one end.
        assert.isTrue(delayed.some((t) => t < 150) && delayed.some((t) => t > 250))
      }).pipe(Random.withSeed("latency")))
  })

  describe("run-time controls", () => {
    it.effect("disable lets every call through; enable and set turn the dependency bad again", () =>
      Effect.gen(function*() {
        const chaos = yield* Chaos.make({ name: "db", faultRate: 1 })
        assert.strictEqual(count(yield* faults(chaos, 3)), 3)
        yield* chaos.disable
        assert.strictEqual(count(yield* faults(chaos, 3)), 0)
        yield* chaos.enable
        assert.strictEqual(count(yield* faults(chaos, 3)), 3)
        const settings = yield* chaos.set({ faultRate: 0, latency: { delay: "1 second" } })
        assert.deepStrictEqual(settings, {
          enabled: true,
          faultRate: 0,
          latency: { rate: 1, minMillis: 1000, maxMillis: 1000 },
          outcomeRate: 0
        })
        assert.deepStrictEqual(yield* chaos.current, settings)
        yield* chaos.set({ latency: null })
        assert.strictEqual(count(yield* faults(chaos, 3)), 0)
        assert.strictEqual((yield* chaos.current).latency, null)
      }))

    it.effect("starts disabled with enabled: false", () =>
      Effect.gen(function*() {
        const chaos = yield* Chaos.make({ name: "db", faultRate: 1, enabled: false })
        assert.strictEqual(count(yield* faults(chaos, 5)), 0)
        assert.strictEqual((yield* chaos.snapshot).calls, 5)
      }))

    it.effect("a call reads the settings once, when it starts", () =>
      Effect.gen(function*() {
        const chaos = yield* Chaos.make({ name: "db", faultRate: 1, latency: { delay: "1 second" } })
        const fiber = yield* Effect.forkChild(Effect.flip(chaos.protect(Effect.succeed("ok"))))
        yield* TestClock.adjust("500 millis")
        yield* chaos.disable
        yield* TestClock.adjust("500 millis")
        assert.strictEqual((yield* Fiber.join(fiber))._tag, "ChaosFault")
      }))

    it.effect("changes streams the settings, then every change", () =>
      Effect.gen(function*() {
        const chaos = yield* Chaos.make({ name: "db" })
        const fiber = yield* chaos.changes.pipe(
          Stream.map((s) => `${s.enabled}/${s.faultRate}`),
          Stream.take(4),
          Stream.runCollect,
          Effect.forkChild({ startImmediately: true })
        )
        yield* chaos.set({ faultRate: 0.5 })
        yield* chaos.disable
        yield* chaos.enable
        assert.deepStrictEqual(yield* Fiber.join(fiber), ["true/0", "true/0.5", "false/0.5", "true/0.5"])
      }))

    it.effect("a bad patch fails like a bad option and changes nothing", () =>
      Effect.gen(function*() {
        const chaos = yield* Chaos.make({ name: "db", faultRate: 0.1 })
        const error = yield* Effect.flip(chaos.set({ faultRate: 1.5, latency: { min: "2 seconds", max: "1 second" } }))
        assert.deepStrictEqual(error.issues.map((issue) => issue.path), ["faultRate", "latency.max"])
        assert.strictEqual((yield* chaos.current).faultRate, 0.1)
        // `null` is no "unchanged" (that is `undefined`): it fails as it does in `make`.
        const nulls = yield* Effect.flip(
          chaos.set({ enabled: null, faultRate: null, outcomeRate: null } as unknown as Chaos.Patch)
        )
        assert.deepStrictEqual(nulls.issues.map((issue) => issue.path), ["enabled", "faultRate", "outcomeRate"])
        assert.strictEqual((yield* chaos.current).faultRate, 0.1)
      }))
  })

  describe("outcome injection", () => {
    it.effect("tamper replaces a share outcomeRate of the successes", () =>
      Effect.gen(function*() {
        const chaos = yield* Chaos.make({ name: "db", outcomeRate: 1 })
        const stale = Effect.succeed({ price: 10 }).pipe(chaos.tamper((quote) => ({ ...quote, price: 0 })))
        assert.deepStrictEqual(yield* stale, { price: 0 })
        yield* chaos.set({ outcomeRate: 0 })
        assert.deepStrictEqual(yield* stale, { price: 10 })
        // protect alone never tampers.
        yield* chaos.set({ outcomeRate: 1 })
        assert.deepStrictEqual(yield* chaos.protect(Effect.succeed({ price: 10 })), { price: 10 })
        assert.strictEqual((yield* chaos.snapshot).tampered, 1)
      }))

    it.effect("disabled, tamper leaves successes alone; a call tampers by the settings it started with", () =>
      Effect.gen(function*() {
        const chaos = yield* Chaos.make({ name: "db", outcomeRate: 1, latency: { delay: "1 second" } })
        const quote = Effect.succeed({ price: 10 }).pipe(chaos.tamper((q) => ({ ...q, price: 0 })))
        // Started with outcomeRate 1; the rate goes to 0 while it waits: still tampered.
        const started = yield* Effect.forkChild(quote)
        yield* TestClock.adjust("500 millis")
        yield* chaos.set({ outcomeRate: 0 })
        yield* TestClock.adjust("500 millis")
        assert.deepStrictEqual(yield* Fiber.join(started), { price: 0 })
        // Disabled: the dependency is good again, whatever outcomeRate says.
        yield* chaos.set({ outcomeRate: 1 })
        yield* chaos.disable
        assert.deepStrictEqual(yield* quote, { price: 10 })
        assert.strictEqual((yield* chaos.snapshot).tampered, 1)
      }))
  })

  describe("snapshot and metrics", () => {
    it.effect("tamper counts its calls as protect does, enabled or disabled", () =>
      Effect.gen(function*() {
        const chaos = yield* Chaos.make({ name: "db", outcomeRate: 1 })
        const quote = Effect.succeed({ price: 10 }).pipe(chaos.tamper((q) => ({ ...q, price: 0 })))
        assert.deepStrictEqual(yield* quote, { price: 0 })
        yield* chaos.disable
        assert.deepStrictEqual(yield* quote, { price: 10 })
        const snapshot = yield* chaos.snapshot
        assert.deepStrictEqual([snapshot.calls, snapshot.tampered], [2, 1])
      }))

    it.effect("the snapshot holds the settings and the counts", () =>
      Effect.gen(function*() {
        const chaos = yield* Chaos.make({ name: "db", faultRate: 1, latency: { min: 0, max: "10 millis" } })
        const fiber = yield* Effect.forkChild(faults(chaos, 2))
        yield* TestClock.adjust("1 second")
        yield* Fiber.join(fiber)
        assert.deepStrictEqual(yield* chaos.snapshot, {
          name: "db",
          enabled: true,
          faultRate: 1,
          latency: { rate: 1, minMillis: 0, maxMillis: 10 },
          outcomeRate: 0,
          calls: 2,
          faults: 2,
          delays: 2,
          tampered: 0
        })
      }))

    it.effect("Effect metrics count calls, faults and delays, tagged with the policy", () =>
      Effect.gen(function*() {
        const chaos = yield* Chaos.make({ name: "db", faultRate: 1 })
        yield* faults(chaos, 3)
        yield* chaos.disable
        yield* faults(chaos, 2)
        assert.strictEqual(yield* metricValue("chaos_calls_total"), 5)
        assert.strictEqual(yield* metricValue("chaos_faults_total"), 3)
        assert.strictEqual(yield* metricValue("chaos_delays_total"), 0)
        assert.strictEqual(yield* metricValue("chaos_enabled"), 0)
      }).pipe(Effect.provideService(Metric.MetricRegistry, new Map())))
  })

  describe("options", () => {
    it.effect("bad values fail with the option's path and the expected value", () =>
      Effect.gen(function*() {
        assert.deepStrictEqual(
          yield* invalid({ name: "db", faultRate: -0.1, outcomeRate: 2, latency: { rate: 1.1, delay: "-1 second" } }),
          [
            "faultRate: Expected a probability in [0, 1], got -0.1",
            "latency.rate: Expected a probability in [0, 1], got 1.1",
            "latency.delay: Expected a non-negative duration, got -1000 millis",
            "outcomeRate: Expected a probability in [0, 1], got 2 (a share, not a percent: write 0.02 for 2%)"
          ]
        )
        assert.deepStrictEqual(yield* invalid({ name: "", latency: { min: "1 second", max: "10 millis" } }), [
          "name: Expected a value with a length of at least 1, got \"\"",
          "latency.max: Expected at least min (1000 millis), got 10 millis"
        ])
      }))
  })
})
