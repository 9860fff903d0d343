/**
 * Option validation shared by every module of the toolkit (and open to packages built on it): one error,
 * `PolicyConfigError`, whose issues name the option (`trip[1].minimumCalls`), say what was expected and what was
 * given; Schemas for the values options are made of; and `decode`, which turns a Schema failure into that error.
 *
 * **Example** (Validating a package's own options)
 *
 * ```ts
 * import { PolicyConfig } from "@effect-resilience/core"
 * import { Schema } from "effect"
 *
 * const Options = Schema.Struct({ url: Schema.NonEmptyString, timeout: PolicyConfig.DurationInput({ positive: true }) })
 *
 * const options = PolicyConfig.decode(Options, { url: "", timeout: "5 seconds" }, { kind: "cache", policy: "sessions" })
 * // fails with PolicyConfigError: issues [{ path: "url", message: "Expected a value with a length of at least 1, got \"\"" }]
 * ```
 *
 * @since 0.2.0
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as SchemaIssue from "effect/SchemaIssue"

/**
 * Options that failed validation when a policy was made. Each issue names the option and what was expected.
 *
 * @example
 * ```ts
 * import { CircuitBreaker } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * const program = CircuitBreaker.make({ name: "db", trip: CircuitBreaker.consecutive(0) }).pipe(
 *   Effect.catchTag("PolicyConfigError", (e) => Effect.succeed(e.issues[0].path)) // "trip[0].failures"
 * )
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export class PolicyConfigError extends Schema.TaggedError<PolicyConfigError>()("PolicyConfigError", {
  /** What was being made: "circuit breaker", "retry", "bulkhead"... */
  kind: Schema.String,
  /** The policy's name. */
  policy: Schema.String,
  issues: Schema.Array(Schema.Struct({ path: Schema.String, message: Schema.String }))
}) {
  override get message(): string {
    return `Invalid options for ${this.kind} "${this.policy}":\n${
      this.issues.map((issue) => `  ${issue.path}: ${issue.message}`).join("\n")
    }`
  }
}

const MAX_DURATION_MILLIS = 365 * 86_400_000

const durationForms = "a number of milliseconds, a Duration, or \"<amount> <unit>\" with a unit among nanos, " +
  "micros, millis, seconds, minutes, hours, days, weeks (\"30 seconds\")"

const show = (input: unknown): string => typeof input === "string" ? JSON.stringify(input) : String(input)

// `Duration.fromInput` reads NaN (a number, in a pair, or in an object's fields) as zero: a computed option that
// came out NaN would silently mean "no delay".
const hasNaN = (input: unknown): boolean =>
  typeof input === "number"
    ? Number.isNaN(input)
    : Array.isArray(input)
    ? input.some(hasNaN)
    : typeof input === "object" && input !== null && !Duration.isDuration(input)
    ? Object.values(input).some((value) => typeof value === "number" && Number.isNaN(value))
    : false

/**
 * Why `input` is not an acceptable duration (see `DurationInput`), or `undefined` when it is; for Schemas that
 * accept a duration among other things (a duration or a `Schedule`).
 *
 * @example
 * ```ts
 * import { PolicyConfig } from "@effect-resilience/core"
 *
 * PolicyConfig.durationIssue("5 secnds", { positive: true }) // "Expected a duration, got \"5 secnds\", which is ..."
 * PolicyConfig.durationIssue("5 seconds", { positive: true }) // undefined
 * ```
 *
 * @since 0.2.0
 * @category schemas
 */
export const durationIssue = (input: unknown, options: { readonly positive: boolean }): string | undefined => {
  if (hasNaN(input)) return `Expected a duration, got NaN (${durationForms})`
  const duration = Duration.fromInput(input as Duration.Input)
  if (Option.isNone(duration)) {
    return `Expected a duration, got ${show(input)}, which is not a duration: use ${durationForms}`
  }
  const millis = Duration.toMillis(duration.value)
  if (!Number.isFinite(millis) && millis > 0) {
    return `Expected a finite duration of at most 1 year, got ${Duration.format(duration.value)}`
  }
  if (options.positive ? !(millis > 0) : !(millis >= 0)) {
    return `Expected a ${options.positive ? "positive" : "non-negative"} duration, got ${millis} millis`
  }
  if (millis > MAX_DURATION_MILLIS) {
    return `Expected a duration of at most 1 year (365 days), got ${show(input)} (${Duration.format(duration.value)})`
  }
  return undefined
}

