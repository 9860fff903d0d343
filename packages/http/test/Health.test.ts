import { CircuitBreaker, CircuitBreakerRegistry, Degradation, HealthMonitor } from "@effect-resilience/core"
import { ResilienceApi } from "@effect-resilience/http"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Schema } from "effect"
import { TestClock } from "effect/testing"
import { get, Server } from "./httpTest.ts"

const report = Schema.decodeUnknownSync(Schema.Union([ResilienceApi.HealthReport, ResilienceApi.UnhealthyReport]))

describe("health probes", () => {
  it.effect("GET /health without a monitor: status, level 0, circuits; degraded (200) by an open breaker", () =>
    Effect.gen(function*() {
      const db = yield* CircuitBreaker.make({ name: "db", trip: CircuitBreaker.consecutive(1) })
      const healthy = yield* get("/health")
      assert.strictEqual(healthy.status, 200)
      assert.deepStrictEqual(Object.keys(healthy.json).sort(), ["circuits", "degradation_level", "status", "timestamp"])
      assert.strictEqual(report(healthy.json).status, "healthy")
      assert.strictEqual(healthy.json.degradation_level, 0)
      yield* Effect.ignore(db.protect(Effect.fail("boom")))
      const degraded = yield* get("/health")
      assert.strictEqual(degraded.status, 200)
      assert.strictEqual(degraded.json.status, "degraded")
      assert.deepStrictEqual(degraded.json.circuits, { db: { state: "open", failures: 1 } })
      // Not critical: the instance stays in rotation.
      const ready = yield* get("/health/ready")
      assert.strictEqual(ready.status, 200)
      assert.strictEqual(ready.json.ready, true)
      const live = yield* get("/health/live")
      assert.strictEqual(live.status, 200)
      assert.strictEqual(live.json.status, "alive")
    }).pipe(Effect.provide(Server())))

  // Seed 002: `"firebase": {"state": "closed", "failures": 2}`, `"qdrant": {"state": "half_open", "failures": 5}`.
  it.effect("GET /health: a circuit's failures are those counting toward opening it, or that opened it", () =>
    Effect.gen(function*() {
      const firebase = yield* CircuitBreaker.make({ name: "firebase", trip: CircuitBreaker.consecutive(5) })
      // A failure now and then, each followed by a success, then two in a row: 2 of the 5 that would open it.
      for (let i = 0; i < 10; i++) {
        yield* Effect.ignore(firebase.protect(Effect.fail("timeout")))
        yield* firebase.protect(Effect.succeed("ok"))
      }
      for (let i = 0; i < 2; i++) yield* Effect.ignore(firebase.protect(Effect.fail("timeout")))
      assert.deepStrictEqual((yield* get("/health")).json.circuits.firebase, { state: "closed", failures: 2 })
      for (let i = 0; i < 3; i++) yield* Effect.ignore(firebase.protect(Effect.fail("timeout")))
      assert.deepStrictEqual((yield* get("/health")).json.circuits.firebase, { state: "open", failures: 5 })
      yield* TestClock.adjust("30 seconds")
      assert.deepStrictEqual((yield* get("/health")).json.circuits.firebase, { state: "half_open", failures: 5 })
      // Recovered: back to 0, though 15 failures happened since the breaker was made.
      yield* firebase.protect(Effect.succeed("ok"))
      const health = (yield* get("/health")).json
      assert.deepStrictEqual([health.status, health.circuits.firebase], ["healthy", { state: "closed", failures: 0 }])
    }).pipe(Effect.provide(Server())))

  it.effect("GET /health: a circuit its failure rate opened shows the failures that opened it", () =>
    Effect.gen(function*() {
      const search = yield* CircuitBreaker.make({
        name: "search",
        trip: CircuitBreaker.failureRate({ threshold: 0.5, window: CircuitBreaker.lastCalls(10), minimumCalls: 10 })
      })
      for (let i = 0; i < 4; i++) yield* search.protect(Effect.succeed("ok"))
      for (let i = 0; i < 5; i++) yield* Effect.ignore(search.protect(Effect.fail("timeout")))
      assert.deepStrictEqual((yield* get("/health")).json.circuits.search, { state: "closed", failures: 5 })
      yield* Effect.ignore(search.protect(Effect.fail("timeout")))
      assert.deepStrictEqual((yield* get("/health")).json.circuits.search, { state: "open", failures: 6 })
    }).pipe(Effect.provide(Server())))

  it.effect("GET /health: a breaker named __proto__ is in circuits like any other", () =>
    Effect.gen(function*() {
      yield* CircuitBreaker.make({ name: "db" })
      yield* Effect.flatMap(CircuitBreaker.make({ name: "__proto__" }), (b) => b.forceOpen())
      const reply = yield* get("/health")
      assert.deepStrictEqual(Object.keys(reply.json.circuits).sort(), ["__proto__", "db"])
      assert.deepStrictEqual(reply.json.circuits["__proto__"], { state: "forced_open", failures: 0 })
    }).pipe(Effect.provide(Server())))

  it.effect("GET /health: only an open circuit degrades it; half-open, disabled and metrics-only stay healthy", () =>
    Effect.gen(function*() {
      // As the seeds' /health (`any_open`): a half-open circuit is recovering, and a disabled or metrics-only one
      // admits every call.
      const db = yield* CircuitBreaker.make({
        name: "db",
        trip: CircuitBreaker.consecutive(1),
        openDuration: "1 second"
      })
      const cache = yield* CircuitBreaker.make({ name: "cache" })
      const queue = yield* CircuitBreaker.make({ name: "queue" })
      yield* cache.disable()
      yield* queue.metricsOnly()
      yield* Effect.ignore(db.protect(Effect.fail("boom")))
      assert.strictEqual((yield* get("/health")).json.status, "degraded")
      yield* TestClock.adjust("1 second")
      const reply = yield* get("/health")
      assert.strictEqual(reply.status, 200)
      assert.deepStrictEqual(reply.json.circuits, {
        cache: { state: "disabled", failures: 0 },
        db: { state: "half_open", failures: 1 },
        queue: { state: "metrics_only", failures: 0 }
      })
      assert.strictEqual(report(reply.json).status, "healthy")
      // The breakers' own health agrees.
      assert.strictEqual((yield* get("/api/v1/resilience/health")).json.status, "healthy")
    }).pipe(Effect.provide(Server())))

  it.effect("GET /health: a forced-open circuit, critical or not, takes it out of healthy", () =>
    Effect.gen(function*() {
      const search = yield* CircuitBreaker.make({ name: "search" })
      assert.strictEqual((yield* get("/health")).json.status, "healthy")
      yield* search.forceOpen()
      const reply = yield* get("/health")
      assert.strictEqual(reply.status, 200)
      assert.strictEqual(report(reply.json).status, "degraded")
      yield* search.reset()
      assert.strictEqual((yield* get("/health")).json.status, "healthy")
    }).pipe(Effect.provide(Server())))

  it.effect("a critical breaker open: /health 503 unhealthy, /health/ready 503 with the reason", () =>
    Effect.gen(function*() {
      const payments = yield* CircuitBreaker.make({ name: "payments" })
      yield* CircuitBreaker.make({ name: "search" })
      assert.strictEqual((yield* get("/health/ready")).status, 200)
      yield* payments.forceOpen()
      const health = yield* get("/health")
      assert.strictEqual(health.status, 503)
      assert.strictEqual(report(health.json).status, "unhealthy")
      const ready = yield* get("/health/ready")
      assert.strictEqual(ready.status, 503)
      const notReady = Schema.decodeUnknownSync(ResilienceApi.NotReady)(ready.json)
      assert.deepStrictEqual(notReady.reasons, ["critical circuit breaker payments is open"])
      yield* payments.reset()
      assert.strictEqual((yield* get("/health/ready")).status, 200)
    }).pipe(Effect.provide(Server({ criticalBreakers: ["payments"] }))))

  it.effect("with a HealthMonitor: monitoring_active, every service field (null before the first check), summary", () =>
    Effect.gen(function*() {
      const monitor = yield* HealthMonitor.HealthMonitor
      yield* monitor.register({ name: "slow", check: Effect.never, interval: "1 hour", timeout: "1 hour" })
      const reply = yield* get("/health")
      assert.strictEqual(reply.status, 200)
      const body = report(reply.json)
      assert.isBoolean(body.monitoring_active)
      assert.deepStrictEqual(Object.keys(reply.json.services.slow).sort(), [
        "consecutive_failures",
        "consecutive_successes",
        "last_check",
        "last_error",
        "response_time",
        "status",
        "total_checks"
      ])
      assert.deepStrictEqual(body.services!.slow, {
        status: "unknown",
        last_check: null,
        response_time: null,
        consecutive_failures: 0,
        consecutive_successes: 0,
        total_checks: 0,
        last_error: null
      })
      assert.deepStrictEqual(body.summary, { total: 1, healthy: 0, degraded: 0, unhealthy: 0, unknown: 1 })
    }).pipe(Effect.provide(Server({}, HealthMonitor.layer()))))

  it.effect("a critical check failing makes /health 503", () =>
    Effect.gen(function*() {
      const monitor = yield* HealthMonitor.HealthMonitor
      yield* monitor.register({
        name: "db",
        check: Effect.fail("refused"),
        interval: "1 hour",
        warningThreshold: 1,
        failureThreshold: 1,
        critical: true
      })
      yield* monitor.runNow("db")
      const reply = yield* get("/health")
      assert.strictEqual(reply.status, 503)
      assert.strictEqual(reply.json.status, "unhealthy")
      assert.strictEqual(reply.json.services.db.status, "unhealthy")
      assert.strictEqual(reply.json.services.db.consecutive_failures, 1)
      assert.isString(reply.json.services.db.last_error)
    }).pipe(Effect.provide(Server({}, HealthMonitor.layer()))))

  it.effect("the degradation level: reported, degraded below critical, out of rotation at the critical level", () =>
    Effect.gen(function*() {
      const cache = yield* CircuitBreakerRegistry.get("cache")
      const llm = yield* CircuitBreakerRegistry.get("llm")
      yield* CircuitBreaker.setState(cache, "Open")
      yield* Effect.yieldNow
      const degraded = yield* get("/health")
      assert.strictEqual(degraded.status, 200)
      assert.strictEqual(degraded.json.degradation_level, 1)
      assert.strictEqual((yield* get("/health/ready")).status, 200)
      yield* CircuitBreaker.setState(llm, "Open")
      yield* Effect.yieldNow
      const critical = yield* get("/health/ready")
      assert.strictEqual(critical.status, 503)
      assert.deepStrictEqual(critical.json.reasons, ["degradation level 3 is critical"])
      assert.strictEqual((yield* get("/health")).json.degradation_level, 3)
    }).pipe(Effect.provide(Server(
      {},
      Degradation.layer({
        rules: [
          { level: 1, breakers: ["cache"], description: "No cache" },
          { level: 3, breakers: ["llm"], description: "No LLM" }
        ]
      }).pipe(
        // The rules name breakers that must exist first.
        Layer.provideMerge(Layer.effectDiscard(
          Effect.all([CircuitBreaker.make({ name: "cache" }), CircuitBreaker.make({ name: "llm" })])
        ))
      )
    ))))
})
