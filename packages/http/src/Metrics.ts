/**
 * Prometheus metrics: `GET /metrics` in the Prometheus text exposition format (0.0.4).
 *
 * **Details**
 *
 * Every policy of the toolkit registers pull-based Effect `Metric`s (read from plain counters when scraped, see
 * `PullMetric`), so this route is Effect's own `PrometheusMetrics` formatter over the current `MetricRegistry`: it
 * already groups series into families with `HELP` and `TYPE`, escapes label values and writes histograms as
 * cumulative `_bucket{le=...}`, `_sum` and `_count` series, so no formatter of ours is needed. Among the families:
 *
 * - breakers: `circuit_breaker_state`, `circuit_breaker_calls_total{outcome}`, `circuit_breaker_rejections_total`,
 *   `circuit_breaker_transitions_total{to}`, `circuit_breaker_slow_calls_total`, `circuit_breaker_keys`, the
 *   latency histogram `circuit_breaker_call_duration_seconds` (buckets: the breaker's `latencyBuckets`) and, with
 *   `perKeyMetrics`, `circuit_breaker_key_state{key}` (removed with the key when it is evicted);
 * - `retry_calls_total`, `retry_retries_total`, `retry_give_ups_total{reason}`; `bulkhead_active`,
 *   `bulkhead_queued`, `bulkhead_rejections_total{reason}`; `rate_limiter_rejections_total`;
 * - `health_check_status`, `health_check_response_time_seconds` per `service`; `alerts_sent_total{severity}`;
 *   `degradation_level`.
 *
 * Every series is labelled by the name of what it measures, never by call: `breaker` for a breaker, `service` for a
 * health check, `fallback` for a fallback, `policy` for the other policies (`bulkhead_active{policy="pool"}`,
 * `retry_retries_total{policy="api"}`); `degradation_level` has no label.
 *
 * The process itself comes out too (on by default; `processMetrics: false` leaves it out), read when scraped:
 *
 * - `process_resident_memory_bytes`, `nodejs_heap_size_used_bytes`, `nodejs_heap_size_total_bytes`;
 * - `nodejs_heap_live_bytes`: the heap used right after the last full (mark-compact) collection, `NaN` before the
 *   first, and `nodejs_gc_full_total`, the full collections since the layer started. `nodejs_heap_size_used_bytes`
 *   also counts the garbage that waits for the next full collection, and climbs in a sawtooth between them: a leak
 *   is the live heap growing from one full collection to the next;
 * - `nodejs_active_resources`: what keeps the event loop alive (`process.getActiveResourcesInfo()`: handles,
 *   requests, timers), the "open handles" a leak makes grow;
 * - `nodejs_eventloop_delay_p50_seconds`, `..._p99_seconds`, `..._max_seconds`: how late the event loop ran a
 *   timer (`perf_hooks.monitorEventLoopDelay`), over the last complete `eventLoopWindow` (until the first one
 *   completes, since the layer started).
 *
 * **Gotchas**
 *
 * - Live fibers: Effect counts them itself when the program runs under `Metric.enableRuntimeMetrics(program)` (or
 *   is provided `Metric.enableRuntimeMetricsLayer`) at its root: it must be in every fiber's context, which a route
 *   cannot arrange. `child_fibers_active` and `child_fibers_started` then come out here like any other metric. It
 *   costs a few map lookups per fiber start and end, so it is left to the program to turn on.
 * - The event-loop figures are the delay beyond the sampling timer's own 10 ms interval (an idle loop reads about
 *   0). The monitor is reset at the end of each window and does not count its first interval after a reset: a
 *   stall that starts in a window's first 10 ms is missed.
 * - Process metrics are registered in the current `MetricRegistry` while the layer lives: with two `/metrics`
 *   layers in one process, the last one built serves them (until its scope closes).
 *
 * @since 0.2.0
 */
import { decode, DurationInput, millisOf, type PolicyConfigError } from "@effect-resilience/core/PolicyConfig"
import * as PullMetric from "@effect-resilience/core/PullMetric"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as HttpRouter from "effect/http/HttpRouter"
import * as HttpServerResponse from "effect/http/HttpServerResponse"
import * as Layer from "effect/Layer"
import * as PrometheusMetrics from "effect/observability/PrometheusMetrics"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import {
  constants,
  monitorEventLoopDelay,
  type NodeGCPerformanceDetail,
  type PerformanceEntry,
  PerformanceObserver
} from "node:perf_hooks"
import { getHeapStatistics } from "node:v8"

