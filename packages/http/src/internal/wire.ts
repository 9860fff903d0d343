/**
 * Pure mappings from core's snapshots and reports to the API's snake_case wire shapes.
 *
 * Names and keys are user data (a key is often a host or a tenant id): maps of them are built with
 * `Object.fromEntries`, which defines own properties, where `out[name] = x` would set the prototype for `__proto__`.
 *
 * @internal
 */
import * as CircuitBreaker from "@effect-resilience/core/CircuitBreaker"
import type * as HealthMonitor from "@effect-resilience/core/HealthMonitor"
import type * as ResilienceApi from "../ResilienceApi.ts"

/** @internal */
export const defaultKey = "default"

const states: Record<CircuitBreaker.State, ResilienceApi.WireState> = {
  Closed: "closed",
  Open: "open",
  HalfOpen: "half_open",
  ForcedOpen: "forced_open",
  Disabled: "disabled",
  MetricsOnly: "metrics_only"
}

/** @internal */
export const wireState = (state: CircuitBreaker.State): ResilienceApi.WireState => states[state]

/** @internal */
export const iso = (millis: number | null): string | null => millis === null ? null : new Date(millis).toISOString()

/** @internal */
export const stats = (s: CircuitBreaker.Snapshot): ResilienceApi.CircuitStats => ({
  state: wireState(s.state),
  failure_count: s.failureCount,
  // Null for a breaker that trips on rates only: it has no count of failures that opens it.
  failure_threshold: s.thresholds.failures,
  success_count: s.halfOpen === null ? s.successCount : s.halfOpen.successes,
  success_threshold: s.thresholds.successes,
  failure_rate: s.failureRate,
  total_calls: s.totalCalls,
  state_changes: s.stateChanges,
  opened_at: iso(s.openedAt),
  last_failure_time: iso(s.lastFailureAt),
  time_in_state_ms: Math.max(0, Math.round(s.timeInStateMillis)),
  retry_after_ms: s.retryAfterMillis === null ? null : Math.max(0, Math.round(s.retryAfterMillis))
})

// The circuit that speaks for a breaker: its default one, unless a key is worse off (a keyed breaker, say one
// circuit per host, may never call its default circuit). Its state and its figures go together, wherever shown.
const main = (snapshots: ReadonlyArray<CircuitBreaker.Snapshot>): CircuitBreaker.Snapshot | undefined => {
  let head = snapshots.find((s) => s.key === defaultKey) ?? snapshots[0]
  if (head === undefined) return undefined
  for (const s of snapshots) if (CircuitBreaker.isWorse(s.state, head.state)) head = s
  return head
}

/** @internal */
export const entry = (
  snapshots: ReadonlyArray<CircuitBreaker.Snapshot>,
  maxKeys: number
): ResilienceApi.CircuitBreakerEntry | undefined => {
  const head = main(snapshots)
  if (head === undefined) return undefined
  const keyed = snapshots.filter((s) => s.key !== defaultKey)
  if (keyed.length === 0) return stats(head)
  // The most recently used keys first: the ones an operator is looking for.
  const shown = [...keyed].sort((a, b) => b.lastCallAt - a.lastCallAt).slice(0, maxKeys)
  const keys = Object.fromEntries(shown.map((s) => [s.key, stats(s)] as const))
  return { ...stats(head), keys, keys_not_shown: keyed.length - shown.length }
}

/** The breaker's state: its default circuit's, unless one of its keys is worse off. @internal */
export const worstState = (snapshots: ReadonlyArray<CircuitBreaker.Snapshot>): CircuitBreaker.State =>
  main(snapshots)?.state ?? "Closed"

/** @internal */
export const isOpen = (state: CircuitBreaker.State): boolean => state === "Open" || state === "ForcedOpen"

/** @internal */
export interface Breaker {
  readonly name: string
  readonly snapshots: ReadonlyArray<CircuitBreaker.Snapshot>
}

/** @internal */
export const breakersHealth = (breakers: ReadonlyArray<Breaker>, now: number): ResilienceApi.BreakersHealth => {
  const byState = { closed: 0, open: 0, half_open: 0 }
  const open: Array<string> = []
  for (const b of breakers) {
    const state = worstState(b.snapshots)
    if (isOpen(state)) {
      byState.open++
      open.push(b.name)
    } else if (state === "HalfOpen") byState.half_open++
    else byState.closed++
  }
  return {
    status: byState.open === 0 ? "healthy" : byState.open * 2 > breakers.length ? "critical" : "degraded",
    timestamp: new Date(now).toISOString(),
    total_circuits: breakers.length,
    circuits_by_state: byState,
    open_circuits: open
  }
}

const percentage = (state: CircuitBreaker.State): number => isOpen(state) ? 0 : state === "HalfOpen" ? 50 : 100

/** @internal */
export const summary = (breakers: ReadonlyArray<Breaker>): Array<ResilienceApi.SummaryRow> =>
  breakers.flatMap((b) => {
    const head = main(b.snapshots)
    if (head === undefined) return []
    const figures = stats(head)
    const state = worstState(b.snapshots)
    return [{
      name: b.name,
      state: wireState(state),
      failure_count: figures.failure_count,
      failure_threshold: figures.failure_threshold,
      success_count: figures.success_count,
      success_threshold: figures.success_threshold,
      health_percentage: percentage(state)
    }]
  })

// The failures counting toward opening a circuit, as the seeds' /health shows them: in a row (or in the rate
// window) while closed; while open or half-open, those that opened it. Not the lifetime count, which only grows
// (`failure_count` of the API).
const tripFailures = (s: CircuitBreaker.Snapshot): number => s.tripFailures ?? s.window.failures

/** @internal */
export const circuits = (
  breakers: ReadonlyArray<Breaker>
): Record<string, { readonly state: ResilienceApi.WireState; readonly failures: number }> =>
  Object.fromEntries(breakers.map((b) =>
    [b.name, {
      state: wireState(worstState(b.snapshots)),
      // A keyed breaker's: its key closest to opening (or the one that opened).
      failures: b.snapshots.reduce((n, s) => Math.max(n, tripFailures(s)), 0)
    }] as const
  ))

const checkStatus = {
  Unknown: "unknown",
  Healthy: "healthy",
  Degraded: "degraded",
  Unhealthy: "unhealthy"
} as const

/** @internal */
export const monitor = (report: HealthMonitor.Report) => {
  const services = Object.fromEntries(
    Object.entries(report.services).map(([name, s]) =>
      [name, {
        status: checkStatus[s.status],
        last_check: iso(s.lastCheckAt),
        response_time: s.responseTimeMillis,
        consecutive_failures: s.consecutiveFailures,
        consecutive_successes: s.consecutiveSuccesses,
        total_checks: s.totalChecks,
        last_error: s.lastError
      }] as const
    )
  )
  return {
    monitoring_active: report.monitoring,
    services,
    summary: {
      total: report.summary.total,
      healthy: report.summary.healthy,
      degraded: report.summary.degraded,
      unhealthy: report.summary.unhealthy,
      unknown: report.summary.unknown
    }
  }
}
