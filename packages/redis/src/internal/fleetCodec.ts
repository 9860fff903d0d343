/**
 * Schemas for what the fleet reads from Redis: script replies, `fleet:events` messages, the reasons they carry. Redis
 * is shared and outlives a release, so whatever is there (a hash edited by hand, a message from another version) is
 * decoded, and what does not decode is skipped by the caller, never trusted.
 *
 * @internal
 */
import * as CircuitBreaker from "@effect-resilience/core/CircuitBreaker"
import * as Schema from "effect/Schema"

const rate = <Tag extends "FailureRate" | "SlowCallRate">(tag: Tag) =>
  Schema.Struct({ _tag: Schema.Literal(tag), rate: Schema.Finite, threshold: Schema.Finite, calls: Schema.Finite })

type Variant<Tag extends CircuitBreaker.Reason["_tag"]> = CircuitBreaker.Reason & { readonly _tag: Tag }

// One schema per reason the breaker knows, keyed by tag: a reason added to the breaker does not compile here until
// it has its schema, rather than being applied as a restore.
const reasons: { readonly [Tag in CircuitBreaker.Reason["_tag"]]: Schema.Codec<Variant<Tag>> } = {
  ConsecutiveFailures: Schema.Struct({ _tag: Schema.Literal("ConsecutiveFailures"), failures: Schema.Finite }),
  FailureRate: rate("FailureRate"),
  SlowCallRate: rate("SlowCallRate"),
  OpenElapsed: Schema.Struct({ _tag: Schema.Literal("OpenElapsed") }),
  ProbeFailed: Schema.Struct({ _tag: Schema.Literal("ProbeFailed") }),
  ProbesSucceeded: Schema.Struct({ _tag: Schema.Literal("ProbesSucceeded"), successes: Schema.Finite }),
  Manual: Schema.Struct({
    _tag: Schema.Literal("Manual"),
    action: Schema.Literals(["forceOpen", "disable", "metricsOnly", "reset", "restore"])
  }),
  Quorum: Schema.Struct({ _tag: Schema.Literal("Quorum"), votes: Schema.Finite, live: Schema.Finite }),
  // Applied from the fleet, and so wrapping another reason.
  Fleet: Schema.Struct({
    _tag: Schema.Literal("Fleet"),
    origin: Schema.String,
    cause: Schema.suspend((): Schema.Codec<CircuitBreaker.Reason> => Reason)
  })
}

const Reason: Schema.Codec<CircuitBreaker.Reason> = Schema.Union(Object.values(reasons))

/** A reason as the scripts store it: JSON. @internal */
export const decodeReason = Schema.decodeUnknownExit(Schema.fromJsonString(Reason))

const Count = Schema.FiniteFromString.check(Schema.isInt(), Schema.isGreaterThanOrEqualTo(0))

/**
 * Every script's reply (see `fleetScripts`): the verdict and the key's state after the script ran. Epoch 0 means the
 * fleet holds no state for the key.
 *
 * @internal
 */
export const Reply = Schema.Tuple([
  Schema.String,
  Count,
  CircuitBreaker.PersistedState.fields.mode,
  CircuitBreaker.PersistedState.fields.phase,
  Schema.FiniteFromString,
  Schema.FiniteFromString,
  Count,
  Schema.FiniteFromString,
  Schema.FiniteFromString,
  Schema.String,
  Schema.String
])

/** @internal */
export type Reply = typeof Reply.Type

/** @internal */
export const decodeReply = Schema.decodeUnknownExit(Reply)

/** A `fleet:events` message: `[breaker, encoded key, reply]`, as JSON. @internal */
export const decodeMessage = Schema.decodeUnknownExit(
  Schema.fromJsonString(Schema.Tuple([Schema.String, Schema.String, Reply]))
)

/** The `states` script's answer: `[encoded key, reply, encoded key, reply, ...]` (each reply decoded apart). @internal */
export const decodeStates = Schema.decodeUnknownExit(Schema.Array(Schema.Unknown))

/** The `heartbeat` script's answer: `["live", count, incarnation]`. @internal */
export const decodeHeartbeat = Schema.decodeUnknownExit(Schema.Tuple([Schema.Literal("live"), Count, Schema.String]))

/** The `incarnation` script's answer: `[id]`. @internal */
export const decodeIncarnation = Schema.decodeUnknownExit(Schema.Tuple([Schema.String]))

/** The `live` script's answer: `[instance, last heartbeat, instance, last heartbeat, ...]`. @internal */
export const decodeLive = Schema.decodeUnknownExit(Schema.Array(Schema.String))
