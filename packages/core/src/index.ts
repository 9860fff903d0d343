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
 * Deferred delivery (queue for retry): messages for a sink whose breaker is open are queued durably and delivered
 * in order, at least once, with idempotency keys and dead letters.
 *
 * @since 0.2.0
 */
export * as DeferredDelivery from "./DeferredDelivery.ts"

/**
 * Degradation levels derived from breaker states by declarative rules, kept current from the registry's transitions.
 *
 * @since 0.2.0
 */
export * as Degradation from "./Degradation.ts"

/**
 * Typed fallback chains: steps tried in order, strategies (stale on error, cache first, degraded mode), and counts of
 * which step served.
 *
 * @since 0.2.0
 */
export * as Fallback from "./Fallback.ts"

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
 * Rate limiting around `effect/persistence`'s limiter: a typed `RateLimiterError` with `retryAfter`, or waiting.
 *
 * @since 0.1.0
 */
export * as RateLimiter from "./RateLimiter.ts"

/**
 * Automated recovery: actions per service with attempts, backoff and cooldown, callbacks and a snapshot.
 *
 * @since 0.1.0
 */
export * as Recovery from "./Recovery.ts"

/**
 * A cache whose failures never reach the caller: timeout, breaker and an optional in-memory L1 around any cache.
 *
 * @since 0.2.0
 */
export * as ResilientCache from "./ResilientCache.ts"

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
