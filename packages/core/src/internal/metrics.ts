/**
 * Pull-based metrics: a policy keeps plain counters on its hot path and registers Effect `Metric` series whose
 * values are read from those counters when metrics are exported, so a call never touches a metric.
 *
 * @internal
 */
import type * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import type * as Scope from "effect/Scope"

/** A counter series read from `get`. @internal */
export const counter = (
  name: string,
  description: string,
  attributes: Record<string, string>,
  get: () => number
): Series => ({
  metric: Metric.counter(name, { description }),
  attributes,
  get: () => ({ count: get(), incremental: true })
})

/** A gauge series read from `get`. @internal */
export const gauge = (
  name: string,
  description: string,
  attributes: Record<string, string>,
  get: () => number
): Series => ({ metric: Metric.gauge(name, { description }), attributes, get: () => ({ value: get() }) })

/** @internal */
export interface Series {
  readonly metric: Metric.Metric<never, unknown>
  readonly attributes: Record<string, string>
  readonly get: () => unknown
}

/**
 * Registers series in the `MetricRegistry` of `context`; returns a function that removes one series again.
 *
 * @internal
 */
export const registerUnsafe = (context: Context.Context<never>, series: Series): () => void => {
  const registration = Metric.registerUnsafe(Metric.withAttributes(series.metric, series.attributes), context, {
    get: series.get,
    update: () => {},
    modify: () => {}
  })
  return registration.remove
}

/**
 * Registers series for as long as the current scope is open.
 *
 * @internal
 */
export const register = (series: ReadonlyArray<Series>): Effect.Effect<void, never, Scope.Scope> =>
  // Registered and given their finalizer in one step: an interruption in between would leave them registered for good.
  Effect.asVoid(Effect.acquireRelease(
    Effect.map(Effect.context<never>(), (context) => series.map((s) => registerUnsafe(context, s))),
    (removals) => Effect.sync(() => removals.forEach((remove) => remove()))
  ))
