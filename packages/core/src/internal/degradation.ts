/**
 * Degradation levels, pure: which rules hold for the breakers' states, and which of them sets the level.
 *
 * @internal
 */
import type { State } from "../CircuitBreaker.ts"

/** A rule with its defaults filled in. @internal */
export interface Rule {
  readonly level: number
  readonly breakers: ReadonlyArray<string>
  readonly when: "all" | "any"
  readonly description: string
  readonly states: ReadonlyArray<State>
}

/** What the rules say about a set of states. @internal */
export interface Verdict {
  readonly level: number
  /** The index of the rule that sets the level, -1 at level 0. */
  readonly rule: number
  /** The indexes of every rule that holds, in the order given. */
  readonly active: ReadonlyArray<number>
  /** The breakers named by some rule that are in a state that rule counts as down, in the order first named. */
  readonly down: ReadonlyArray<string>
}

const holds = (rule: Rule, stateOf: (breaker: string) => State): boolean =>
  rule.when === "all"
    ? rule.breakers.every((breaker) => rule.states.includes(stateOf(breaker)))
    : rule.breakers.some((breaker) => rule.states.includes(stateOf(breaker)))

/**
 * The level is the highest among the rules that hold; on a tie the rule listed first sets it, so that the
 * description shown is stable.
 *
 * @internal
 */
export const evaluate = (rules: ReadonlyArray<Rule>, stateOf: (breaker: string) => State): Verdict => {
  let level = 0
  let rule = -1
  const active: Array<number> = []
  const down: Array<string> = []
  rules.forEach((r, i) => {
    for (const breaker of r.breakers) {
      if (r.states.includes(stateOf(breaker)) && !down.includes(breaker)) down.push(breaker)
    }
    if (!holds(r, stateOf)) return
    active.push(i)
    if (r.level > level) {
      level = r.level
      rule = i
    }
  })
  return { level, rule, active, down }
}

/** Whether two verdicts differ in anything a subscriber would see. @internal */
export const same = (a: Verdict, b: Verdict): boolean =>
  a.level === b.level && a.rule === b.rule && a.active.length === b.active.length &&
  a.active.every((index, i) => b.active[i] === index) && a.down.length === b.down.length &&
  a.down.every((breaker, i) => b.down[i] === breaker)
