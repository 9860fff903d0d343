/**
 * @since 0.1.0
 */

/**
 * Alerts from health status changes: severities, deduplication, maintenance windows, and sinks (log, webhook).
 *
 * @since 0.1.0
 */
export * as Alerts from "./Alerts.ts"

/**
 * Breakers of the same name in several instances acting as one: the contract a shared store (`RedisFleet`) fulfils.
 *
 * @since 0.1.0
 */
export * as BreakerFleet from "./BreakerFleet.ts"

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
 * A key-value store with TTL on the local disk: atomic writes, checksums, safe keys. The embedded default.
 *
 * @since 0.1.0
 */
export * as FallbackStore from "./FallbackStore.ts"

/**
 * Built-in health checks: an HTTP endpoint, a breaker's state, disk space.
 *
 * @since 0.1.0
 */
export * as HealthCheck from "./HealthCheck.ts"

/**
 * Health monitoring as scheduled fibers: thresholds, a report, and a stream of status changes.
 *
 * @since 0.1.0
 */
export * as HealthMonitor from "./HealthMonitor.ts"

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
 * Option validation for every module: `PolicyConfigError`, the Schemas options are made of, and `decode`.
 *
 * @since 0.2.0
 */
export * as PolicyConfig from "./PolicyConfig.ts"

/**
 * Effect `Metric`s read from plain counters when exported, so that a hot path never touches a metric.
 *
 * @since 0.1.0
 */
export * as PullMetric from "./PullMetric.ts"

/**
 * Rate limiting around `effect/persistence`'s limiter: typed `RateLimited` with `retryAfter`, or waiting.
 *
 * @since 0.1.0
 */
export * as RateLimiter from "./RateLimiter.ts"

/**
 * Automated recovery: actions per service with attempts, backoff and cooldown, callbacks and stats.
 *
 * @since 0.1.0
 */
export * as Recovery from "./Recovery.ts"

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
