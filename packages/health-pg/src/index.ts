/**
 * @since 0.1.0
 */

/**
 * A PostgreSQL health check for `HealthMonitor`: `SELECT 1` through `@effect/sql-pg`, with its latency and a typed
 * `PgHealthCheckFailed`.
 *
 * @since 0.1.0
 */
export * as PgHealth from "./PgHealth.ts"