/**
 * Options of the `/metrics` route.
 *
 * @example
 * ```ts
 * import type { Metrics } from "@effect-resilience/http"
 *
 * const options: Metrics.Options = { path: "/internal/metrics", prefix: "checkout" }
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export interface Options {
  /** The route. Default: `/metrics`. */
  readonly path?: HttpRouter.PathInput | undefined
  /** Prepended to every family name, with an underscore (`checkout_circuit_breaker_state`). Default: none. */
  readonly prefix?: string | undefined
  /** The process's own metrics (memory, handles, event-loop delay), or `false` to leave them out. Default: on. */
  readonly processMetrics?: ProcessOptions | false | undefined
}

/**
 * Options of the process metrics.
 *
 * @example
 * ```ts
 * import type { Metrics } from "@effect-resilience/http"
 *
 * const options: Metrics.Options = { processMetrics: { eventLoopWindow: "15 seconds" } }
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export interface ProcessOptions {
  /** The event-loop delay percentiles cover the last complete window of this length (positive). Default 5 seconds. */
  readonly eventLoopWindow?: Duration.Input | undefined
}

/**
 * The content type of the Prometheus text format.
 *
 * @example
 * ```ts
 * import { Metrics } from "@effect-resilience/http"
 *
 * const isPrometheus = (contentType: string) => contentType.startsWith(Metrics.contentType.split(";")[0])
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export const contentType = "text/plain; version=0.0.4; charset=utf-8"

/**
 * The metrics of the current `MetricRegistry` in the Prometheus text format.
 *
 * @example
 * ```ts
 * import { Metrics } from "@effect-resilience/http"
 * import { Effect } from "effect"
 *
 * const lines = Effect.map(Metrics.render(), (text) => text.split("\n").length)
 * ```
 *
 * @since 0.2.0
 * @category rendering
 */
export const render = (options?: Pick<Options, "prefix"> | undefined): Effect.Effect<string> =>
  PrometheusMetrics.format(options?.prefix === undefined ? undefined : { prefix: options.prefix })

// The monitor's timer interval: what an idle loop measures, taken off every figure.
const RESOLUTION_MILLIS = 10

// A delay the monitor recorded (nanoseconds, its interval included) as seconds beyond the interval; the monitor
// reports 0 while it has recorded nothing.
const delaySeconds = (nanos: number): number =>
  Number.isFinite(nanos) ? Math.max(0, nanos - RESOLUTION_MILLIS * 1e6) / 1e9 : 0

const ProcessOptionsSchema = Schema.Struct({ eventLoopWindow: DurationInput({ positive: true }) })

/**
 * Registers the process metrics (see the module docs) in the current `MetricRegistry` for as long as the scope is
 * open, and starts the event-loop delay monitor for as long. `layer` does this unless `processMetrics: false`; call
 * it yourself when you serve `render` from a route of your own.
 *
 * @example
 * ```ts
 * import { Metrics } from "@effect-resilience/http"
 * import { Effect } from "effect"
 *
 * const scrape = Effect.andThen(Metrics.processMetrics(), Metrics.render()).pipe(Effect.scoped)
 * ```
 *
 * @since 0.2.0
 * @category rendering
 */
