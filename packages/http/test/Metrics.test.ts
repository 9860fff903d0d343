import {
  Alerts,
  Bulkhead,
  CircuitBreaker,
  CircuitBreakerRegistry,
  Degradation,
  HealthMonitor,
  RateLimiter,
  Retry
} from "@effect-resilience/core"
import { Metrics } from "@effect-resilience/http"
import { NodeHttpServer } from "@effect/platform-node"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber, Layer, Metric, Schedule } from "effect"
import { HttpClient, HttpRouter } from "effect/http"
import { TestClock } from "effect/testing"
import parse, { type Family } from "parse-prometheus-text-format"

class Boom {
  readonly _tag = "Boom"
}

// Scrapes /metrics over a real server on a loopback port and parses the text with a Prometheus parser.
const scrape = Effect.gen(function*() {
  const response = yield* HttpClient.get("/metrics")
  assert.strictEqual(response.status, 200)
  assert.isTrue(String(response.headers["content-type"]).startsWith("text/plain; version=0.0.4"))
  return parse(yield* response.text)
})

const family = (families: ReadonlyArray<Family>, name: string): Family => {
  const found = families.find((f) => f.name === name)
  assert.isDefined(found, `family ${name} missing`)
  return found!
}

const sample = (f: Family, labels: Record<string, string>) =>
  f.metrics.find((m) => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v))

const Server = HttpRouter.serve(Metrics.layer(), { disableLogger: true, disableListenLog: true }).pipe(
  Layer.provideMerge(NodeHttpServer.layerTest)
)

