import { assert, describe, it } from "@effect/vitest"
import {
  Clock,
  Context,
  Data,
  Deferred,
  Effect,
  Exit,
  Fiber,
  Layer,
  Metric,
  Random,
  Schema,
  Scope,
  Stream
} from "effect"
import { TestClock } from "effect/testing"
import * as HealthCheck from "../src/HealthCheck.ts"
import * as HealthMonitor from "../src/HealthMonitor.ts"
import { interruptedAfter, yieldTimes } from "./interruption.ts"

class Boom extends Data.TaggedError("Boom")<{ readonly message: string }> {}

type Mode = "ok" | "fail" | "warn" | "hang" | "die"

/** A check whose next outcome is set from outside; it records when each run started and each interruption. */
const scripted = (initial: Mode = "ok") => {
  let mode: Mode = initial
  let takes = 0
  const starts: Array<number> = []
  const interruptedAt: Array<number> = []
  const fibers: Array<Fiber.Fiber<unknown, unknown>> = []
  const check = Effect.gen(function*() {
    starts.push(yield* Clock.currentTimeMillis)
    yield* Effect.withFiber((fiber) => Effect.sync(() => fibers.push(fiber)))
    if (takes > 0) yield* Effect.sleep(takes)
    switch (mode) {
      case "fail":
        return yield* new Boom({ message: "connection refused" })
      case "warn":
        return yield* new HealthCheck.Warning({ message: "replication lag 12s" })
      case "hang":
        return yield* Effect.never
      case "die":
        return yield* Effect.die(new Error("kaboom"))
    }
  }).pipe(
    Effect.onInterrupt(() =>
      Effect.flatMap(Clock.currentTimeMillis, (now) => Effect.sync(() => interruptedAt.push(now)))
    )
  )
  return {
    check,
    starts,
    interruptedAt,
    fibers,
    set: (next: Mode) => {
      mode = next
    },
    takes: (millis: number) => {
      takes = millis
    }
  }
}

/** Subscribes to `changes` at once and collects them as they come. */
const collect = (monitor: HealthMonitor.HealthMonitor) =>
  Effect.gen(function*() {
    const out: Array<HealthMonitor.StatusChange> = []
    yield* monitor.changes.pipe(
      Stream.runForEach((change) => Effect.sync(() => out.push(change))),
      Effect.forkChild({ startImmediately: true })
    )
    return out
  })

/** Lets forked fibers (the change collector) catch up. */
const settle = Effect.gen(function*() {
  for (let i = 0; i < 20; i++) yield* Effect.yieldNow
})

const statusOf = (monitor: HealthMonitor.HealthMonitor, service: string) =>
  Effect.map(monitor.state(service), (state) => state.status)

const metricValue = (id: string, service: string) =>
  Metric.snapshot.pipe(Effect.map((all) => {
    const found = all.find((m) => m.id === id && m.attributes?.["service"] === service)
    const state = found?.state as { readonly count?: number; readonly value?: number } | undefined
    return state?.count ?? state?.value
  }))

const issuesOf = (error: { readonly issues: ReadonlyArray<{ readonly path: string; readonly message: string }> }) =>
  error.issues.map((issue) => `${issue.path}: ${issue.message}`)

// Start times of each check's runs over two minutes, from registration.
const staggered = (seed: number) =>
  Effect.gen(function*() {
    const start = yield* Clock.currentTimeMillis
    const monitor = yield* HealthMonitor.make()
    const checks = [0, 1, 2, 3, 4].map(() => scripted("ok"))
    for (const [i, s] of checks.entries()) {
      yield* monitor.register({ name: `svc-${i}`, check: s.check, interval: "10 seconds", jitter: 0.1 })
    }
    yield* TestClock.adjust("2 minutes")
    return checks.map((s) => s.starts.map((at) => at - start))
  }).pipe(Effect.scoped, Random.withSeed(seed))

/** A check that counts its runs, every second. */
const counted = () => {
  const state = { runs: 0 }
  const options = {
    name: "db",
    check: Effect.sync(() => {
      state.runs++
    }),
    interval: "1 second",
    jitter: 0
  } as const
  return { state, options }
}