/**
 * A `Duration.Input` (a `Duration`, a number of milliseconds, or a string like `"30 seconds"`) that is positive (or
 * non-negative) and at most 1 year: NaN, infinite and longer durations are rejected, as a year is past any sane
 * delay and longer values are usually a unit mistake. The decoded value is the input as given: read it with
 * `millisOf`.
 *
 * @example
 * ```ts
 * import { PolicyConfig } from "@effect-resilience/core"
 * import { Schema } from "effect"
 *
 * const Options = Schema.Struct({ ttl: PolicyConfig.DurationInput({ positive: true }) })
 * ```
 *
 * @since 0.2.0
 * @category schemas
 */
export const DurationInput = (options: { readonly positive: boolean }) =>
  Schema.Unknown.check(Schema.makeFilter((input) => durationIssue(input, options), undefined, true))

/**
 * An integer of at least 1.
 *
 * @example
 * ```ts
 * import { PolicyConfig } from "@effect-resilience/core"
 * import { Schema } from "effect"
 *
 * const Options = Schema.Struct({ maxKeys: PolicyConfig.PositiveInt })
 * ```
 *
 * @since 0.2.0
 * @category schemas
 */
export const PositiveInt = Schema.Int.check(Schema.isGreaterThanOrEqualTo(1))

/**
 * An integer of at least 0.
 *
 * @example
 * ```ts
 * import { PolicyConfig } from "@effect-resilience/core"
 * import { Schema } from "effect"
 *
 * const Options = Schema.Struct({ retries: PolicyConfig.NonNegativeInt })
 * ```
 *
 * @since 0.2.0
 * @category schemas
 */
export const NonNegativeInt = Schema.Int.check(Schema.isGreaterThanOrEqualTo(0))

/**
 * An integer from 1 to `max`: for a count that sizes what is allocated up front (an event buffer, a window's ring),
 * where a huge value would fail later as a `RangeError`, or take the process's memory, instead of here.
 *
 * @example
 * ```ts
 * import { PolicyConfig } from "@effect-resilience/core"
 * import { Schema } from "effect"
 *
 * const Options = Schema.Struct({ buffer: PolicyConfig.PositiveIntUpTo(100_000) })
 * ```
 *
 * @since 0.2.0
 * @category schemas
 */
export const PositiveIntUpTo = (max: number) => PositiveInt.check(Schema.isLessThanOrEqualTo(max))

/**
 * The most events a subscriber may fall behind (`eventBuffer` of breakers, retries and health monitors): the
 * buffer is allocated when the policy is made.
 *
 * @example
 * ```ts
 * import { PolicyConfig } from "@effect-resilience/core"
 *
 * const buffer = Math.min(1_000_000, PolicyConfig.maxEventBuffer)
 * ```
 *
 * @since 0.2.0
 * @category schemas
 */
export const maxEventBuffer = 100_000

// 50 for 50% is the usual slip: say what was probably meant.
const percentHint = (n: number): string =>
  Number.isInteger(n) && n > 1 && n <= 100 ? ` (a share, not a percent: write ${n / 100} for ${n}%)` : ""

/**
 * A finite share in (0, 1]: a rate threshold, a quorum share. An integer in (1, 100] is reported as a likely percent.
 *
 * @example
 * ```ts
 * import { PolicyConfig } from "@effect-resilience/core"
 * import { Schema } from "effect"
 *
 * const Options = Schema.Struct({ threshold: PolicyConfig.Fraction })
 * ```
 *
 * @since 0.2.0
 * @category schemas
 */
export const Fraction = Schema.Number.check(
  Schema.makeFilter((n: number) =>
    n > 0 && n <= 1 ? undefined : `Expected a share in (0, 1], got ${n}${percentHint(n)}`
  )
)

/**
 * A finite probability in [0, 1].
 *
 * @example
 * ```ts
 * import { PolicyConfig } from "@effect-resilience/core"
 * import { Schema } from "effect"
 *
 * const Options = Schema.Struct({ failureRate: PolicyConfig.Probability })
 * ```
 *
 * @since 0.2.0
 * @category schemas
 */
export const Probability = Schema.Number.check(
  Schema.makeFilter((n: number) =>
    n >= 0 && n <= 1 ? undefined : `Expected a probability in [0, 1], got ${n}${percentHint(n)}`
  )
)

/**
 * `value`, or `fallback` when `value` is `undefined`. Use it (never `??`) to fill in a default before `decode`: an
 * option given as `null` then reaches the Schema and fails, rather than silently meaning "the default".
 *
 * @example
 * ```ts
 * import { PolicyConfig } from "@effect-resilience/core"
 *
 * const raw = (options: { readonly maxKeys?: number | undefined }) => ({
 *   maxKeys: PolicyConfig.orDefault(options.maxKeys, 10_000)
 * })
 * ```
 *
 * @since 0.2.0
 * @category utils
 */
export const orDefault = <A>(value: A | undefined, fallback: A): A => value === undefined ? fallback : value