describe("Metrics", () => {
  it.effect("every family of the toolkit comes out of /metrics, parsed by a Prometheus parser", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ name: "db", trip: CircuitBreaker.consecutive(1) })
      yield* Effect.ignore(breaker.protect(Effect.fail(new Boom())))
      yield* Effect.ignore(breaker.protect(Effect.void))
      const retry = yield* Retry.make({ name: "api", schedule: Schedule.recurs(1) })
      yield* Effect.ignore(retry.protect(Effect.fail(new Boom())))
      const bulkhead = yield* Bulkhead.make({ name: "pool", maxConcurrent: 1, maxQueue: 0 })
      const held = yield* Effect.forkChild(bulkhead.protect(Effect.never), { startImmediately: true })
      yield* Effect.ignore(bulkhead.protect(Effect.void))
      const limiter = yield* RateLimiter.make({ name: "quota", limit: 1, window: "1 minute" }).pipe(
        Effect.provide(RateLimiter.layerStoreMemory)
      )
      yield* Effect.ignore(limiter.protect(Effect.void))
      yield* Effect.ignore(limiter.protect(Effect.void))
      const monitor = yield* HealthMonitor.make()
      yield* monitor.register({ name: "postgres", check: Effect.fail(new Boom()), interval: "10 seconds", jitter: 0 })
      yield* Alerts.make({ changes: monitor.changes }).pipe(Effect.provideService(Alerts.AlertSink, Alerts.logSink))
      yield* Degradation.make({ rules: [{ level: 2, breakers: ["db"], description: "No database" }] })
      yield* TestClock.adjust("1 minute")

      const families = yield* scrape
      const state = family(families, "circuit_breaker_state")
      assert.strictEqual(state.type, "GAUGE")
      assert.strictEqual(sample(state, { breaker: "db" })?.value, "1")
      const calls = family(families, "circuit_breaker_calls_total")
      assert.strictEqual(calls.type, "COUNTER")
      assert.strictEqual(sample(calls, { breaker: "db", outcome: "failure" })?.value, "1")
      assert.strictEqual(sample(family(families, "circuit_breaker_rejections_total"), { breaker: "db" })?.value, "1")
      assert.strictEqual(
        sample(family(families, "circuit_breaker_transitions_total"), { breaker: "db", to: "Open" })?.value,
        "1"
      )
      assert.strictEqual(sample(family(families, "retry_retries_total"), { policy: "api" })?.value, "1")
      assert.strictEqual(
        sample(family(families, "retry_give_ups_total"), { policy: "api", reason: "ScheduleDone" })?.value,
        "1"
      )
      assert.strictEqual(sample(family(families, "bulkhead_active"), {})?.value, "1")
      family(families, "bulkhead_queued")
      assert.isAbove(
        family(families, "bulkhead_rejections_total").metrics.reduce((n, m) => n + Number(m.value), 0),
        0
      )
      assert.strictEqual(family(families, "rate_limiter_rejections_total").metrics[0].value, "1")
      assert.strictEqual(
        sample(family(families, "health_check_status"), { service: "postgres" })?.value !== undefined,
        true
      )
      family(families, "health_check_response_time_seconds")
      assert.isAbove(family(families, "alerts_sent_total").metrics.reduce((n, m) => n + Number(m.value), 0), 0)
      assert.strictEqual(family(families, "degradation_level").metrics[0].value, "2")
      const latency = family(families, "circuit_breaker_call_duration_seconds")
      assert.strictEqual(latency.type, "HISTOGRAM")
      // parse-prometheus-text-format 1.1.1 folds a histogram's labelled series into one sample, without labels:
      // fine with one breaker.
      assert.strictEqual(latency.metrics[0].buckets?.["+Inf"], "1")
      yield* Fiber.interrupt(held)
    }).pipe(Effect.provide([Server, CircuitBreakerRegistry.layer]), Effect.scoped))

  it.effect("the latency histogram counts each call in its bucket, with the sum in seconds", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ name: "search", latencyBuckets: ["10 millis", "100 millis"] })
      for (const millis of [5, 50, 500]) {
        const call = yield* Effect.forkChild(breaker.protect(Effect.sleep(millis)), { startImmediately: true })
        yield* TestClock.adjust(millis)
        yield* Fiber.join(call)
      }
      yield* Effect.ignore(breaker.protect(Effect.fail(new Boom())))
      const histogram = family(yield* scrape, "circuit_breaker_call_duration_seconds")
      // The parser folds a labelled histogram into one sample and drops its _sum and _count: the buckets come from
      // the text, the sum from the registry's snapshot.
      assert.deepStrictEqual(histogram.metrics[0].buckets, { "0.01": "2", "0.1": "3", "+Inf": "4" })
      const snapshot = (yield* Metric.snapshot).find((m) =>
        m.id === "circuit_breaker_call_duration_seconds" && m.attributes?.breaker === "search"
      )
      assert.strictEqual(snapshot?.type, "Histogram")
      const state = snapshot!.state as Metric.HistogramState
      assert.strictEqual(state.count, 4)
      assert.closeTo(state.sum, 0.555, 1e-9)
    }).pipe(Effect.provide(Server), Effect.scoped))

  it.effect("latencyBuckets are validated: a bound that is not a positive duration is a PolicyConfigError", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(CircuitBreaker.make({ name: "bad", latencyBuckets: ["10 millis", 0] }))
      assert.strictEqual(error._tag, "PolicyConfigError")
      assert.deepStrictEqual(error.issues.map((issue) => issue.path), ["latencyBuckets[1]"])
    }).pipe(Effect.scoped))

  it.effect("latencyBuckets: false leaves the histogram out", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ name: "plain", latencyBuckets: false })
      yield* breaker.protect(Effect.void)
      const families = yield* scrape
      assert.isUndefined(families.find((f) => f.name === "circuit_breaker_call_duration_seconds"))
      assert.strictEqual(sample(family(families, "circuit_breaker_calls_total"), { outcome: "success" })?.value, "1")
    }).pipe(Effect.provide(Server), Effect.scoped))

  it.effect("per-key series only with perKeyMetrics, and an evicted key's series disappear", () =>
    Effect.gen(function*() {
      const keyed = yield* CircuitBreaker.make({ name: "hosts", perKeyMetrics: true, keys: { maxKeys: 1 } })
      const unkeyed = yield* CircuitBreaker.make({ name: "quiet", keys: { maxKeys: 1 } })
      yield* keyed.protectKey(Effect.void, "a.example")
      yield* unkeyed.protectKey(Effect.void, "a.example")
      let keyState = family(yield* scrape, "circuit_breaker_key_state")
      assert.deepStrictEqual(keyState.metrics.map((m) => [m.labels?.breaker, m.labels?.key]), [["hosts", "a.example"]])
      yield* TestClock.adjust("1 second")
      yield* keyed.protectKey(Effect.void, "b.example")
      keyState = family(yield* scrape, "circuit_breaker_key_state")
      assert.deepStrictEqual(keyState.metrics.map((m) => m.labels?.key), ["b.example"])
    }).pipe(Effect.provide(Server), Effect.scoped))
})
