import { assert, describe, it } from "@effect/vitest"
import type { Cause } from "effect"
import { Clock, Context, Data, Effect, Exit, Fiber, Layer, Metric, Queue, Scope, Stream } from "effect"
import { TestClock } from "effect/testing"
import * as HealthMonitor from "../src/HealthMonitor.ts"
import type { Status, StatusChange } from "../src/HealthMonitor.ts"
import * as Recovery from "../src/Recovery.ts"

class Boom extends Data.TaggedError("Boom")<{ readonly message: string }> {}

/** A recovery hook that records when it ran; `outcomes[n]` says whether its n-th run fails (default: succeeds). */
const hook = (outcomes: ReadonlyArray<"ok" | "fail"> = []) => {
  const runs: Array<number> = []
  const run = Effect.gen(function*() {
    const now = yield* Clock.currentTimeMillis
    const n = runs.push(now) - 1
    if (outcomes[n] === "fail") return yield* new Boom({ message: `run ${n} failed` })
  })
  return { run, runs }
}

/** A recovery manager on a hand-made stream; `emit` publishes a change now and lets the manager handle it. */
const setup = <const Rules extends ReadonlyArray<Recovery.Rule>>(
  rules: Rules,
  options: Omit<Recovery.Options<Rules>, "changes" | "rules"> = {}
) =>
  Effect.gen(function*() {
    const changes = yield* Queue.unbounded<StatusChange, Cause.Done>()
    const recovery = yield* Recovery.make({ changes: Stream.fromQueue(changes), rules, ...options })
    const emit = (service: string, from: Status, to: Status, consecutiveFailures = 0) =>
      Effect.gen(function*() {
        const at = yield* Clock.currentTimeMillis
        const error = to === "Healthy" ? null : "refused"
        yield* Queue.offer(changes, { service, from, to, critical: true, error, at, consecutiveFailures })
        yield* TestClock.adjust(0)
      })
    /** The service fails: Healthy to Unhealthy with 3 consecutive failures. */
    const down = (service: string) => emit(service, "Healthy", "Unhealthy", 3)
    const up = (service: string) => emit(service, "Unhealthy", "Healthy")
    return { recovery, emit, down, up, end: Queue.end(changes) }
  })

const metricValue = (id: string, attributes: Record<string, string>) =>
  Metric.snapshot.pipe(Effect.map((all) => {
    const found = all.find((m) => m.id === id && Object.entries(attributes).every(([k, v]) => m.attributes?.[k] === v))
    const state = found?.state as { readonly count?: number; readonly value?: number } | undefined
    return state?.count ?? state?.value
  }))

