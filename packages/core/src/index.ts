/**
 * @since 0.1.0
 */

/**
 * Bounded concurrency with a FIFO queue, and an adaptive (AIMD) limit that finds itself.
 *
 * @since 0.1.0
 */
export * as Bulkhead from "./Bulkhead.ts"

/**
 * Fault, latency and outcome injection, seeded by `Random` and switchable at run time.
 *
 * @since 0.1.0
 */
export * as Chaos from "./Chaos.ts"

/**
 * Circuit breakers: fail fast while a dependency is down, probe it as it recovers.
 *
 * @since 0.1.0
 */
export * as CircuitBreaker from "./CircuitBreaker.ts"

/**
 * Every breaker and named policy by name: snapshots, controls and one stream of transitions.
 *
 * @since 0.1.0
 */
export * as CircuitBreakerRegistry from "./CircuitBreakerRegistry.ts"

/**
 * Starts another attempt when the first is slow; the first success wins.
 *
 * @since 0.1.0
 */
export * as Hedge from "./Hedge.ts"

/**
 * A named policy: the parts composed in the one order that works.
 *
 * @since 0.1.0
 */
export * as Policy from "./Policy.ts"

/**
 * Rate limiting around `effect/persistence`'s limiter: typed `RateLimited` with `retryAfter`, or waiting.
 *
 * @since 0.1.0
 */
export * as RateLimiter from "./RateLimiter.ts"

/**
 * Retries as `Schedule` combinators: backoffs, jitter, Retry-After, and a budget that caps retries.
 *
 * @since 0.1.0
 */
export * as Retry from "./Retry.ts"

/**
 * Per-attempt timeouts that interrupt the attempt, with a typed `TimeoutError`.
 *
 * @since 0.1.0
 */
export * as Timeout from "./Timeout.ts"