/**
 * The milliseconds of a `Duration.Input` that `DurationInput` has accepted.
 *
 * @example
 * ```ts
 * import { PolicyConfig } from "@effect-resilience/core"
 *
 * PolicyConfig.millisOf("2 seconds") // 2000
 * ```
 *
 * @since 0.2.0
 * @category utils
 */
export const millisOf = (input: Duration.Input): number => Duration.toMillis(Duration.fromInputUnsafe(input))

type Path = ReadonlyArray<PropertyKey | { readonly key: PropertyKey }> | undefined

const formatIssues = SchemaIssue.makeFormatterStandardSchemaV1()

const keyOf = (segment: PropertyKey | { readonly key: PropertyKey }): PropertyKey =>
  typeof segment === "object" && segment !== null ? segment.key : segment

const formatPath = (path: Path): string =>
  (path ?? []).reduce<string>((acc, segment) => {
    const key = keyOf(segment)
    return typeof key === "number" ? `${acc}[${key}]` : acc === "" ? String(key) : `${acc}.${String(key)}`
  }, "")

const valueAt = (value: unknown, path: Path): unknown =>
  (path ?? []).reduce<unknown>(
    (acc, segment) =>
      typeof acc === "object" && acc !== null ? (acc as Record<PropertyKey, unknown>)[keyOf(segment)] : undefined,
    value
  )

// Says what was given, so that a user reading the error need not look up their own config.
const withActual = (message: string, actual: unknown): string =>
  message.includes(", got ") || typeof actual === "function" || typeof actual === "object" || actual === undefined
    ? message
    : `${message}, got ${typeof actual === "string" ? JSON.stringify(actual) : String(actual)}`

/**
 * Decodes `raw` options (defaults already filled in) with `schema`, collecting every issue into one
 * `PolicyConfigError` for `context` (what is being made, and its name).
 *
 * @example
 * ```ts
 * import { PolicyConfig } from "@effect-resilience/core"
 * import { Schema } from "effect"
 *
 * const decodePort = (raw: unknown) =>
 *   PolicyConfig.decode(Schema.Struct({ port: PolicyConfig.PositiveInt }), raw, { kind: "server", policy: "api" })
 * ```
 *
 * @since 0.2.0
 * @category decoding
 */
export const decode = <S extends Schema.Top>(
  schema: S,
  raw: unknown,
  context: { readonly kind: string; readonly policy: string }
): Effect.Effect<S["Type"], PolicyConfigError, S["DecodingServices"]> =>
  Schema.decodeUnknownEffect(schema)(raw, { errors: "all" }).pipe(
    Effect.mapError((error) =>
      new PolicyConfigError({
        kind: context.kind,
        policy: context.policy,
        issues: formatIssues(error.issue).issues.map((issue) => ({
          path: formatPath(issue.path),
          message: withActual(issue.message, valueAt(raw, issue.path))
        }))
      })
    )
  )

/**
 * Names the configuration variables in a `PolicyConfigError` about options read from configuration: an issue on
 * `maxEntries` reads `FALLBACK_STORE_MAX_ENTRIES (maxEntries)`, the variable an operator set. `variables` maps each
 * option to its variable; issues on other options are left as they are.
 *
 * @example
 * ```ts
 * import { PolicyConfig } from "@effect-resilience/core"
 *
 * const error = new PolicyConfig.PolicyConfigError({
 *   kind: "server",
 *   policy: "api",
 *   issues: [{ path: "port", message: "Expected a value greater than or equal to 1, got 0" }]
 * })
 * PolicyConfig.withVariables(error, { port: "PORT" }).issues[0].path // "PORT (port)"
 * ```
 *
 * @since 0.2.0
 * @category decoding
 */
export const withVariables = (
  error: PolicyConfigError,
  variables: Readonly<Record<string, string>>
): PolicyConfigError =>
  new PolicyConfigError({
    kind: error.kind,
    policy: error.policy,
    issues: error.issues.map((issue) => {
      const option = /^[^.[]+/.exec(issue.path)?.[0]
      const variable = option === undefined ? undefined : variables[option]
      return variable === undefined ? issue : { path: `${variable} (${issue.path})`, message: issue.message }
    })
  })

/**
 * A `PolicyConfigError` with one issue, for a rule a Schema cannot see (a duplicate name in a registry, say).
 *
 * @example
 * ```ts
 * import { PolicyConfig } from "@effect-resilience/core"
 *
 * const duplicate = PolicyConfig.error({ kind: "policy", policy: "search" }, "name", "Expected a unique name")
 * ```
 *
 * @since 0.2.0
 * @category constructors
 */
export const error = (
  context: { readonly kind: string; readonly policy: string },
  path: string,
  message: string
): PolicyConfigError => new PolicyConfigError({ ...context, issues: [{ path, message }] })
