/**
 * A success value that an `isFailureResult` classified as a failure, carried in the error channel so that every
 * part inside sees a failure (the breaker counts it, the retry retries it). Whoever classified it (a policy, a retry)
 * turns it back into the value on the way out: callers never see it.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import { hasProperty } from "effect/Predicate"

/** @internal */
export const FailureResultTypeId: unique symbol = Symbol.for("@effect-resilience/core/FailureResult")

/** @internal */
export class FailureResult {
  readonly [FailureResultTypeId] = FailureResultTypeId
  readonly _tag = "FailureResult"
  /** The value, and who classified it: only its owner unwraps it. */
  readonly value: unknown
  readonly owner: object
  constructor(value: unknown, owner: object) {
    this.value = value
    this.owner = owner
  }
  get message(): string {
    return "A success value that isFailureResult classified as a failure"
  }
}

/** Whether a typed error is a classified success value, whoever classified it. @internal */
export const isFailureResult = (u: unknown): u is FailureResult => hasProperty(u, FailureResultTypeId)

/** Fails with a `FailureResult` of `owner` when `classify` calls the value a failure. @internal */
export const classifying = <A, E, R>(
  self: Effect.Effect<A, E, R>,
  classify: (value: A) => boolean,
  owner: object
): Effect.Effect<A, E, R> =>
  Effect.flatMap(
    self,
    // The FailureResult never leaves the owner's scope, so it is not in the error type.
    (value) => classify(value) ? Effect.fail(new FailureResult(value, owner) as never) : Effect.succeed(value)
  )

/** Turns the owner's `FailureResult` back into its value. @internal */
export const unwrapping = <A, E, R>(self: Effect.Effect<A, E, R>, owner: object): Effect.Effect<A, E, R> =>
  Effect.catchIf(
    self,
    (error): boolean => isFailureResult(error) && error.owner === owner,
    (error) => Effect.succeed((error as unknown as FailureResult).value as A)
  )
