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
 * - `health_check_status`, `health_check_response_time_ms` per `service`; `alerts_sent_total{severity}`;
 *   `degradation_level`.
 *
 * Every series is labelled by its policy's name (`breaker`, `bulkhead`, ...), never by call.
 *
 * @since 0.2.0
 */
import * as Effect from "effect/Effect"
import * as HttpRouter from "effect/http/HttpRouter"
import * as HttpServerResponse from "effect/http/HttpServerResponse"
import type * as Layer from "effect/Layer"
import * as PrometheusMetrics from "effect/observability/PrometheusMetrics"

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

/**
 * The route `GET /metrics` (or `options.path`), for Prometheus to scrape.
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
export const layer = (options?: Options | undefined): Layer.Layer<never, never, HttpRouter.HttpRouter> =>
  HttpRouter.add(
    "GET",
    options?.path ?? "/metrics",
    Effect.map(render(options), (body) => HttpServerResponse.text(body, { contentType }))
  )
