/**
 * The pure parts of recovery: when a rule triggers, how long to wait after an attempt, and the books behind the
 * stats.
 *
 * @internal
 */
import type { StatusChange } from "../HealthMonitor.ts"

/** @internal */
export type ActionTag = "Restart" | "ClearCache" | "Reconnect" | "ReloadConfig" | "Escalate"

/** @internal */
export const actionTags: ReadonlyArray<ActionTag> = ["Restart", "ClearCache", "Reconnect", "ReloadConfig", "Escalate"]

/**
 * Whether a change starts a sequence: with `after`, the first change to a failing status with at least that many
 * consecutive failures; without, the change to `Unhealthy`.
 *
 * @internal
 */
export const triggers = (after: number | undefined, change: StatusChange): boolean =>
  after === undefined
    ? change.to === "Unhealthy"
    : (change.to === "Degraded" || change.to === "Unhealthy") && change.consecutiveFailures >= after

/** Whether a change ends a running sequence (or a pending trigger): the service is back, or out of sight. @internal */
export const ends = (change: StatusChange): boolean => change.to === "Healthy" || change.to === "Unknown"

/**
 * The wait after the `attempt`-th attempt (1-based): `base * factor^(attempt - 1)`, at most `max`.
 *
 * @internal
 */
export const backoffMillis = (base: number, factor: number, max: number, attempt: number): number =>
  Math.min(max, base * Math.pow(factor, attempt - 1))

/** @internal */
export interface RecentFailure {
  readonly service: string
  readonly action: ActionTag
  readonly error: string
  readonly at: number
}

/** The totals behind `stats` and the metrics. @internal */
export class Books {
  attempts = 0
  successes = 0
  sequences = 0
  recovered = 0
  escalations = 0
  totalRecoveryMillis = 0
  lastRecoveryMillis = -1
  readonly byAction: Record<ActionTag, number> = {
    Restart: 0,
    ClearCache: 0,
    Reconnect: 0,
    ReloadConfig: 0,
    Escalate: 0
  }
  readonly failures: Array<RecentFailure> = []
  readonly maxFailures: number

  constructor(maxFailures: number) {
    this.maxFailures = maxFailures
  }

  attempt(action: ActionTag): void {
    this.attempts++
    this.byAction[action]++
  }

  fail(failure: RecentFailure): void {
    this.failures.push(failure)
    if (this.failures.length > this.maxFailures) this.failures.shift()
  }

  recover(millis: number): void {
    this.recovered++
    this.totalRecoveryMillis += millis
    this.lastRecoveryMillis = millis
  }
}