export const processMetrics: (
  options?: ProcessOptions | undefined
) => Effect.Effect<void, PolicyConfigError, Scope.Scope> = Effect.fnUntraced(function*(options?: ProcessOptions) {
  const decoded = yield* decode(ProcessOptionsSchema, { eventLoopWindow: options?.eventLoopWindow ?? "5 seconds" }, {
    kind: "metrics",
    policy: "processMetrics"
  })
  const windowMillis = millisOf(decoded.eventLoopWindow as Duration.Input)
  const monitor = yield* Effect.acquireRelease(
    Effect.sync(() => {
      const histogram = monitorEventLoopDelay({ resolution: RESOLUTION_MILLIS })
      histogram.enable()
      return histogram
    }),
    (histogram) => Effect.sync(() => histogram.disable())
  )
  const read = () => ({
    p50: delaySeconds(monitor.percentile(50)),
    p99: delaySeconds(monitor.percentile(99)),
    max: delaySeconds(monitor.max)
  })
  // Until the first window completes, the figures are read from the running monitor.
  let window: ReturnType<typeof read> | undefined
  const delay = (pick: keyof ReturnType<typeof read>) => () => (window ?? read())[pick]
  yield* Effect.forkScoped(Effect.forever(Effect.andThen(
    Effect.sleep(windowMillis),
    Effect.sync(() => {
      window = read()
      monitor.reset()
    })
  )))
  // Read as each full collection ends (the observer runs soon after it, before much is allocated again).
  const full = { collections: 0, liveBytes: Number.NaN }
  yield* Effect.acquireRelease(
    Effect.sync(() => {
      const observer = new PerformanceObserver((list) => {
        for (const entry of list.getEntries()) {
          // A gc entry's `detail` says which kind of collection it was; Node's types leave it off `PerformanceEntry`.
          const { detail } = entry as PerformanceEntry & { readonly detail?: NodeGCPerformanceDetail }
          if (detail?.kind !== constants.NODE_PERFORMANCE_GC_MAJOR) continue
          full.collections++
          full.liveBytes = getHeapStatistics().used_heap_size
        }
      })
      observer.observe({ entryTypes: ["gc"] })
      return observer
    }),
    (observer) => Effect.sync(() => observer.disconnect())
  )
  yield* PullMetric.register([
    PullMetric.gauge(
      "process_resident_memory_bytes",
      "Resident memory size in bytes",
      {},
      () => process.memoryUsage.rss()
    ),
    PullMetric.gauge("nodejs_heap_size_used_bytes", "V8 heap used in bytes", {}, () => process.memoryUsage().heapUsed),
    PullMetric.gauge(
      "nodejs_heap_size_total_bytes",
      "V8 heap allocated in bytes",
      {},
      () => process.memoryUsage().heapTotal
    ),
    PullMetric.gauge(
      "nodejs_heap_live_bytes",
      "V8 heap used right after the last full (mark-compact) collection, in bytes; NaN before the first",
      {},
      () => full.liveBytes
    ),
    PullMetric.counter(
      "nodejs_gc_full_total",
      "Full (mark-compact) collections since the metrics started",
      {},
      () => full.collections
    ),
    PullMetric.gauge(
      "nodejs_active_resources",
      "Resources keeping the event loop alive (handles, requests, timers)",
      {},
      () => process.getActiveResourcesInfo().length
    ),
    PullMetric.gauge(
      "nodejs_eventloop_delay_p50_seconds",
      "Median event-loop delay over the last window, in seconds",
      {},
      delay("p50")
    ),
    PullMetric.gauge(
      "nodejs_eventloop_delay_p99_seconds",
      "99th percentile of the event-loop delay over the last window, in seconds",
      {},
      delay("p99")
    ),
    PullMetric.gauge(
      "nodejs_eventloop_delay_max_seconds",
      "Largest event-loop delay over the last window, in seconds",
      {},
      delay("max")
    )
  ])
})

/**
 * The route `GET /metrics` (or `options.path`), for Prometheus to scrape, with the process metrics unless
 * `processMetrics: false`.
 *
 * @example
 * ```ts
 * import { Metrics } from "@effect-resilience/http"
 * import { NodeHttpServer } from "@effect/platform-node"
 * import { Layer } from "effect"
 * import { HttpRouter } from "effect/http"
 * import { createServer } from "node:http"
 *
 * const Server = HttpRouter.serve(Metrics.layer()).pipe(
 *   Layer.provide(NodeHttpServer.layer(createServer, { port: 9464 }))
 * )
 * ```
 *
 * @since 0.2.0
 * @category layers
 */
export const layer = (
  options?: Options | undefined
): Layer.Layer<never, PolicyConfigError, HttpRouter.HttpRouter> => {
  const route = HttpRouter.add(
    "GET",
    options?.path ?? "/metrics",
    Effect.map(render(options), (body) => HttpServerResponse.text(body, { contentType }))
  )
  return options?.processMetrics === false
    ? route
    : Layer.merge(route, Layer.effectDiscard(processMetrics(options?.processMetrics)))
}