describe("HealthMonitor", () => {
  describe("thresholds", () => {
    it.effect("a check starts Unknown, and a first failure below warningThreshold leaves it Unknown", () =>
      Effect.gen(function*() {
        const monitor = yield* HealthMonitor.make()
        const s = scripted("fail")
        yield* monitor.register({ name: "db", check: s.check, interval: "10 seconds", jitter: 0 })
        const state = yield* monitor.state("db")
        assert.strictEqual(state.status, "Unknown")
        assert.strictEqual(state.consecutiveFailures, 1)
        assert.strictEqual(state.totalFailures, 1)
        assert.strictEqual(state.lastError, "connection refused")
        assert.strictEqual(yield* monitor.status, "Unknown")
      }))

    it.effect("Unknown -> Degraded -> Unhealthy -> Healthy, each change published once", () =>
      Effect.gen(function*() {
        const monitor = yield* HealthMonitor.make()
        const changes = yield* collect(monitor)
        const s = scripted("fail")
        yield* monitor.register({ name: "db", check: s.check, interval: "10 seconds", jitter: 0 })
        assert.strictEqual(yield* statusOf(monitor, "db"), "Unknown")
        yield* TestClock.adjust("10 seconds")
        assert.strictEqual(yield* statusOf(monitor, "db"), "Degraded")
        yield* TestClock.adjust("10 seconds")
        assert.strictEqual(yield* statusOf(monitor, "db"), "Unhealthy")
        yield* TestClock.adjust("10 seconds")
        assert.strictEqual(yield* statusOf(monitor, "db"), "Unhealthy")
        s.set("ok")
        yield* TestClock.adjust("10 seconds")
        assert.strictEqual(yield* statusOf(monitor, "db"), "Healthy")
        yield* settle
        assert.deepStrictEqual(changes, [
          {
            service: "db",
            from: "Unknown",
            to: "Degraded",
            critical: true,
            error: "connection refused",
            at: 10_000,
            consecutiveFailures: 2
          },
          {
            service: "db",
            from: "Degraded",
            to: "Unhealthy",
            critical: true,
            error: "connection refused",
            at: 20_000,
            consecutiveFailures: 3
          },
          {
            service: "db",
            from: "Unhealthy",
            to: "Healthy",
            critical: true,
            error: null,
            at: 40_000,
            consecutiveFailures: 0
          }
        ])
        assert.deepStrictEqual(s.starts, [0, 10_000, 20_000, 30_000, 40_000])
      }))

    it.effect("one blip below warningThreshold changes nothing, and a success ends the streak", () =>
      Effect.gen(function*() {
        const monitor = yield* HealthMonitor.make()
        const changes = yield* collect(monitor)
        const s = scripted("ok")
        yield* monitor.register({ name: "db", check: s.check, interval: "10 seconds", jitter: 0 })
        s.set("fail")
        yield* TestClock.adjust("10 seconds")
        assert.strictEqual(yield* statusOf(monitor, "db"), "Healthy")
        s.set("ok")
        yield* TestClock.adjust("10 seconds")
        s.set("fail")
        yield* TestClock.adjust("10 seconds")
        const state = yield* monitor.state("db")
        // Two failures, but never two in a row.
        assert.strictEqual(state.status, "Healthy")
        assert.strictEqual(state.consecutiveFailures, 1)
        assert.strictEqual(state.totalFailures, 2)
        assert.strictEqual(state.totalChecks, 4)
        yield* settle
        assert.deepStrictEqual(changes.map((c) => `${c.from}->${c.to}`), ["Unknown->Healthy"])
      }))

    it.effect("Degraded goes back to Healthy on one success; equal thresholds go straight to Unhealthy", () =>
      Effect.gen(function*() {
        const monitor = yield* HealthMonitor.make()
        const a = scripted("fail")
        const b = scripted("fail")
        yield* monitor.register({ name: "a", check: a.check, interval: "1 second", jitter: 0 })
        yield* monitor.register({
          name: "b",
          check: b.check,
          interval: "1 second",
          jitter: 0,
          warningThreshold: 2,
          failureThreshold: 2
        })
        yield* TestClock.adjust("1 second")
        assert.strictEqual(yield* statusOf(monitor, "a"), "Degraded")
        assert.strictEqual(yield* statusOf(monitor, "b"), "Unhealthy")
        a.set("ok")
        yield* TestClock.adjust("1 second")
        assert.strictEqual(yield* statusOf(monitor, "a"), "Healthy")
      }))

    it.effect("a defect is a failure, with the defect's message", () =>
      Effect.gen(function*() {
        const monitor = yield* HealthMonitor.make()
        const s = scripted("die")
        yield* monitor.register({ name: "db", check: s.check, jitter: 0, warningThreshold: 1 })
        const state = yield* monitor.state("db")
        assert.strictEqual(state.status, "Degraded")
        assert.strictEqual(state.lastError, "kaboom")
      }))

    it.effect("a failure or defect that String() cannot convert counts, with its value, and the check runs on", () =>
      Effect.gen(function*() {
        const monitor = yield* HealthMonitor.make()
        // A null-prototype object (a parsed query string, a GraphQL result) has no toString.
        const bare = Object.assign(Object.create(null) as object, { code: "ECONNRESET" })
        const outcomes: ReadonlyArray<Effect.Effect<never, object>> = [
          Effect.fail(bare),
          Effect.die([bare]),
          Effect.fail({ code: 503 })
        ]
        let runs = 0
        yield* monitor.register({
          name: "db",
          check: Effect.suspend(() => outcomes[runs++ % outcomes.length]),
          interval: "1 second",
          jitter: 0
        })
        const errors: Array<string | null> = [(yield* monitor.state("db")).lastError]
        for (let i = 0; i < 2; i++) {
          yield* TestClock.adjust("1 second")
          errors.push((yield* monitor.state("db")).lastError)
        }
        assert.deepStrictEqual(errors, ["{\"code\":\"ECONNRESET\"}", "[{\"code\":\"ECONNRESET\"}]", "{\"code\":503}"])
        const state = yield* monitor.state("db")
        assert.deepStrictEqual([state.status, state.totalChecks, runs], ["Unhealthy", 3, 3])
      }))

    it.effect.prop(
      "runs follow the model: Unhealthy only at failureThreshold failures in a row, Healthy after any success",
      [Schema.Array(Schema.Literals(["ok", "fail", "warn"]))],
      ([outcomes]) =>
        Effect.gen(function*() {
          const monitor = yield* HealthMonitor.make()
          const s = scripted("ok")
          yield* monitor.register({ name: "db", check: s.check, interval: "1 hour", jitter: 0 })
          let streak = 0
          let status = "Healthy" as HealthMonitor.Status
          for (const outcome of outcomes) {
            s.set(outcome)
            const state = yield* monitor.runNow("db")
            if (outcome === "ok") {
              streak = 0
              status = "Healthy"
            } else if (outcome === "warn") {
              status = status === "Unhealthy" ? "Unhealthy" : "Degraded"
            } else {
              streak++
              status = streak >= 3 ? "Unhealthy" : streak >= 2 && status !== "Unhealthy" ? "Degraded" : status
            }
            assert.strictEqual(state.status, status)
            assert.strictEqual(state.consecutiveFailures, streak)
          }
        }).pipe(Effect.scoped),
      { arbitrary: { runs: 200 } }
    )
  })

  describe("warnings", () => {
    it.effect("a Warning makes a check Degraded at once, without counting a failure", () =>
      Effect.gen(function*() {
        const monitor = yield* HealthMonitor.make()
        const changes = yield* collect(monitor)
        const s = scripted("warn")
        yield* monitor.register({ name: "db", check: s.check, interval: "1 minute", jitter: 0 })
        const state = yield* monitor.state("db")
        assert.strictEqual(state.status, "Degraded")
        assert.strictEqual(state.consecutiveFailures, 0)
        assert.strictEqual(state.totalFailures, 0)
        assert.strictEqual(state.totalChecks, 1)
        assert.strictEqual(state.lastError, "replication lag 12s")
        s.set("ok")
        assert.strictEqual((yield* monitor.runNow("db")).status, "Healthy")
        yield* settle
        assert.deepStrictEqual(changes.map((c) => [c.to, c.error]), [["Degraded", "replication lag 12s"], [
          "Healthy",
          null
        ]])
      }))

    it.effect("a Warning neither counts toward the thresholds nor ends the streak, and leaves Unhealthy as is", () =>
      Effect.gen(function*() {
        const monitor = yield* HealthMonitor.make()
        const s = scripted("fail")
        yield* monitor.register({ name: "db", check: s.check, interval: "1 hour", jitter: 0 })
        s.set("warn")
        assert.strictEqual((yield* monitor.runNow("db")).status, "Degraded")
        s.set("fail")
        yield* monitor.runNow("db")
        const third = yield* monitor.runNow("db")
        assert.strictEqual(third.consecutiveFailures, 3)
        assert.strictEqual(third.status, "Unhealthy")
        s.set("warn")
        const warned = yield* monitor.runNow("db")
        assert.strictEqual(warned.status, "Unhealthy")
        assert.strictEqual(warned.consecutiveFailures, 3)
        assert.strictEqual(warned.consecutiveSuccesses, 0)
        s.set("ok")
        assert.strictEqual((yield* monitor.runNow("db")).status, "Healthy")
      }))
  })

  describe("timeouts", () => {
    it.effect("a run still going at the timeout is interrupted and fails; one ending before it passes", () =>
      Effect.gen(function*() {
        const monitor = yield* HealthMonitor.make()
        const s = scripted("ok")
        s.takes(4_999)
        yield* monitor.register({ name: "db", check: s.check, interval: "10 seconds", jitter: 0 })
        yield* TestClock.adjust("4999 millis")
        const passed = yield* monitor.state("db")
        assert.strictEqual(passed.status, "Healthy")
        assert.strictEqual(passed.responseTimeMillis, 4_999)
        assert.strictEqual(passed.lastCheckAt, 4_999)

        s.set("hang")
        yield* TestClock.adjust("10 seconds") // the next run starts at 14999
        yield* TestClock.adjust("4999 millis")
        assert.strictEqual((yield* monitor.state("db")).totalChecks, 1)
        assert.deepStrictEqual(s.interruptedAt, [])
        yield* TestClock.adjust("1 millis")
        const timedOut = yield* monitor.state("db")
        assert.strictEqual(timedOut.totalFailures, 1)
        assert.strictEqual(timedOut.lastError, "timed out after 5s")
        assert.strictEqual(timedOut.responseTimeMillis, 5_000)
        assert.strictEqual(timedOut.lastCheckAt, 19_999)
        assert.deepStrictEqual(s.interruptedAt, [19_999])
      }))

    it.effect("a run that ends at exactly the timeout has timed out, whatever its outcome", () =>
      Effect.gen(function*() {
        const monitor = yield* HealthMonitor.make()
        const s = scripted("ok")
        s.takes(2_000)
        yield* monitor.register({
          name: "db",
          check: s.check,
          interval: "10 seconds",
          timeout: "2 seconds",
          jitter: 0,
          warningThreshold: 1
        })
        yield* TestClock.adjust("2 seconds")
        const state = yield* monitor.state("db")
        assert.strictEqual(state.status, "Degraded")
        assert.strictEqual(state.lastError, "timed out after 2s")
        assert.strictEqual(state.responseTimeMillis, 2_000)
      }))
  })

  describe("scheduling", () => {
    it.effect("without jitter the first run is at registration, then one interval after each run ends", () =>
      Effect.gen(function*() {
        const monitor = yield* HealthMonitor.make()
        const s = scripted("ok")
        s.takes(1_000)
        yield* monitor.register({ name: "db", check: s.check, interval: "10 seconds", jitter: 0 })
        yield* TestClock.adjust("35 seconds")
        assert.deepStrictEqual(s.starts, [0, 11_000, 22_000, 33_000])
      }))

    it.effect("with jitter, checks stagger: a random first run within interval x jitter, then waits within bounds", () =>
      Effect.gen(function*() {
        const runs = yield* staggered(42)
        const firsts = runs.map((starts) => starts[0])
        assert.strictEqual(new Set(firsts).size, firsts.length, `first runs ${firsts} should differ`)
        // Drawn over the whole window [0, interval x jitter], not bunched at its start.
        assert.isAbove(Math.max(...firsts) - Math.min(...firsts), 250, `first runs ${firsts} should spread`)
        for (const starts of runs) {
          assert.isAtMost(starts[0], 1_000)
          assert.isAtLeast(starts.length, 11)
          const waits = starts.slice(1).map((at, i) => at - starts[i])
          assert.isAbove(new Set(waits).size, 1, "waits are drawn, not fixed")
          for (const wait of waits) {
            assert.isAtLeast(wait, 9_000)
            assert.isAtMost(wait, 11_000)
          }
        }
        // The same seed gives the same schedule; another seed, another.
        assert.deepStrictEqual(yield* staggered(42), runs)
        assert.notDeepEqual(yield* staggered(7), runs)
      }))
  })

  describe("registration at run time", () => {
    describe("interrupted at any point", () => {
      it.effect("register: a check it lists runs; one it does not list does not", () =>
        Effect.gen(function*() {
          for (let turns = 0; turns < 30; turns++) {
            const monitor = yield* HealthMonitor.make()
            const { options, state } = counted()
            yield* interruptedAfter(monitor.register(options), turns)
            const listed = Exit.isSuccess(yield* Effect.exit(monitor.state("db")))
            // The check's fiber was forked with the register's one-instruction budget: it needs turns to run.
            yield* yieldTimes(100)
            yield* TestClock.adjust("3 seconds")
            yield* yieldTimes(100)
            const ran = state.runs > 0
            assert.strictEqual(ran, listed, `interrupted after ${turns} turns: listed ${listed}, ran ${ran}`)
          }
        }).pipe(Effect.scoped))

      it.effect("unregister: a check it removed from the report no longer runs", () =>
        Effect.gen(function*() {
          for (let turns = 0; turns < 30; turns++) {
            const monitor = yield* HealthMonitor.make()
            const { options, state } = counted()
            yield* monitor.register(options)
            yield* TestClock.adjust("1 second")
            yield* interruptedAfter(monitor.unregister("db"), turns)
            const listed = Exit.isSuccess(yield* Effect.exit(monitor.state("db")))
            const before = state.runs
            yield* TestClock.adjust("5 seconds")
            const ran = state.runs > before
            assert.strictEqual(ran, listed, `interrupted after ${turns} turns: listed ${listed}, ran on ${ran}`)
          }
        }).pipe(Effect.scoped))

      it.effect("runNow: a status change it records is published", () =>
        Effect.gen(function*() {
          for (let turns = 0; turns < 30; turns++) {
            const monitor = yield* HealthMonitor.make()
            const changes: Array<string> = []
            yield* monitor.changes.pipe(
              Stream.runForEach((change) => Effect.sync(() => changes.push(`${change.from}->${change.to}`))),
              Effect.forkScoped({ startImmediately: true })
            )
            let failing = false
            yield* monitor.register({
              name: "db",
              check: Effect.suspend(() => failing ? Effect.fail("down") : Effect.void),
              interval: "1 hour",
              jitter: 0,
              warningThreshold: 1,
              failureThreshold: 1
            })
            failing = true
            yield* interruptedAfter(monitor.runNow("db"), turns)
            yield* yieldTimes(30)
            const status = (yield* monitor.state("db")).status
            assert.deepStrictEqual(
              changes,
              status === "Unhealthy" ? ["Unknown->Healthy", "Healthy->Unhealthy"] : ["Unknown->Healthy"],
              `interrupted after ${turns} turns: ${status}`
            )
          }
        }).pipe(Effect.scoped))
    })

    it.effect("a check added while others run starts on its own schedule and joins the report", () =>
      Effect.gen(function*() {
        const monitor = yield* HealthMonitor.make()
        const a = scripted("ok")
        const b = scripted("ok")
        yield* monitor.register({ name: "a", check: a.check, interval: "10 seconds", jitter: 0 })
        yield* TestClock.adjust("15 seconds")
        yield* monitor.register({ name: "b", check: b.check, interval: "10 seconds", jitter: 0 })
        yield* TestClock.adjust("10 seconds")
        assert.deepStrictEqual(a.starts, [0, 10_000, 20_000])
        assert.deepStrictEqual(b.starts, [15_000, 25_000])
        assert.deepStrictEqual(Object.keys((yield* monitor.report).services), ["a", "b"])
        // Any name, one that is a property of every object included.
        yield* monitor.register({ name: "__proto__", check: Effect.void, interval: "10 seconds", jitter: 0 })
        assert.deepStrictEqual(Object.keys((yield* monitor.report).services), ["a", "b", "__proto__"])
      }))

    it.effect("unregistering interrupts the check, drops its state and stops its runs", () =>
      Effect.gen(function*() {
        const monitor = yield* HealthMonitor.make()
        const a = scripted("ok")
        const b = scripted("ok")
        yield* monitor.register({ name: "a", check: a.check, interval: "10 seconds", jitter: 0 })
        yield* monitor.register({ name: "b", check: b.check, interval: "10 seconds", jitter: 0 })
        a.set("hang")
        yield* TestClock.adjust("12 seconds")
        yield* monitor.unregister("a")
        yield* settle
        assert.deepStrictEqual(a.interruptedAt, [12_000])
        yield* TestClock.adjust("1 minute")
        assert.deepStrictEqual(a.starts, [0, 10_000])
        assert.isAbove(b.starts.length, 5)
        const error = yield* Effect.flip(monitor.state("a"))
        assert.deepStrictEqual([error._tag, error.service, error.known], ["CheckNotFound", "a", ["b"]])
        assert.strictEqual(error.message, "No health check \"a\" (registered: \"b\")")
        assert.deepStrictEqual(Object.keys((yield* monitor.report).services), ["b"])
        // Unknown names are a no-op.
        yield* monitor.unregister("a")
      }))

    it.effect("unregistering a check that had a status publishes its change to Unknown; one still Unknown, nothing", () =>
      Effect.gen(function*() {
        const monitor = yield* HealthMonitor.make()
        const seen = yield* monitor.changes.pipe(
          Stream.take(3),
          Stream.runCollect,
          Effect.forkChild({ startImmediately: true })
        )
        const failing = {
          name: "a",
          check: Effect.fail("down"),
          interval: "1 hour",
          jitter: 0,
          warningThreshold: 1,
          failureThreshold: 1
        } satisfies HealthMonitor.CheckOptions<string, never>
        yield* monitor.register({ ...failing, critical: true })
        yield* monitor.register({ ...failing, name: "b", jitter: 1 }) // its first run is a while away: still Unknown
        yield* TestClock.adjust("5 seconds")
        yield* monitor.unregister("b")
        yield* monitor.register({ ...failing, name: "quiet" })
        yield* monitor.unregister("quiet", { quiet: true })
        yield* monitor.unregister("a")
        const changes = yield* Fiber.join(seen)
        assert.deepStrictEqual(
          changes.map((c) => [c.service, `${c.from}->${c.to}`, c.at, c.critical, c.error, c.consecutiveFailures]),
          [
            ["a", "Unknown->Unhealthy", 0, true, "down", 1],
            ["quiet", "Unknown->Unhealthy", 5000, true, "down", 1],
            ["a", "Unhealthy->Unknown", 5000, true, null, 1]
          ]
        )
      }))

    it.effect("re-registering replaces the check and restarts its fiber, keeping its state", () =>
      Effect.gen(function*() {
        const monitor = yield* HealthMonitor.make()
        const old = scripted("fail")
        const replacement = scripted("fail")
        yield* monitor.register({ name: "db", check: old.check, interval: "10 seconds", jitter: 0 })
        yield* TestClock.adjust("10 seconds")
        assert.strictEqual(yield* statusOf(monitor, "db"), "Degraded")
        yield* TestClock.adjust("5 seconds")
        yield* monitor.register({
          name: "db",
          check: replacement.check,
          interval: "20 seconds",
          jitter: 0,
          critical: false
        })
        // The replacement ran at once, as the third failure in a row.
        const state = yield* monitor.state("db")
        assert.strictEqual(state.status, "Unhealthy")
        assert.strictEqual(state.consecutiveFailures, 3)
        assert.strictEqual(state.critical, false)
        yield* TestClock.adjust("1 minute")
        assert.deepStrictEqual(old.starts, [0, 10_000])
        assert.deepStrictEqual(replacement.starts, [15_000, 35_000, 55_000, 75_000])
        assert.strictEqual(yield* monitor.status, "Degraded")
      }))

    it.effect("a check registered from a fiber that then ends keeps running", () =>
      Effect.gen(function*() {
        const monitor = yield* HealthMonitor.make()
        const s = scripted("ok")
        const registrar = yield* Effect.forkChild(
          monitor.register({ name: "db", check: s.check, interval: "10 seconds", jitter: 0 })
        )
        yield* Fiber.join(registrar)
        yield* TestClock.adjust("30 seconds")
        assert.deepStrictEqual(s.starts, [0, 10_000, 20_000, 30_000])
      }))

    it.effect("the services a check needs are taken from the register call and kept for every run", () =>
      Effect.gen(function*() {
        class Database extends Context.Service<Database, { readonly ping: Effect.Effect<void, Boom> }>()("Database") {}
        let pings = 0
        const monitor = yield* HealthMonitor.make()
        const check = Effect.gen(function*() {
          const db = yield* Database
          yield* db.ping
        })
        yield* monitor.register({ name: "db", check, interval: "10 seconds", jitter: 0 }).pipe(
          Effect.provideService(Database, { ping: Effect.sync(() => void pings++) })
        )
        yield* TestClock.adjust("30 seconds")
        assert.strictEqual(pings, 4)
        assert.strictEqual((yield* monitor.runNow("db")).totalFailures, 0)
        assert.strictEqual(pings, 5)
      }))
  })

  describe("shutdown", () => {
    it.effect("closing the monitor's scope interrupts every check's fiber, and nothing runs afterwards", () =>
      Effect.gen(function*() {
        const scope = yield* Scope.make()
        const monitor = yield* HealthMonitor.make().pipe(Scope.provide(scope))
        const checks = [scripted("ok"), scripted("hang"), scripted("ok")]
        for (const [i, s] of checks.entries()) {
          yield* monitor.register({
            name: `svc-${i}`,
            check: s.check,
            interval: "10 seconds",
            timeout: "1 hour",
            jitter: 0.1
          })
        }
        yield* TestClock.adjust("25 seconds")
        assert.isTrue((yield* monitor.report).monitoring)
        yield* Scope.close(scope, Exit.void)
        // The hanging check was interrupted in the middle of its run.
        assert.strictEqual(checks[1].interruptedAt.length, 1)
        const runs = checks.map((s) => s.starts.length)
        yield* TestClock.adjust("10 minutes")
        assert.deepStrictEqual(checks.map((s) => s.starts.length), runs)
        // Every fiber a check ran on (at least one per check) is done.
        for (const s of checks) {
          assert.isAbove(s.fibers.length, 0)
          for (const fiber of s.fibers) assert.isDefined(fiber.pollUnsafe())
        }
        assert.isFalse((yield* monitor.report).monitoring)
        // Registering on a closed monitor does nothing.
        const late = scripted("ok")
        yield* monitor.register({ name: "late", check: late.check, jitter: 0 })
        assert.deepStrictEqual(late.starts, [])
      }))

    it.effect("the layer's monitor stops its checks when the layer is released", () =>
      Effect.gen(function*() {
        const s = scripted("ok")
        yield* HealthMonitor.HealthMonitor.use((monitor) =>
          monitor.register({ name: "db", check: s.check, interval: "1 second", jitter: 0 })
        ).pipe(Effect.provide(HealthMonitor.layer()))
        yield* TestClock.adjust("1 minute")
        assert.deepStrictEqual(s.starts, [0])
      }))
  })

  describe("report", () => {
    it.effect("overall status and summary: critical Unhealthy fails, non-critical Unhealthy degrades", () =>
      Effect.gen(function*() {
        const monitor = yield* HealthMonitor.make()
        assert.strictEqual(yield* monitor.status, "Unknown")
        const empty = yield* monitor.report
        assert.deepStrictEqual(empty, {
          timestamp: 0,
          monitoring: false,
          status: "Unknown",
          services: {},
          summary: { total: 0, healthy: 0, degraded: 0, unhealthy: 0, unknown: 0 }
        })

        const one = { interval: "1 hour", jitter: 0, warningThreshold: 1, failureThreshold: 2 } as const
        const db = scripted("fail")
        const cache = scripted("fail")
        const search = scripted("ok")
        yield* monitor.register({ name: "db", check: db.check, ...one })
        // All Unknown (or no check) reads Unknown; a Healthy check next to Unknown ones reads Healthy.
        yield* monitor.register({ name: "unknown", check: Effect.never, ...one })
        assert.strictEqual(yield* monitor.status, "Degraded")
        db.set("ok")
        yield* monitor.runNow("db")
        assert.strictEqual(yield* monitor.status, "Healthy")

        yield* monitor.register({ name: "cache", check: cache.check, critical: false, ...one })
        yield* monitor.runNow("cache")
        assert.strictEqual((yield* monitor.state("cache")).status, "Unhealthy")
        // Only a non-critical check is Unhealthy: Degraded.
        assert.strictEqual(yield* monitor.status, "Degraded")
        yield* monitor.register({ name: "search", check: search.check, ...one })
        db.set("fail")
        yield* monitor.runNow("db")
        yield* monitor.runNow("db")
        assert.strictEqual(yield* monitor.status, "Unhealthy")

        yield* TestClock.adjust("2 seconds")
        const report = yield* monitor.report
        assert.strictEqual(report.timestamp, 2_000)
        assert.isTrue(report.monitoring)
        assert.strictEqual(report.status, "Unhealthy")
        assert.deepStrictEqual(report.summary, { total: 4, healthy: 1, degraded: 0, unhealthy: 2, unknown: 1 })
        assert.deepStrictEqual(Object.keys(report.services), ["db", "unknown", "cache", "search"])
        assert.deepStrictEqual(report.services["db"], {
          service: "db",
          status: "Unhealthy",
          critical: true,
          lastCheckAt: 0,
          responseTimeMillis: 0,
          consecutiveFailures: 2,
          consecutiveSuccesses: 0,
          totalChecks: 4,
          totalFailures: 3,
          lastError: "connection refused",
          unhealthySince: 0,
          detectionMillis: 0,
          recoveryMillis: null
        })
        // Plain data: it survives JSON.
        assert.deepStrictEqual(JSON.parse(JSON.stringify(report)), report)
      }))

    it.effect("detection and recovery times are measured exactly", () =>
      Effect.gen(function*() {
        const monitor = yield* HealthMonitor.make()
        const s = scripted("hang")
        yield* monitor.register({ name: "db", check: s.check, interval: "10 seconds", jitter: 0 })
        // Runs 0-5s, 15-20s, 30-35s time out: Unhealthy at 35s, 35s after the first failing run started.
        yield* TestClock.adjust("35 seconds")
        let state = yield* monitor.state("db")
        assert.strictEqual(state.status, "Unhealthy")
        assert.strictEqual(state.detectionMillis, 35_000)
        assert.strictEqual(state.unhealthySince, 35_000)
        assert.strictEqual(state.recoveryMillis, null)
        assert.strictEqual(yield* metricValue("health_time_to_detection_seconds", "db"), 35)
        // The next run starts at 45s and passes at once.
        s.set("ok")
        yield* TestClock.adjust("10 seconds")
        state = yield* monitor.state("db")
        assert.strictEqual(state.status, "Healthy")
        assert.strictEqual(state.recoveryMillis, 10_000)
        assert.strictEqual(state.unhealthySince, null)
        assert.strictEqual(state.detectionMillis, 35_000)
        assert.strictEqual(yield* metricValue("health_time_to_recovery_seconds", "db"), 10)

        // A second outage, with a warning inside the streak: measured from the first failing run, 55s.
        s.set("fail")
        yield* TestClock.adjust("10 seconds")
        s.set("warn")
        yield* TestClock.adjust("10 seconds")
        s.set("fail")
        yield* TestClock.adjust("20 seconds")
        state = yield* monitor.state("db")
        assert.strictEqual(state.status, "Unhealthy")
        assert.strictEqual(state.detectionMillis, 30_000)
      }).pipe(Effect.provideService(Metric.MetricRegistry, new Map())))
  })

  describe("changes", () => {
    it.effect("a change copies `critical` from its check and carries the error that caused it", () =>
      Effect.gen(function*() {
        const monitor = yield* HealthMonitor.make()
        const changes = yield* collect(monitor)
        const s = scripted("fail")
        yield* monitor.register({
          name: "cache",
          check: s.check,
          critical: false,
          interval: "1 hour",
          jitter: 0,
          warningThreshold: 1
        })
        yield* settle
        assert.deepStrictEqual(changes, [{
          service: "cache",
          from: "Unknown",
          to: "Degraded",
          critical: false,
          error: "connection refused",
          at: 0,
          consecutiveFailures: 1
        }])
      }))

    it.effect("a subscriber that falls eventBuffer changes behind loses the oldest", () =>
      Effect.gen(function*() {
        const monitor = yield* HealthMonitor.make({ eventBuffer: 2 })
        const s = scripted("ok")
        yield* monitor.register({
          name: "db",
          check: s.check,
          interval: "1 hour",
          jitter: 0,
          warningThreshold: 1,
          failureThreshold: 1
        })
        const gate = yield* Deferred.make<void>()
        const seen = yield* monitor.changes.pipe(
          Stream.tap(() => Deferred.await(gate)),
          Stream.take(3),
          Stream.runCollect,
          Effect.forkChild({ startImmediately: true })
        )
        // Six changes; the subscriber holds the first and has room for two more.
        for (const mode of ["fail", "ok", "fail", "ok", "fail", "ok"] as const) {
          yield* TestClock.adjust("1 second")
          s.set(mode)
          yield* monitor.runNow("db")
          yield* settle
        }
        yield* Deferred.succeed(gate, void 0)
        const changes = yield* Fiber.join(seen)
        // The first, then the last two: the three in between were dropped.
        assert.deepStrictEqual(changes.map((c) => `${c.from}->${c.to} at ${c.at}`), [
          "Healthy->Unhealthy at 1000",
          "Healthy->Unhealthy at 5000",
          "Unhealthy->Healthy at 6000"
        ])
      }))
  })

  describe("metrics", () => {
    it.effect("exports a check's status, runs, failures, response time, detection and recovery by service", () =>
      Effect.gen(function*() {
        const monitor = yield* HealthMonitor.make()
        const s = scripted("fail")
        s.takes(250)
        yield* monitor.register({ name: "db", check: s.check, interval: "10 seconds", jitter: 0 })
        assert.strictEqual(yield* metricValue("health_check_status", "db"), 0)
        assert.strictEqual(yield* metricValue("health_time_to_detection_seconds", "db"), 0)
        yield* TestClock.adjust("30250 millis")
        assert.strictEqual(yield* metricValue("health_check_status", "db"), 3)
        assert.strictEqual(yield* metricValue("health_checks_total", "db"), 3)
        assert.strictEqual(yield* metricValue("health_check_failures_total", "db"), 3)
        assert.strictEqual(yield* metricValue("health_check_response_time_seconds", "db"), 0.25)
        // The first failing run started at 0; the third ended at 20250 + 250.
        assert.strictEqual(yield* metricValue("health_time_to_detection_seconds", "db"), 20.75)
        s.set("ok")
        yield* TestClock.adjust("10 seconds")
        assert.strictEqual(yield* metricValue("health_check_status", "db"), 1)
        assert.strictEqual(yield* metricValue("health_time_to_recovery_seconds", "db"), 10.25)
      }).pipe(Effect.provideService(Metric.MetricRegistry, new Map())))

    it.effect("unregistering a check removes its series; closing the monitor removes them all", () =>
      Effect.gen(function*() {
        const healthSeries = Effect.map(
          Metric.snapshot,
          (all) => all.filter((m) => m.id.startsWith("health_")).map((m) => `${m.id}{${m.attributes?.["service"]}}`)
        )
        yield* Effect.gen(function*() {
          const monitor = yield* HealthMonitor.make()
          yield* monitor.register({ name: "a", check: Effect.void, jitter: 0 })
          yield* monitor.register({ name: "b", check: Effect.void, jitter: 0 })
          assert.strictEqual((yield* healthSeries).length, 12)
          yield* monitor.unregister("a")
          const left = yield* healthSeries
          assert.strictEqual(left.length, 6)
          assert.isTrue(left.every((series) => series.endsWith("{b}")))
          // Registered again, it starts afresh.
          yield* monitor.register({ name: "a", check: Effect.void, jitter: 0 })
          assert.strictEqual(yield* metricValue("health_checks_total", "a"), 1)
        }).pipe(Effect.scoped)
        assert.deepStrictEqual(yield* healthSeries, [])
      }).pipe(Effect.provideService(Metric.MetricRegistry, new Map())))
  })

  describe("validation", () => {
    it.effect("register validates its options, naming each bad one", () =>
      Effect.gen(function*() {
        const monitor = yield* HealthMonitor.make()
        const error = yield* Effect.flip(monitor.register({
          name: "db",
          check: Effect.void,
          interval: 0,
          timeout: "soon" as never,
          warningThreshold: 0,
          failureThreshold: 1.5,
          jitter: 1.5
        }))
        assert.strictEqual(error._tag, "PolicyConfigError")
        assert.deepStrictEqual(error.issues.map((issue) => issue.path), [
          "interval",
          "timeout",
          "warningThreshold",
          "failureThreshold",
          "jitter"
        ])
        assert.include(error.message, "Invalid options for health check \"db\"")

        const order = yield* Effect.flip(monitor.register({
          name: "db",
          check: Effect.void,
          warningThreshold: 4
        }))
        assert.deepStrictEqual(issuesOf(order), ["failureThreshold: Expected at least warningThreshold (4), got 3"])

        const noEffect = yield* Effect.flip(
          monitor.register({ name: "", check: "ping" as unknown as Effect.Effect<void> })
        )
        assert.deepStrictEqual(noEffect.issues.map((issue) => issue.path), ["name", "check"])
        // Nothing was registered.
        assert.deepStrictEqual((yield* monitor.report).services, {})
      }))

    it.effect("make and layer validate eventBuffer", () =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(Effect.scoped(HealthMonitor.make({ eventBuffer: 0 })))
        assert.deepStrictEqual(error.issues.map((issue) => issue.path), ["eventBuffer"])
        const fromLayer = yield* Effect.flip(Layer.build(HealthMonitor.layer({ eventBuffer: -1 })))
        assert.deepStrictEqual(fromLayer.issues.map((issue) => issue.path), ["eventBuffer"])
        // The buffer is allocated up front: a huge one is an option error, not a RangeError.
        const huge = yield* Effect.flip(Effect.scoped(HealthMonitor.make({ eventBuffer: 1e12 })))
        assert.deepStrictEqual(issuesOf(huge), [
          "eventBuffer: Expected a value less than or equal to 100000, got 1000000000000"
        ])
        // Without options (or without eventBuffer) nothing can be wrong.
        const monitor = yield* HealthMonitor.make({})
        assert.strictEqual(yield* monitor.status, "Unknown")
      }))
  })

  describe("runNow and state", () => {
    it.effect("runNow runs a check once, outside its schedule, and returns its state", () =>
      Effect.gen(function*() {
        const monitor = yield* HealthMonitor.make()
        const s = scripted("ok")
        yield* monitor.register({ name: "db", check: s.check, interval: "10 seconds", jitter: 0 })
        yield* TestClock.adjust("3 seconds")
        const state = yield* monitor.runNow("db")
        assert.strictEqual(state.totalChecks, 2)
        assert.strictEqual(state.lastCheckAt, 3_000)
        yield* TestClock.adjust("7 seconds")
        // The schedule did not move.
        assert.deepStrictEqual(s.starts, [0, 3_000, 10_000])
        const missing = yield* Effect.flip(monitor.runNow("dbb"))
        assert.strictEqual(missing.message, "No health check \"dbb\" (registered: \"db\")")
        const none = new HealthMonitor.CheckNotFound({ service: "x", known: [] })
        assert.strictEqual(none.message, "No health check \"x\" (registered: none)")
      }))
  })
})
