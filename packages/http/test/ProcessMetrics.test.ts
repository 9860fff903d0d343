import { Metrics } from "@effect-resilience/http"
import { NodeHttpServer } from "@effect/platform-node"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber, Layer, Metric } from "effect"
import { HttpClient, HttpRouter } from "effect/http"
import { TestClock } from "effect/testing"
import { setFlagsFromString } from "node:v8"
import { runInNewContext } from "node:vm"
import parse, { type Family } from "parse-prometheus-text-format"

// Scrapes /metrics over a real server on a loopback port and parses the text with a Prometheus parser.
const scrape = Effect.gen(function*() {
  const response = yield* HttpClient.get("/metrics")
  assert.strictEqual(response.status, 200)
  return parse(yield* response.text)
})

const gauge = (families: ReadonlyArray<Family>, name: string): number => {
  const found = families.find((f) => f.name === name)
  assert.isDefined(found, `family ${name} missing`)
  assert.strictEqual(found!.type, "GAUGE", name)
  assert.strictEqual(found!.metrics.length, 1, name)
  return Number(found!.metrics[0].value)
}

const counter = (families: ReadonlyArray<Family>, name: string): number => {
  const found = families.find((f) => f.name === name)
  assert.isDefined(found, `family ${name} missing`)
  assert.strictEqual(found!.type, "COUNTER", name)
  return Number(found!.metrics[0].value)
}

// A full (mark-compact) collection now: `--expose-gc` set at run time puts `gc` in a new context.
const fullCollection = Effect.sync(() => {
  setFlagsFromString("--expose-gc")
  ;(runInNewContext("gc") as () => void)()
})

const processFamilies = [
  "process_resident_memory_bytes",
  "nodejs_heap_size_used_bytes",
  "nodejs_heap_size_total_bytes",
  "nodejs_heap_live_bytes",
  "nodejs_gc_full_total",
  "nodejs_active_resources",
  "nodejs_eventloop_delay_p50_seconds",
  "nodejs_eventloop_delay_p99_seconds",
  "nodejs_eventloop_delay_max_seconds"
]

const serve = (options?: Metrics.Options) =>
  HttpRouter.serve(Metrics.layer(options), { disableLogger: true, disableListenLog: true }).pipe(
    Layer.provideMerge(NodeHttpServer.layerTest)
  )

// Keeps the event loop busy (no timer can run meanwhile): what a stall looks like to the monitor.
const block = (millis: number) =>
  Effect.sync(() => {
    const until = performance.now() + millis
    while (performance.now() < until) {
      // busy
    }
  })

// One turn of the event loop, so that the monitor's timer (due after a block) runs: two `setImmediate`s put a timers
// phase between them.
const turn = Effect.promise(() => new Promise<void>((resolve) => setImmediate(() => setImmediate(resolve))))

