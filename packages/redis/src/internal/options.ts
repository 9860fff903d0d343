/**
 * Option checks shared by the package's constructors: each returns an issue naming the field and what was expected.
 *
 * @internal
 */
import * as Duration from "effect/Duration"
import * as Option from "effect/Option"

/** @internal */
export type Issue = { readonly path: string; readonly message: string }

/** @internal */
export const durationIssue = (path: string, input: unknown, positive: boolean): Issue | undefined => {
  if (input === undefined) return undefined
  const duration = Duration.fromInput(input as Duration.Input)
  if (Option.isNone(duration)) {
    return {
      path,
      message: "Expected a duration (a Duration, a number of milliseconds, or a string like \"2 seconds\")"
    }
  }
  const millis = Duration.toMillis(duration.value)
  if (!Number.isFinite(millis) || (positive ? millis <= 0 : millis < 0)) {
    return {
      path,
      message: `Expected a ${positive ? "positive" : "non-negative"} finite duration, got ${millis} millis`
    }
  }
  return undefined
}

/** @internal */
export const defined = (issues: ReadonlyArray<Issue | undefined>): ReadonlyArray<Issue> =>
  issues.filter((issue): issue is Issue => issue !== undefined)
