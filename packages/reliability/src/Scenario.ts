/**
 * The shape every reliability scenario has: the runner (main.ts) runs each one, bounded in time, and the report
 * writer turns its Result into a table in docs/reliability.md and a JSON line on stdout.
 */
import type * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"

/** How the runner was started: `--quick`, `--minutes N`, `--long`. */
export interface Context {
  readonly quick: boolean
  readonly long: boolean
  /** Soak length from `--minutes N` (undefined: the scenario's own default). */
  readonly minutes: number | undefined
  /** A fresh directory of this scenario's own (data dirs, logs); removed by the runner unless the run failed. */
  readonly workDir: string
  /** Progress lines go to stderr (stdout carries only the final JSON line). */
  readonly log: (message: string) => Effect.Effect<void>
}

/** One row of the scenario's table: metric, value, target (optional), and whether it met the target. */
export interface Row {
  readonly metric: string
  readonly value: string
  readonly target?: string | undefined
  /** `undefined`: reported only (timings are reported, not asserted). */
  readonly ok?: boolean | undefined
}

/** A row whose target is none at all: `count` (of `of`, when given) must be 0. */
export const none = (metric: string, count: number, of?: number): Row => ({
  metric,
  value: of === undefined ? String(count) : `${count} of ${of}`,
  target: "0",
  ok: count === 0
})

export interface Result {
  readonly rows: ReadonlyArray<Row>
  /**
   * Hard failures that fail the run (exit 1): a lost acknowledged write, a 500, an auth bypass, a torn entry
   * served. Empty when the scenario passed.
   */
  readonly failed: ReadonlyArray<string>
  /** Machine-readable figures for the JSON line (counts, milliseconds). */
  readonly figures: Readonly<Record<string, number | string | boolean>>
  /** Free text shown under the table (what was done, what was not). */
  readonly notes?: ReadonlyArray<string> | undefined
}

export interface Scenario {
  /** Unique, kebab-case; `--only name` selects it. */
  readonly name: string
  /** A one-line title for the report. */
  readonly title: string
  /** Whether it runs in `--quick`. */
  readonly quick: boolean
  /** Each run gets its own scope: child processes and servers started in it are stopped when it closes. */
  readonly run: (ctx: Context) => Effect.Effect<Result, unknown, Scope.Scope>
}