describe("Metrics: process metrics", () => {
  it.effect("memory, handles and event-loop delay come out by default, in base units", () =>
    Effect.gen(function*() {
      const families = yield* scrape
      const rss = gauge(families, "process_resident_memory_bytes")
      const used = gauge(families, "nodejs_heap_size_used_bytes")
      const total = gauge(families, "nodejs_heap_size_total_bytes")
      // Bytes, not kilobytes nor megabytes: a Node process holds more than 1 MB and less than 64 GB.
      assert.isAbove(rss, 2 ** 20)
      assert.isBelow(rss, 2 ** 36)
      assert.isAbove(used, 0)
      assert.isAtMost(used, total)
      assert.isAtMost(total, rss)
      // The server's listening socket at least.
      assert.isAtLeast(gauge(families, "nodejs_active_resources"), 1)
      const p50 = gauge(families, "nodejs_eventloop_delay_p50_seconds")
      const p99 = gauge(families, "nodejs_eventloop_delay_p99_seconds")
      const max = gauge(families, "nodejs_eventloop_delay_max_seconds")
      assert.isAtLeast(p50, 0)
      assert.isAtMost(p50, p99)
      assert.isAtMost(p99, max)
      // Seconds: no test run stalls its loop for a minute.
      assert.isBelow(max, 60)
    }).pipe(Effect.provide(serve()), Effect.scoped))

  it.effect("a full collection is counted, and the heap it left is the live heap", () =>
    Effect.gen(function*() {
      const before = counter(yield* scrape, "nodejs_gc_full_total")
      yield* fullCollection
      // The observer hears of it on a later turn of the event loop.
      let families = yield* scrape
      for (let turns = 0; turns < 50 && counter(families, "nodejs_gc_full_total") === before; turns++) {
        yield* turn
        families = yield* scrape
      }
      assert.isAbove(counter(families, "nodejs_gc_full_total"), before)
      const live = gauge(families, "nodejs_heap_live_bytes")
      assert.isAbove(live, 2 ** 20)
      assert.isAtMost(live, gauge(families, "nodejs_heap_size_total_bytes"))
    }).pipe(Effect.provide(serve()), Effect.scoped))

  it.effect("a stalled event loop shows in the delay, in seconds", () =>
    Effect.gen(function*() {
      // The monitor measures from one timer run to the next: one run first, then the stall.
      yield* block(30)
      yield* turn
      yield* block(120)
      yield* turn
      const max = gauge(yield* scrape, "nodejs_eventloop_delay_max_seconds")
      assert.isAtLeast(max, 0.1)
      assert.isBelow(max, 10)
    }).pipe(Effect.provide(serve()), Effect.scoped))

  it.effect("after a window, the figures are the last complete window's: a stall before it no longer shows", () =>
    Effect.gen(function*() {
      yield* block(30)
      yield* turn
      yield* block(120)
      yield* turn
      assert.isAtLeast(gauge(yield* scrape, "nodejs_eventloop_delay_max_seconds"), 0.1)
      // The window ends: the stall was in it, so it still shows.
      yield* TestClock.adjust("2 seconds")
      assert.isAtLeast(gauge(yield* scrape, "nodejs_eventloop_delay_max_seconds"), 0.1)
      // The next window had no stall.
      yield* block(30)
      yield* turn
      yield* turn
      yield* TestClock.adjust("2 seconds")
      assert.isBelow(gauge(yield* scrape, "nodejs_eventloop_delay_max_seconds"), 0.1)
    }).pipe(Effect.provide(serve({ processMetrics: { eventLoopWindow: "2 seconds" } })), Effect.scoped))

  it.effect("processMetrics: false leaves them out", () =>
    Effect.gen(function*() {
      const names = (yield* scrape).map((f) => f.name)
      for (const name of processFamilies) assert.notInclude(names, name)
    }).pipe(Effect.provide(serve({ processMetrics: false })), Effect.scoped))

  it.effect("the series go when the layer's scope closes", () =>
    Effect.gen(function*() {
      yield* Effect.scoped(Effect.provide(Effect.asVoid(scrape), serve()))
      const ids = (yield* Metric.snapshot).map((m) => m.id)
      for (const name of processFamilies) assert.notInclude(ids, name)
    }))

  it.effect("a bad eventLoopWindow is a PolicyConfigError naming the field", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(Metrics.processMetrics({ eventLoopWindow: 0 }))
      assert.strictEqual(error._tag, "PolicyConfigError")
      assert.deepStrictEqual(error.issues.map((issue) => issue.path), ["eventLoopWindow"])
    }).pipe(Effect.scoped))

  it.effect("live fibers: Effect's own child_fibers_active, once the program enables runtime metrics", () =>
    Effect.gen(function*() {
      const held = yield* Effect.forkChild(Effect.never, { startImmediately: true })
      const families = yield* scrape
      assert.isAtLeast(gauge(families, "child_fibers_active"), 1)
      yield* Fiber.interrupt(held)
    }).pipe(Effect.provide(serve()), Effect.scoped, Effect.provide(Metric.enableRuntimeMetricsLayer)))
})
