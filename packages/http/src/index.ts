/**
 * The operational HTTP surface of `@effect-resilience`: the monitoring API, health probes, admin controls,
 * Prometheus metrics, live events, a dashboard, and a resilient `HttpClient`.
 *
 * @since 0.2.0
 */

/**
 * The live dashboard page, `GET /dashboard`.
 *
 * @since 0.2.0
 */
export * as Dashboard from "./Dashboard.ts"

/**
 * Live events: a Server-Sent Events stream of breaker transitions, health changes, alerts, degradation levels and
 * admin actions, with resume and heartbeats.
 *
 * @since 0.2.0
 */
export * as Events from "./Events.ts"

/**
 * Prometheus metrics: `GET /metrics` in the text exposition format.
 *
 * @since 0.2.0
 */
export * as Metrics from "./Metrics.ts"

/**
 * A resilient `HttpClient` middleware: a breaker per host, retries honouring `Retry-After`, per-attempt timeouts
 * and a retry budget, made of the toolkit's policies.
 *
 * @since 0.2.0
 */
export * as ResilientHttpClient from "./ResilientHttpClient.ts"

/**
 * Admin actions as events (breaker, key, action, result; never the token), for the live stream and audits.
 *
 * @since 0.2.0
 */
export * as Admin from "./Admin.ts"

/**
 * The admin token check of the admin routes (a Bearer token compared in constant time), for routes of your own.
 *
 * @since 0.2.0
 */
export * as AdminToken from "./AdminToken.ts"

/**
 * The monitoring API, health probes and admin controls as one typed `HttpApi`, with its Schemas and a client.
 *
 * @since 0.2.0
 */
export * as ResilienceApi from "./ResilienceApi.ts"

/**
 * The whole operational surface as one layer to mount in an `HttpRouter`, or served alone.
 *
 * @since 0.2.0
 */
export * as ResilienceHttp from "./ResilienceHttp.ts"
