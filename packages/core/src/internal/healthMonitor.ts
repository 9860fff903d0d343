/**
 * The health of one check as plain data, and the pure steps that move it: recording an outcome against the
 * thresholds, and folding every check into an overall status and a summary.
 *
 * @internal
 */
import type { Status, StatusChange } from "../HealthMonitor.ts"

/** What one run of a check said. @internal */
export type Outcome = "Success" | "Warning" | "Failure"

/** @internal */
export interface Config {
  readonly warningThreshold: number
  readonly failureThreshold: number
}

/** A check's mutable record; `toState` copies it out. @internal */
export interface Cell {
  readonly service: string
  status: Status
  critical: boolean
  lastCheckAt: number | null
  responseTimeMillis: number | null
  consecutiveFailures: number
  consecutiveSuccesses: number
  totalChecks: number
  totalFailures: number
  lastError: string | null
  /** When the first failing run of the current failure streak started. */
  failingSince: number | null
  unhealthySince: number | null
  detectionMillis: number | null
  recoveryMillis: number | null
}

/** @internal */
export const makeCell = (service: string, critical: boolean): Cell => ({
  service,
  status: "Unknown",
  critical,
  lastCheckAt: null,
  responseTimeMillis: null,
  consecutiveFailures: 0,
  consecutiveSuccesses: 0,
  totalChecks: 0,
  totalFailures: 0,
  lastError: null,
  failingSince: null,
  unhealthySince: null,
  detectionMillis: null,
  recoveryMillis: null
})

/**
 * Records one run that started at `startedAt` and ended at `now`; returns the status change it caused, if any.
 *
 * @internal
 */
export const record = (
  cell: Cell,
  config: Config,
  outcome: Outcome,
  error: string | null,
  startedAt: number,
  now: number
): StatusChange | undefined => {
  const from = cell.status
  cell.totalChecks++
  cell.lastCheckAt = now
  cell.responseTimeMillis = now - startedAt
  let to: Status
  if (outcome === "Success") {
    cell.consecutiveFailures = 0
    cell.consecutiveSuccesses++
    cell.failingSince = null
    to = "Healthy"
  } else if (outcome === "Warning") {
    // A warning is neither a success nor a failure: it leaves the failure streak alone, and only a success
    // brings a check back from Unhealthy.
    cell.consecutiveSuccesses = 0
    cell.lastError = error
    to = from === "Unhealthy" ? "Unhealthy" : "Degraded"
  } else {
    cell.consecutiveFailures++
    cell.consecutiveSuccesses = 0
    cell.totalFailures++
    cell.lastError = error
    if (cell.failingSince === null) cell.failingSince = startedAt
    to = cell.consecutiveFailures >= config.failureThreshold
      ? "Unhealthy"
      : cell.consecutiveFailures >= config.warningThreshold && from !== "Unhealthy"
      ? "Degraded"
      // Below the warning threshold one blip changes nothing.
      : from
  }
  if (to === from) return undefined
  if (to === "Unhealthy") {
    cell.unhealthySince = now
    cell.detectionMillis = now - (cell.failingSince ?? now)
  } else if (to === "Healthy" && cell.unhealthySince !== null) {
    cell.recoveryMillis = now - cell.unhealthySince
    cell.unhealthySince = null
  }
  cell.status = to
  return {
    service: cell.service,
    from,
    to,
    critical: cell.critical,
    error: to === "Healthy" ? null : error,
    at: now,
    consecutiveFailures: cell.consecutiveFailures
  }
}

/**
 * The overall status: Unhealthy if a critical check is; Degraded if any check is Degraded or a non-critical one is
 * Unhealthy; Healthy if some check is Healthy; Unknown otherwise (no checks, or all still Unknown).
 *
 * @internal
 */
export const overall = (cells: Iterable<Cell>): Status => {
  let degraded = false
  let healthy = false
  for (const cell of cells) {
    if (cell.status === "Unhealthy") {
      if (cell.critical) return "Unhealthy"
      degraded = true
    } else if (cell.status === "Degraded") degraded = true
    else if (cell.status === "Healthy") healthy = true
  }
  return degraded ? "Degraded" : healthy ? "Healthy" : "Unknown"
}

/** @internal */
export const summarize = (cells: Iterable<Cell>) => {
  const summary = { total: 0, healthy: 0, degraded: 0, unhealthy: 0, unknown: 0 }
  for (const cell of cells) {
    summary.total++
    if (cell.status === "Healthy") summary.healthy++
    else if (cell.status === "Degraded") summary.degraded++
    else if (cell.status === "Unhealthy") summary.unhealthy++
    else summary.unknown++
  }
  return summary
}

/** Metric code of a status. @internal */
export const statusCodes: Record<Status, number> = { Unknown: 0, Healthy: 1, Degraded: 2, Unhealthy: 3 }
