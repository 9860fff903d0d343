/**
 * Marks the errors with which a policy turns a call away locally (a full bulkhead, a rate limit, an open breaker).
 * They say nothing about the dependency's health, so a circuit breaker never counts them as failures: a breaker
 * outside a bulkhead must not open because the bulkhead is full.
 *
 * @internal
 */
import { hasProperty } from "effect/Predicate"

/** @internal */
export const LocalRejectionTypeId: unique symbol = Symbol.for("@effect-resilience/core/LocalRejection")

/** @internal */
export type LocalRejectionTypeId = typeof LocalRejectionTypeId

/** @internal */
export const isLocalRejection = (u: unknown): boolean => hasProperty(u, LocalRejectionTypeId)
