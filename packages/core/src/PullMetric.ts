/**
 * Effect `Metric`s read from plain counters when metrics are exported: a hot path bumps a number and never touches a
 * metric. Every policy of this library reports its figures this way; packages built on it (Redis, HTTP) and users'
 * own services can too.
 *
 * **Example** (A counter and a gauge for a cache)
 *
 * ```ts
 * import { PullMetric } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * const program = Effect.gen(function*() {
 *   const figures = { hits: 0, size: 0 }
 *   yield* PullMetric.register([
 *     PullMetric.counter("cache_hits_total", "Reads served from the cache", { cache: "users" }, () => figures.hits),
 *     PullMetric.gauge("cache_entries", "Entries held", { cache: "users" }, () => figures.size)
 *   ])
 *   figures.hits++ // seen by the next export
 * }).pipe(Effect.scoped)
 * ```
 *
 * @since 0.1.0
 */
import type * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import * as internal from "./internal/metrics.ts"

/**
 * One series: a metric, its attributes, and where its value comes from.
 *
 * @example
 * ```ts
 * import { PullMetric } from "@effect-resilience/core"
 *
 * const series: PullMetric.Series = PullMetric.gauge("queue_depth", "Jobs waiting", { queue: "mail" }, () => 0)
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type Series = internal.Series

/**
 * A counter series whose total is `get()` (a number that only grows).
 *
 * @example
 * ```ts
 * import { PullMetric } from "@effect-resilience/core"
 *
 * let sent = 0
 * const series = PullMetric.counter("mails_sent_total", "Mails sent", { provider: "smtp" }, () => sent)
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const counter: (
  name: string,
  description: string,
  attributes: Record<string, string>,
  get: () => number
) => Series = internal.counter

/**
 * A gauge series whose value is `get()`.
 *
 * @example
 * ```ts
 * import { PullMetric } from "@effect-resilience/core"
 *
 * const connections = new Set<string>()
 * const series = PullMetric.gauge("connections", "Open connections", {}, () => connections.size)
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const gauge: (
  name: string,
  description: string,
  attributes: Record<string, string>,
  get: () => number
) => Series = internal.gauge

/**
 * Registers series in the current `MetricRegistry` for as long as the scope is open.
 *
 * @example
 * ```ts
 * import { PullMetric } from "@effect-resilience/core"
 *
 * const watch = (queue: ReadonlyArray<unknown>) =>
 *   PullMetric.register([PullMetric.gauge("queue_depth", "Jobs waiting", {}, () => queue.length)])
 * ```
 *
 * @since 0.1.0
 * @category registration
 */
export const register: (series: ReadonlyArray<Series>) => Effect.Effect<void, never, Scope.Scope> = internal.register
