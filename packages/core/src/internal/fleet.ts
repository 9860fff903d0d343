/**
 * A breaker's side of a `BreakerFleet`: what it announces, what it applies, and how it settles the calls whose
 * outcome the fleet decides (a leased probe, a call under `global` counting).
 *
 * @internal
 */
import type * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import type * as Exit from "effect/Exit"
import type * as BreakerFleet from "../BreakerFleet.ts"
import * as internal from "./circuitBreaker.ts"

/** What settling through the fleet needs of the breaker. @internal */
export interface Recorder {
  readonly config: internal.Config
  readonly emit: internal.Emit
  /** Publishes the transitions emitted so far. */
  readonly flush: Effect.Effect<void>
  /** The outcome of a call's exit, by the breaker's predicates (which are the user's, and may throw). */
  readonly classify: (exit: Exit.Exit<unknown, unknown>) => number
  /** The outcome of a call whose exit a predicate threw on: a defect, by `isDefectFailure`. Never throws. */
  readonly classifyThrown: (defect: unknown) => number
  /** Counts an outcome into the breaker-wide totals (and a failure into the key's recent failures). */
  readonly countTotals: (
    cell: internal.Cell,
    outcome: number,
    exit: Exit.Exit<unknown, unknown>,
    now: number,
    duration: number
  ) => void
  /** Adds slow calls to the breaker-wide total. */
  readonly countSlow: (calls: number) => void
  /** The open duration a trip of `cell` would start now. */
  readonly openMillis: (cell: internal.Cell, now: number) => Effect.Effect<number>
}

/**
 * The breaker's membership in a fleet. `applying` is true while a fleet state is applied, so that what the fleet
 * sent is not announced back to it.
 *
 * @internal
 */
export class Link {
  membership: BreakerFleet.Membership | undefined = undefined
  applying = false

  /** Trips and closes are news for the fleet; Open -> HalfOpen is not (every instance derives it from openUntil). */
  transition(cell: internal.Cell, to: internal.StateTag, reason: internal.Reason, at: number, shadow: boolean): void {
    if (this.membership === undefined || this.applying || shadow || reason._tag === "Manual" || to === "HalfOpen") {
      return
    }
    this.membership.announce({
      key: cell.key,
      kind: to === "Open" ? "trip" : "close",
      state: internal.persist(cell),
      reason,
      at
    })
  }

  /** Manual controls always go to the fleet, even when they change nothing here: another instance may differ. */
  manual(key: string | undefined, cell: internal.Cell, reason: internal.Reason, now: number): void {
    if (this.membership !== undefined && !this.applying) {
      this.membership.announce({ key, kind: "manual", state: internal.persist(cell), reason, at: now })
    }
  }

  /** The breaker evicted the key's circuit: the fleet may forget what it keeps for the key. */
  evicted(key: string): void {
    if (this.membership?.forget !== undefined) this.membership.forget(key)
  }

  /** Runs `f`, which applies what the fleet sent, without announcing it back. */
  apply(f: () => void): void {
    this.applying = true
    try {
      f()
    } finally {
      this.applying = false
    }
  }
}

/** @internal */
export const verdictOf = (outcome: number) =>
  outcome === internal.SUCCESS
    ? "success" as const
    : outcome === internal.FAILURE
    ? "failure" as const
    : "ignored" as const

/**
 * What an outcome asks of the fleet (a leased probe settled, a globally counted call recorded): true when the fleet
 * decided it, false when it could not be reached and the key decides locally.
 *
 * @internal
 */
export type Ask = (outcome: number, duration: number, now: number, openMillis: number) => Effect.Effect<boolean>

/**
 * Settles a call whose outcome the fleet decides. The outcome is asked of the fleet (`ask`); when the fleet decided,
 * the key only tallies it (fenced by its generation, as `record` is), and when the fleet could not be reached, it is
 * recorded locally, as a solo breaker would.
 *
 * @internal
 */
export const settle = (
  recorder: Recorder,
  cell: internal.Cell,
  generation: number,
  probe: number,
  startedAt: number,
  measured: number,
  clock: Clock.Clock,
  exit: Exit.Exit<unknown, unknown>,
  outcome: number,
  ask: Ask
): Effect.Effect<void> => {
  const now = clock.currentTimeMillisUnsafe()
  // Monotonic under a slow-call policy; -1 otherwise, measured on the wall clock then, never below 0.
  const duration = measured >= 0 ? measured : Math.max(0, now - startedAt)
  recorder.countTotals(cell, outcome, exit, now, duration)
  return Effect.flatMap(
    recorder.openMillis(cell, now),
    (openMillis) =>
      Effect.flatMap(ask(outcome, duration, now, openMillis), (decided) => {
        const slowBefore = cell.slowCalls
        if (decided) {
          // The fleet's new state, if any, has been applied, orphaning a probe's local slot: give it back.
          if (probe >= 0) internal.releaseProbe(cell, recorder.config, generation, probe)
          internal.tally(cell, recorder.config, generation, outcome, duration, now)
        } else {
          internal.record(cell, recorder.config, generation, probe, outcome, duration, now, openMillis, recorder.emit)
        }
        recorder.countSlow(cell.slowCalls - slowBefore)
        return recorder.flush
      })
  )
}
