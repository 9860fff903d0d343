/**
 * Schemas shared by the package's option decoders (`PolicyConfig.decode`), for checks whose message the standard
 * Schemas would word less helpfully, or would word with a secret in it.
 *
 * @internal
 */
import { DurationInput } from "@effect-resilience/core/PolicyConfig"
import * as Duration from "effect/Duration"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"

/**
 * Any value for which `check` returns no message. The message should say what was given: `PolicyConfig.decode`
 * appends the value itself only to a message without `, got `, so a check on a secret must say it.
 *
 * @internal
 */
export const satisfying = (check: (input: unknown) => string | undefined) =>
  Schema.Unknown.check(Schema.makeFilter(check, undefined, true))

/** A non-blank string; `expected` describes it ("a non-empty SQL statement"). @internal */
export const NonBlankString = (expected: string) =>
  satisfying((input) =>
    typeof input === "string" && input.trim() !== ""
      ? undefined
      : `Expected ${expected}, got ${typeof input === "string" ? JSON.stringify(input) : String(input)}`
  )

/** A `Redacted` string; the message never shows what was given, which may be the secret itself. @internal */
export const RedactedString = satisfying((input) =>
  Redacted.isRedacted(input)
    ? undefined
    : `Expected a Redacted string (Redacted.make(...)), got a ${input === null ? "null" : typeof input}`
)

const Address = satisfying((input) =>
  typeof input === "object" && input !== null
    ? undefined
    : `Expected { host, port }, got ${typeof input === "string" ? JSON.stringify(input) : String(input)}`
).pipe(Schema.decodeTo(Schema.Struct({
  host: NonBlankString("a non-empty host name or IP address"),
  port: satisfying((port) =>
    Number.isInteger(port) && (port as number) >= 1 && (port as number) <= 65535
      ? undefined
      : `Expected an integer from 1 to 65535, got ${typeof port === "string" ? JSON.stringify(port) : String(port)}`
  )
})))

/** `lazy`: build at once and connect later, for `RedisStore.layer` (the URL client) and Sentinel alike. @internal */
export const Lazy = Schema.optional(
  satisfying((lazy) => typeof lazy === "boolean" ? undefined : `Expected true or false, got ${JSON.stringify(lazy)}`)
)

/** The fields of `RedisSentinel.Options`, shared with `RedisStore.layerSentinel`. @internal */
export const sentinelFields = {
  masterName: NonBlankString("a non-empty string (the name in `sentinel monitor <name> ...`)"),
  sentinels: Schema.Array(Address).check(
    Schema.makeFilter((sentinels) =>
      sentinels.length > 0 ? undefined : "Expected a non-empty array of { host, port }, got []"
    )
  ),
  password: Schema.optional(RedactedString),
  timeout: Schema.optional(DurationInput({ positive: true })),
  connectTimeout: Schema.optional(DurationInput({ positive: true })),
  lazy: Lazy
}

/**
 * A TTL in Redis' whole milliseconds, rounded up: `0` for none (absent, or infinite), `undefined` for a value that is
 * not a positive duration, which is refused (sent, Redis would expire the key at once: a write acknowledged and lost).
 *
 * @internal
 */
export const ttlMillis = (ttl: Duration.Input | undefined): number | undefined => {
  if (ttl === undefined) return 0
  const duration = Duration.fromInput(ttl)
  if (Option.isNone(duration)) return undefined
  const millis = Duration.toMillis(duration.value)
  if (!(millis > 0)) return undefined
  if (!Number.isFinite(millis)) return 0
  // Past this, Redis refuses the expiry ("value is not an integer or out of range"): a write refused for good.
  return millis > MAX_TTL_MILLIS ? undefined : Math.ceil(millis)
}

// About 285,000 years: far inside the 64-bit milliseconds Redis adds to its clock, and exact as a JavaScript number.
const MAX_TTL_MILLIS = Number.MAX_SAFE_INTEGER

/** Why a TTL was refused, as `FallbackStore` says it (or, for one too long, why Redis would). @internal */
export const ttlIssue = (ttl: unknown): string => {
  const duration = Duration.fromInput(ttl as Duration.Input)
  return Option.isSome(duration) && Duration.toMillis(duration.value) > MAX_TTL_MILLIS
    ? `Expected ttl to be at most ${MAX_TTL_MILLIS} millis (or infinite), got ${String(ttl)}`
    : `Expected ttl to be a positive duration, got ${String(ttl)}`
}

// Redis gets text as UTF-8, in which a lone surrogate (half of a character such as an emoji, as `text.slice` can
// leave) is written as U+FFFD: two keys would be one, and a value would read back other than written.
const loneSurrogate = /\p{Cs}/u

/** @internal */
export const hasLoneSurrogate = (text: string): boolean => loneSurrogate.test(text)

/** Why `what` (say "a key") cannot go to Redis. @internal */
export const brokenTextIssue = (what: string): string =>
  `Expected ${what} of whole characters, got one with a lone surrogate (half of a character such as an emoji), ` +
  "which Redis would store as U+FFFD"
