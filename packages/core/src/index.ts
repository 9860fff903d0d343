/**
 * @since 0.1.0
 */

/**
 * Circuit breakers: fail fast while a dependency is down, probe it as it recovers.
 *
 * @since 0.1.0
 */
export * as CircuitBreaker from "./CircuitBreaker.ts"

/**
 * Every breaker by name: snapshots, controls and one stream of transitions.
 *
 * @since 0.1.0
 */
export * as CircuitBreakerRegistry from "./CircuitBreakerRegistry.ts"