describe("Recovery", () => {
  describe("triggers", () => {
    it.effect("by default a rule acts when its service becomes Unhealthy", () =>
      Effect.gen(function*() {
        const restart = hook()
        const { emit } = yield* setup([{ service: "db", action: Recovery.restart(restart.run) }])
        yield* emit("db", "Healthy", "Degraded", 2)
        yield* emit("cache", "Healthy", "Unhealthy", 3)
        assert.deepStrictEqual(restart.runs, [])
        yield* TestClock.adjust("1 second")
        yield* emit("db", "Degraded", "Unhealthy", 3)
        assert.deepStrictEqual(restart.runs, [1000])
      }))

    it.effect("with `after`, at the first failing change with that many consecutive failures", () =>
      Effect.gen(function*() {
        const early = hook()
        const never = hook()
        const { emit } = yield* setup([
          { service: "db", after: 2, action: Recovery.clearCache(early.run) },
          // The monitor publishes no change past Unhealthy (3 failures here), so 5 is never seen.
          { service: "cache", after: 5, action: Recovery.reconnect(never.run) }
        ])
        yield* emit("db", "Healthy", "Degraded", 2)
        yield* emit("cache", "Healthy", "Degraded", 2)
        yield* emit("cache", "Degraded", "Unhealthy", 3)
        assert.deepStrictEqual([early.runs, never.runs], [[0], []])
      }))
  })

  describe("attempts", () => {
    it.effect("wait an exact exponential backoff between them, then escalate once", () =>
      Effect.gen(function*() {
        const restart = hook()
        const page = hook()
        const { down, recovery } = yield* setup([{
          service: "db",
          action: Recovery.restart(restart.run),
          maxAttempts: 5,
          backoff: { base: "10 seconds", factor: 3, max: "1 minute" },
          escalation: page.run
        }])
        yield* down("db")
        // 10s, 30s, then 90s capped at 60s, 60s; the last attempt also waits its backoff before escalating.
        for (
          const [at, runs] of [[9_999, 1], [10_000, 2], [39_999, 2], [40_000, 3], [99_999, 3], [100_000, 4]] as const
        ) {
          yield* TestClock.setTime(at)
          assert.strictEqual(restart.runs.length, runs, `at ${at}`)
        }
        yield* TestClock.setTime(160_000)
        assert.deepStrictEqual(restart.runs, [0, 10_000, 40_000, 100_000, 160_000])
        yield* TestClock.setTime(219_999)
        assert.deepStrictEqual(page.runs, [])
        yield* TestClock.setTime(220_000)
        assert.deepStrictEqual(page.runs, [220_000])
        // Escalated: no more automated attempts, however long the service stays down.
        yield* TestClock.adjust("1 day")
        assert.deepStrictEqual([restart.runs.length, page.runs.length], [5, 1])
        const stats = yield* recovery.snapshot
        assert.deepStrictEqual(stats.services, [{
          service: "db",
          phase: "Escalated",
          attempts: 6,
          cooldownUntil: null
        }])
        assert.deepStrictEqual(
          { escalations: stats.escalations, byAction: stats.attemptsByAction },
          {
            escalations: 1,
            byAction: { Restart: 5, ClearCache: 0, Reconnect: 0, ReloadConfig: 0, Escalate: 1 }
          }
        )
      }))

    it.effect("stop when the service becomes Healthy, even while an action runs", () =>
      Effect.gen(function*() {
        const restart = hook()
        const { down, recovery, up } = yield* setup([{
          service: "db",
          action: Recovery.restart(restart.run),
          backoff: { base: "10 seconds" }
        }])
        yield* down("db")
        yield* TestClock.adjust("10 seconds")
        yield* TestClock.adjust("5 seconds")
        yield* up("db")
        yield* TestClock.adjust("10 minutes")
        assert.deepStrictEqual(restart.runs, [0, 10_000])
        const stats = yield* recovery.snapshot
        assert.deepStrictEqual([stats.recovered, stats.successes, stats.lastRecoveryMillis], [1, 1, 15_000])

        // A slow reconnect: the service is back before it returns; the next attempt never starts.
        const reconnects: Array<number> = []
        const slow = Effect.flatMap(Clock.currentTimeMillis, (now) => Effect.sync(() => reconnects.push(now))).pipe(
          Effect.andThen(Effect.sleep("20 seconds"))
        )
        const other = yield* setup([{ service: "api", action: Recovery.reconnect(slow), backoff: { base: 0 } }])
        yield* other.down("api")
        yield* TestClock.adjust("5 seconds")
        yield* other.up("api")
        yield* TestClock.adjust("1 minute")
        assert.strictEqual(reconnects.length, 1)
        assert.deepStrictEqual((yield* other.recovery.snapshot).successes, 1)
      }))

    it.effect("an escalate action escalates at once and waits for a human", () =>
      Effect.gen(function*() {
        const recovered: Array<string> = []
        const { down, recovery, up } = yield* setup(
          [{ service: "ledger", action: Recovery.escalate() }],
          { onRecovered: (service, millis) => Effect.sync(() => recovered.push(`${service} ${millis}`)) }
        )
        yield* down("ledger")
        yield* TestClock.adjust("2 hours")
        const during = yield* recovery.snapshot
        assert.deepStrictEqual(
          [during.attempts, during.attemptsByAction.Escalate, during.escalations, during.services[0].phase],
          [1, 1, 1, "Escalated"]
        )
        yield* up("ledger")
        assert.deepStrictEqual(recovered, ["ledger 7200000"])
        const after = yield* recovery.snapshot
        // The escalation was the last thing before Healthy, and it succeeded.
        assert.deepStrictEqual([after.successes, after.recovered, after.services[0].phase], [1, 1, "Idle"])
      }))

    it.effect("a change to Unknown abandons the sequence", () =>
      Effect.gen(function*() {
        const restart = hook()
        const recovered: Array<string> = []
        const { down, emit, recovery } = yield* setup(
          [{ service: "db", action: Recovery.restart(restart.run), backoff: { base: "10 seconds" } }],
          { onRecovered: (service) => Effect.sync(() => recovered.push(service)) }
        )
        yield* down("db")
        yield* TestClock.adjust("1 second")
        yield* emit("db", "Unhealthy", "Unknown")
        yield* TestClock.adjust("1 hour")
        const stats = yield* recovery.snapshot
        assert.deepStrictEqual(
          [restart.runs, recovered, stats.recovered, stats.successes, stats.services[0].cooldownUntil],
          [[0], [], 0, 0, 301_000]
        )
      }))

    it.effect("action failures are recorded, and stop nothing", () =>
      Effect.gen(function*() {
        const restart = hook(["fail", "fail"])
        const { down, recovery } = yield* setup([{
          service: "db",
          action: Recovery.restart(restart.run),
          backoff: { base: "1 second", factor: 1 },
          escalation: Effect.die("pager down")
        }])
        yield* down("db")
        yield* TestClock.adjust("10 seconds")
        const stats = yield* recovery.snapshot
        assert.deepStrictEqual(restart.runs, [0, 1000, 2000])
        assert.deepStrictEqual(stats.recentFailures, [
          { service: "db", action: "Restart", error: "Boom: run 0 failed", at: 0 },
          { service: "db", action: "Restart", error: "Boom: run 1 failed", at: 1000 },
          { service: "db", action: "Escalate", error: "pager down", at: 3000 }
        ])
      }))

    it.effect("an action failing or dying with a value String() cannot convert is recorded, and stops nothing", () =>
      Effect.gen(function*() {
        // A null-prototype object (a parsed query string, a GraphQL result) has no toString.
        const bare = Object.assign(Object.create(null) as object, { code: "EPERM" })
        let runs = 0
        const { down, recovery } = yield* setup([{
          service: "db",
          action: Recovery.restart(Effect.suspend(() => runs++ === 0 ? Effect.fail(bare) : Effect.die([bare]))),
          maxAttempts: 2,
          backoff: { base: "1 second", factor: 1 },
          escalation: Effect.fail({ code: 500 })
        }])
        yield* down("db")
        yield* TestClock.adjust("10 seconds")
        const stats = yield* recovery.snapshot
        assert.deepStrictEqual(stats.recentFailures.map(({ action, error }) => `${action} ${error}`), [
          "Restart {\"code\":\"EPERM\"}",
          "Restart [{\"code\":\"EPERM\"}]",
          "Escalate {\"code\":500}"
        ])
        assert.deepStrictEqual(stats.services.map(({ phase }) => phase), ["Escalated"])
      }))
  })

  describe("cooldown", () => {
    it.effect("no new sequence before it has passed; a trigger during it starts one when it ends", () =>
      Effect.gen(function*() {
        const restart = hook()
        const { down, recovery, up } = yield* setup([{
          service: "db",
          action: Recovery.restart(restart.run),
          backoff: { base: "10 seconds" },
          cooldown: "5 minutes"
        }])
        yield* down("db")
        yield* TestClock.adjust("2 seconds")
        yield* up("db")
        // Cooldown until 5:02. Down again at 1:00: deferred.
        yield* TestClock.adjust("58 seconds")
        yield* down("db")
        assert.deepStrictEqual(restart.runs, [0])
        assert.strictEqual((yield* recovery.snapshot).services[0].phase, "Deferred")
        yield* TestClock.setTime(301_999)
        assert.deepStrictEqual(restart.runs, [0])
        yield* TestClock.setTime(302_000)
        assert.deepStrictEqual(restart.runs, [0, 302_000])
        assert.strictEqual((yield* recovery.snapshot).sequences, 2)
      }))

    it.effect("a trigger during the cooldown is dropped if the service recovers before it ends", () =>
      Effect.gen(function*() {
        const restart = hook()
        const { down, recovery, up } = yield* setup([{
          service: "db",
          action: Recovery.restart(restart.run),
          cooldown: "5 minutes"
        }])
        yield* down("db")
        yield* up("db")
        yield* TestClock.adjust("1 minute")
        yield* down("db")
        yield* TestClock.adjust("1 minute")
        yield* up("db")
        yield* TestClock.adjust("1 hour")
        assert.deepStrictEqual(restart.runs, [0])
        assert.deepStrictEqual((yield* recovery.snapshot).services[0].phase, "Idle")
        // After the cooldown, a failure acts at once.
        yield* down("db")
        assert.deepStrictEqual(restart.runs, [0, 3_720_000])
      }))

    it.effect("the cooldown also follows an escalated sequence, from its recovery", () =>
      Effect.gen(function*() {
        const restart = hook()
        const { down, up } = yield* setup([{
          service: "db",
          action: Recovery.restart(restart.run),
          maxAttempts: 1,
          backoff: { base: "1 minute" },
          cooldown: "10 minutes"
        }])
        yield* down("db")
        yield* TestClock.adjust("30 minutes")
        yield* up("db")
        yield* TestClock.adjust("9 minutes")
        yield* down("db")
        yield* TestClock.adjust("59 seconds")
        assert.deepStrictEqual(restart.runs, [0])
        yield* TestClock.adjust("1 second")
        assert.deepStrictEqual(restart.runs, [0, 40 * 60_000])
      }))
  })

  describe("callbacks", () => {
    it.effect("onRecovered callbacks get each recovery; scoped ones stop with their scope", () =>
      Effect.gen(function*() {
        const calls: Array<string> = []
        const { down, recovery, up } = yield* setup(
          [{ service: "db", action: Recovery.restart(Effect.void), cooldown: 0 }],
          {
            onRecovered: (service, millis) =>
              Effect.sync(() => calls.push(`option ${service} ${millis}`)).pipe(Effect.andThen(Effect.die("broken")))
          }
        )
        const scope = yield* Scope.make()
        yield* recovery.onRecovered((service, millis) => Effect.sync(() => calls.push(`scoped ${service} ${millis}`)))
          .pipe(Scope.provide(scope))
        yield* Recovery.onRecovered((service) => Effect.sync(() => calls.push(`service ${service}`))).pipe(
          Effect.provideService(Recovery.Recovery, recovery)
        )
        yield* down("db")
        yield* TestClock.adjust("3 seconds")
        yield* up("db")
        yield* Scope.close(scope, Exit.void)
        yield* down("db")
        yield* up("db")
        assert.deepStrictEqual(calls, [
          "option db 3000",
          "scoped db 3000",
          "service db",
          "option db 0",
          "service db"
        ])
      }))

    it.effect("a callback that throws instead of returning an effect keeps no other callback, nor the next one", () =>
      Effect.gen(function*() {
        const calls: Array<string> = []
        const { down, recovery, up } = yield* setup(
          [{ service: "db", action: Recovery.restart(Effect.void), cooldown: 0 }],
          {
            onRecovered: (service) => {
              calls.push(`option ${service}`)
              throw new Error("broken")
            }
          }
        )
        yield* recovery.onRecovered((service) => Effect.sync(() => calls.push(`added ${service}`)))
        yield* down("db")
        yield* up("db")
        yield* down("db")
        yield* up("db")
        assert.deepStrictEqual(calls, ["option db", "added db", "option db", "added db"])
      }))

    it.effect("a callback that hangs keeps no other callback, nor the service's next sequence", () =>
      Effect.gen(function*() {
        const calls: Array<string> = []
        const restarts = hook()
        const { down, recovery, up } = yield* setup(
          [{ service: "db", action: Recovery.restart(restarts.run), cooldown: "1 minute" }],
          { onRecovered: (service) => Effect.andThen(Effect.sync(() => calls.push(`hung ${service}`)), Effect.never) }
        )
        yield* recovery.onRecovered((service) => Effect.sync(() => calls.push(`added ${service}`)))
        yield* down("db")
        yield* up("db")
        assert.deepStrictEqual(calls, ["hung db", "added db"])
        // The sequence ended as the service recovered: its cooldown counts from then.
        assert.deepStrictEqual((yield* recovery.snapshot).services, [
          { service: "db", phase: "Idle", attempts: 1, cooldownUntil: 60_000 }
        ])
        yield* TestClock.adjust("1 minute")
        yield* down("db")
        assert.deepStrictEqual(restarts.runs, [0, 60_000])
      }))
  })

  it.effect("stats arithmetic", () =>
    Effect.gen(function*() {
      const restart = hook(["fail"])
      const flush = hook(["fail"])
      const { down, recovery, up } = yield* setup([
        {
          service: "db",
          action: Recovery.restart(restart.run),
          backoff: { base: "10 seconds" },
          cooldown: "1 minute"
        },
        { service: "cache", action: Recovery.clearCache(flush.run), backoff: { base: "5 seconds" } }
      ])
      // db: attempt 1 fails, attempt 2 at 10s succeeds, Healthy at 15s: one success, recovered in 15s.
      yield* down("db")
      yield* TestClock.adjust("15 seconds")
      yield* up("db")
      // cache: the clear fails, yet the cache comes back at 20s: recovered in 3s, no success.
      yield* TestClock.adjust("2 seconds")
      yield* down("cache")
      yield* TestClock.adjust("3 seconds")
      yield* up("cache")
      // db again at 2:00 (after its cooldown): recovered in 4s.
      yield* TestClock.setTime(120_000)
      yield* down("db")
      yield* TestClock.adjust("4 seconds")
      yield* up("db")
      const stats = yield* recovery.snapshot
      assert.deepStrictEqual(
        {
          attempts: stats.attempts,
          successes: stats.successes,
          successRate: stats.successRate,
          sequences: stats.sequences,
          recovered: stats.recovered,
          averageRecoveryMillis: stats.averageRecoveryMillis,
          lastRecoveryMillis: stats.lastRecoveryMillis,
          restarts: stats.attemptsByAction.Restart,
          clears: stats.attemptsByAction.ClearCache,
          failures: stats.recentFailures.map((f) => `${f.service} ${f.action} ${f.at}`)
        },
        {
          attempts: 4,
          successes: 2,
          successRate: 0.5,
          sequences: 3,
          recovered: 3,
          averageRecoveryMillis: (15_000 + 3_000 + 4_000) / 3,
          lastRecoveryMillis: 4_000,
          restarts: 3,
          clears: 1,
          failures: ["db Restart 0", "cache ClearCache 17000"]
        }
      )
      const empty = yield* setup([])
      const none = yield* empty.recovery.snapshot
      assert.deepStrictEqual([none.successRate, none.averageRecoveryMillis, none.lastRecoveryMillis], [0, null, null])
    }))

  it.effect("metrics count attempts by action, successes, escalations, and the last recovery time", () =>
    Effect.gen(function*() {
      const { down, up } = yield* setup(
        [{ service: "db", action: Recovery.reloadConfig(Effect.void), maxAttempts: 1, backoff: { base: "1 second" } }],
        { name: "recovery-metrics" }
      )
      yield* down("db")
      yield* TestClock.adjust("1 minute")
      yield* up("db")
      const by = { policy: "recovery-metrics" }
      assert.deepStrictEqual(
        [
          yield* metricValue("recovery_attempts_total", { ...by, action: "ReloadConfig" }),
          yield* metricValue("recovery_attempts_total", { ...by, action: "Escalate" }),
          yield* metricValue("recovery_successes_total", by),
          yield* metricValue("recovery_escalations_total", by),
          yield* metricValue("recovery_time_seconds", by)
        ],
        [1, 1, 1, 1, 60]
      )
    }))

  it.effect("when the changes end, running sequences stop", () =>
    Effect.gen(function*() {
      const restart = hook()
      const { down, end, recovery } = yield* setup([{ service: "db", action: Recovery.restart(restart.run) }])
      yield* down("db")
      assert.strictEqual((yield* recovery.snapshot).services[0].phase, "Running")
      yield* end
      yield* TestClock.adjust("1 hour")
      assert.deepStrictEqual(restart.runs, [0])
      // Nothing is under way any more, and the snapshot says so.
      assert.strictEqual((yield* recovery.snapshot).services[0].phase, "Idle")
    }))

  it.effect("when the changes end while a trigger waits for the cooldown, it is dropped and the service is Idle", () =>
    Effect.gen(function*() {
      const restart = hook()
      const { down, end, recovery, up } = yield* setup([{
        service: "db",
        action: Recovery.restart(restart.run),
        cooldown: "1 minute"
      }])
      yield* down("db")
      yield* up("db")
      yield* down("db")
      assert.strictEqual((yield* recovery.snapshot).services[0].phase, "Deferred")
      yield* end
      yield* TestClock.adjust("2 minutes")
      const after = yield* recovery.snapshot
      assert.deepStrictEqual([after.sequences, after.services[0].phase], [1, "Idle"])
      assert.deepStrictEqual(restart.runs, [0])
    }))

  it.effect("actions may need services, which make then requires", () =>
    Effect.gen(function*() {
      class Supervisor
        extends Context.Service<Supervisor, { readonly restart: (name: string) => Effect.Effect<void> }>()(
          "test/Supervisor"
        )
      {}
      const restarted: Array<string> = []
      const changes = yield* Queue.unbounded<StatusChange>()
      const make = Recovery.make({
        changes: Stream.fromQueue(changes),
        rules: [{ service: "worker", action: Recovery.restart(Supervisor.use((s) => s.restart("worker"))) }]
      })
      // @ts-expect-error: the restart needs a Supervisor
      const _unprovided: Effect.Effect<Recovery.Recovery, unknown, Scope.Scope> = make
      const fiber = yield* make.pipe(
        Effect.provide(Layer.succeed(Supervisor, { restart: (name) => Effect.sync(() => restarted.push(name)) })),
        Effect.forkChild
      )
      yield* Fiber.join(fiber)
      yield* Queue.offer(changes, {
        service: "worker",
        from: "Healthy",
        to: "Unhealthy",
        critical: true,
        error: "stuck",
        at: 0,
        consecutiveFailures: 3
      })
      yield* TestClock.adjust(0)
      assert.deepStrictEqual(restarted, ["worker"])
    }))

  it.effect("bad options fail with PolicyConfigError naming the option", () =>
    Effect.gen(function*() {
      const bad = yield* Effect.flip(Recovery.make({
        changes: Stream.empty,
        rules: [
          {
            service: "db",
            after: 0,
            action: Recovery.restart(Effect.void),
            maxAttempts: 0,
            backoff: { base: "soon" as never, factor: 0.5 },
            cooldown: -1
          },
          { service: "", action: { _tag: "Restart", run: "not an effect" as unknown as Effect.Effect<void> } }
        ]
      }))
      assert.deepStrictEqual(bad.issues.map((i) => i.path), [
        "rules[0].after",
        "rules[0].maxAttempts",
        "rules[0].backoff.base",
        "rules[0].backoff.factor",
        "rules[0].cooldown",
        "rules[1].service",
        "rules[1].action.run"
      ])
      const twice = yield* Effect.flip(Recovery.make({
        changes: Stream.empty,
        rules: [
          { service: "db", action: Recovery.restart(Effect.void) },
          { service: "db", action: Recovery.escalate() }
        ]
      }))
      assert.deepStrictEqual(twice.issues, [
        { path: "rules[1].service", message: "Expected one rule per service, \"db\" has rules[0]" }
      ])
    }))

  describe("layer", () => {
    it.effect("acts on the status changes of the HealthMonitor in context", () => {
      const restart = hook()
      const health = { up: true }
      const Monitoring = Recovery.layer({
        rules: [{ service: "db", action: Recovery.restart(restart.run), backoff: { base: "10 seconds" } }]
      }).pipe(Layer.provideMerge(HealthMonitor.layer()))
      return Effect.gen(function*() {
        const monitor = yield* HealthMonitor.HealthMonitor
        yield* monitor.register({
          name: "db",
          check: Effect.suspend(() => health.up ? Effect.void : Effect.fail("refused")),
          interval: "1 second",
          jitter: 0,
          warningThreshold: 1,
          failureThreshold: 1
        })
        health.up = false
        yield* TestClock.adjust("1 second")
        // Unhealthy at 1 s: the rule restarts the service at once.
        assert.deepStrictEqual(restart.runs, [1000])
        health.up = true
        yield* TestClock.adjust("1 second")
        const snapshot = yield* Recovery.Recovery.use((recovery) => recovery.snapshot)
        assert.deepStrictEqual([snapshot.recovered, snapshot.successes, snapshot.lastRecoveryMillis], [1, 1, 1000])
      }).pipe(Effect.provide(Monitoring))
    })

    it.effect("a check removed from the monitor ends its service's sequence, escalated or not", () =>
      Effect.gen(function*() {
        const monitor = yield* HealthMonitor.HealthMonitor
        yield* monitor.register({
          name: "worker",
          check: Effect.fail("no heartbeat"),
          interval: "10 seconds",
          jitter: 0,
          warningThreshold: 1,
          failureThreshold: 1
        })
        yield* TestClock.adjust(0)
        const recovery = yield* Recovery.Recovery
        assert.strictEqual((yield* recovery.snapshot).services[0].phase, "Escalated")
        // The worker is decommissioned: nobody watches it, so nobody is waited for.
        yield* monitor.unregister("worker")
        yield* TestClock.adjust(0)
        assert.strictEqual((yield* recovery.snapshot).services[0].phase, "Idle")
      }).pipe(Effect.provide(
        Recovery.layer({ rules: [{ service: "worker", action: Recovery.escalate() }] }).pipe(
          Layer.provideMerge(HealthMonitor.layer())
        )
      )))

    it.effect("subscribes before it returns: a change published right after is not missed", () =>
      Effect.gen(function*() {
        const restart = hook()
        const monitor = yield* HealthMonitor.make()
        yield* Recovery.make({
          changes: monitor.changes,
          rules: [{ service: "db", action: Recovery.restart(restart.run) }]
        })
        // With no jitter the first run happens within `register`, with no chance for another fiber to run first.
        yield* monitor.register({
          name: "db",
          check: Effect.fail("refused"),
          jitter: 0,
          warningThreshold: 1,
          failureThreshold: 1
        })
        yield* TestClock.adjust(0)
        assert.deepStrictEqual(restart.runs, [0])
      }))

    it.effect("validates its options when built", () =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(
          Layer.build(
            Recovery.layer({ rules: [{ service: "", action: Recovery.restart(Effect.void) }] }).pipe(
              Layer.provide(HealthMonitor.layer())
            )
          )
        )
        assert.deepStrictEqual(error.issues.map((issue) => issue.path), ["rules[0].service"])
      }))
  })
})
