/**
 * The monitoring API, health probes and admin controls as one `HttpApi`: every request and response has a Schema,
 * so the same value serves the routes (`ResilienceHttp.layer`), the OpenAPI document, and a typed client.
 * The wire is snake_case JSON; errors are RFC 9457 problem bodies (`application/problem+json`).
 *
 * **Example** (A typed client for a running service)
 *
 * ```ts
 * import { ResilienceApi } from "@effect-resilience/http"
 * import { Effect } from "effect"
 * import { FetchHttpClient } from "effect/http"
 *
 * const openCircuits = Effect.gen(function*() {
 *   const client = yield* ResilienceApi.client({ baseUrl: "http://127.0.0.1:8080" })
 *   const health = yield* client.monitoring.health()
 *   return health.open_circuits
 * }).pipe(Effect.provide(FetchHttpClient.layer))
 * ```
 *
 * @since 0.2.0
 */
import * as HttpApi from "effect/http-api/HttpApi"
import * as HttpApiClient from "effect/http-api/HttpApiClient"
import * as HttpApiEndpoint from "effect/http-api/HttpApiEndpoint"
import * as HttpApiError from "effect/http-api/HttpApiError"
import * as HttpApiGroup from "effect/http-api/HttpApiGroup"
import * as HttpApiMiddleware from "effect/http-api/HttpApiMiddleware"
import * as HttpApiSchema from "effect/http-api/HttpApiSchema"
import * as OpenApi from "effect/http-api/OpenApi"
import type * as HttpClient from "effect/http/HttpClient"
import * as Schema from "effect/Schema"

/**
 * Where the monitoring API and the admin controls live.
 *
 * @example
 * ```ts
 * import { ResilienceApi } from "@effect-resilience/http"
 *
 * const url = `http://127.0.0.1:8080${ResilienceApi.prefix}/health`
 * ```
 *
 * @since 0.2.0
 * @category constants
 */
export const prefix = "/api/v1/resilience"

// Control characters never belong in a breaker name or key; the caps keep a hostile URL from reaching the registry.
// The description is what an `InvalidRequest` says is expected.
const printable = (max: number, what: string) =>
  Schema.String.check(
    Schema.isMinLength(1),
    Schema.isMaxLength(max),
    Schema.isPattern(/^\P{Cc}*$/u, { message: `${what} must not contain control characters` })
  ).annotate({ description: `${what}: 1 to ${max} characters, no control characters` })

/**
 * The longest breaker name the API takes (`BreakerName`). A router serving the API needs a `maxParamLength` of at
 * least this (the router's default is 100): `ResilienceHttp.layerServer` sets it; with `ResilienceHttp.layer` in your
 * own server, pass `routerConfig: { maxParamLength: ResilienceApi.maxNameLength }` to `HttpRouter.serve`.
 *
 * @example
 * ```ts
 * import { ResilienceApi, ResilienceHttp } from "@effect-resilience/http"
 * import { HttpRouter } from "effect/http"
 *
 * const App = HttpRouter.serve(ResilienceHttp.layer(), {
 *   routerConfig: { maxParamLength: ResilienceApi.maxNameLength }
 * })
 * ```
 *
 * @since 0.2.0
 * @category constants
 */
export const maxNameLength = 200

/**
 * A breaker name in a path: 1 to 200 characters (`maxNameLength`), no control characters.
 *
 * @example
 * ```ts
 * import { ResilienceApi } from "@effect-resilience/http"
 * import { Schema } from "effect"
 *
 * Schema.decodeUnknownSync(ResilienceApi.BreakerName)("payments") // "payments"
 * ```
 *
 * @since 0.2.0
 * @category schemas
 */
export const BreakerName = printable(maxNameLength, "a breaker name")

/**
 * A breaker key in `?key=`: 1 to 512 characters, no control characters.
 *
 * @example
 * ```ts
 * import { ResilienceApi } from "@effect-resilience/http"
 * import { Schema } from "effect"
 *
 * Schema.decodeUnknownSync(ResilienceApi.BreakerKey)("api.example.com") // "api.example.com"
 * ```
 *
 * @since 0.2.0
 * @category schemas
 */
export const BreakerKey = printable(512, "a breaker key")

/**
 * A breaker state on the wire.
 *
 * @example
 * ```ts
 * import { ResilienceApi } from "@effect-resilience/http"
 *
 * const state: ResilienceApi.WireState = "half_open"
 * ```
 *
 * @since 0.2.0
 * @category schemas
 */
export const WireState = Schema.Literals(["closed", "open", "half_open", "forced_open", "disabled", "metrics_only"])

/**
 * @example
 * ```ts
 * import type { ResilienceApi } from "@effect-resilience/http"
 *
 * const isOpen = (state: ResilienceApi.WireState) => state === "open" || state === "forced_open"
 * ```
 *
 * @since 0.2.0
 * @category schemas
 */
export type WireState = typeof WireState.Type

const Iso = Schema.NullOr(Schema.String).annotate({ description: "ISO-8601 instant, or null" })
const Count = Schema.Int.check(Schema.isGreaterThanOrEqualTo(0))

/** Consecutive failures that open the circuit, from its trip policy; null for a breaker that trips on rates only. */
const FailureThreshold = Schema.NullOr(Count).annotate({
  description:
    "Consecutive failures that open the circuit (its trip policy); null for a breaker that trips on rates only"
})

/** Probe successes that close a half-open circuit (`halfOpen.successThreshold`): filled in every state, never null. */
const SuccessThreshold = Schema.NullOr(Count).annotate({
  description: "Probe successes that close a half-open circuit (halfOpen.successThreshold), in every state; never null "
    + "(nullable for the wire contract)"
})

const statsFields = {
  state: WireState,
  /** Failures since the breaker was made (see `failure_rate` for the current window). */
  failure_count: Count,
  failure_threshold: FailureThreshold,
  /** Successes since the breaker was made or, while half-open, the probes that succeeded. */
  success_count: Count,
  success_threshold: SuccessThreshold,
  failure_rate: Schema.Number,
  total_calls: Count,
  state_changes: Count,
  opened_at: Iso,
  last_failure_time: Iso,
  /** Milliseconds since the circuit entered its state (the dashboard's "time in state"). */
  time_in_state_ms: Count,
  /** Milliseconds until an open circuit admits a probe; null in any other state. */
  retry_after_ms: Schema.NullOr(Count)
}

/**
 * One circuit's figures on the wire.
 *
 * @example
 * ```ts
 * import { ResilienceApi } from "@effect-resilience/http"
 *
 * const fields = Object.keys(ResilienceApi.CircuitStats.fields) // ["state", "failure_count", ...]
 * ```
 *
 * @since 0.2.0
 * @category schemas
 */
export const CircuitStats = Schema.Struct(statsFields)

/**
 * @example
 * ```ts
 * import type { ResilienceApi } from "@effect-resilience/http"
 *
 * const rate = (stats: ResilienceApi.CircuitStats) => stats.failure_rate
 * ```
 *
 * @since 0.2.0
 * @category schemas
 */
export type CircuitStats = typeof CircuitStats.Type

/**
 * A breaker on the wire: the figures of the circuit that speaks for it (its default circuit, unless a key is worse
 * off: a keyed breaker, say one circuit per host, may never call its default one) and, for a keyed breaker, its keys
 * (at most `maxKeys` of the layer, the most recently used first) with the count of keys not shown.
 *
 * @example
 * ```ts
 * import type { ResilienceApi } from "@effect-resilience/http"
 *
 * const keyCount = (breaker: ResilienceApi.CircuitBreakerEntry) =>
 *   Object.keys(breaker.keys ?? {}).length + (breaker.keys_not_shown ?? 0)
 * ```
 *
 * @since 0.2.0
 * @category schemas
 */
export const CircuitBreakerEntry = Schema.Struct({
  ...statsFields,
  keys: Schema.optionalKey(Schema.Record(Schema.String, CircuitStats)),
  keys_not_shown: Schema.optionalKey(Count)
})

/**
 * @example
 * ```ts
 * import type { ResilienceApi } from "@effect-resilience/http"
 *
 * const state = (breaker: ResilienceApi.CircuitBreakerEntry) => breaker.state
 * ```
 *
 * @since 0.2.0
 * @category schemas
 */
export type CircuitBreakerEntry = typeof CircuitBreakerEntry.Type

/**
 * `GET /api/v1/resilience/health`: the breakers' health (`degraded` when any circuit is open, `critical` when more
 * than half are).
 *
 * @example
 * ```ts
 * import type { ResilienceApi } from "@effect-resilience/http"
 *
 * const paging = (health: ResilienceApi.BreakersHealth) => health.status === "critical"
 * ```
 *
 * @since 0.2.0
 * @category schemas
 */
export const BreakersHealth = Schema.Struct({
  status: Schema.Literals(["healthy", "degraded", "critical"]),
  timestamp: Schema.String,
  total_circuits: Count,
  circuits_by_state: Schema.Struct({ closed: Count, open: Count, half_open: Count }),
  open_circuits: Schema.Array(Schema.String)
})

/**
 * @example
 * ```ts
 * import type { ResilienceApi } from "@effect-resilience/http"
 *
 * const open = (health: ResilienceApi.BreakersHealth) => health.circuits_by_state.open
 * ```
 *
 * @since 0.2.0
 * @category schemas
 */
export type BreakersHealth = typeof BreakersHealth.Type

/**
 * One row of `GET /api/v1/resilience/summary` (`health_percentage`: closed 100, half-open 50, open 0).
 *
 * @example
 * ```ts
 * import type { ResilienceApi } from "@effect-resilience/http"
 *
 * const unhealthy = (rows: ReadonlyArray<ResilienceApi.SummaryRow>) => rows.filter((r) => r.health_percentage < 100)
 * ```
 *
 * @since 0.2.0
 * @category schemas
 */
export const SummaryRow = Schema.Struct({
  name: Schema.String,
  state: WireState,
  failure_count: Count,
  failure_threshold: FailureThreshold,
  success_count: Count,
  success_threshold: SuccessThreshold,
  health_percentage: Schema.Number
})

/**
 * @example
 * ```ts
 * import type { ResilienceApi } from "@effect-resilience/http"
 *
 * const names = (rows: ReadonlyArray<ResilienceApi.SummaryRow>) => rows.map((r) => r.name)
 * ```
 *
 * @since 0.2.0
 * @category schemas
 */
export type SummaryRow = typeof SummaryRow.Type

/**
 * `GET /api/v1/resilience/fleet`: the live instances and, per shared breaker, the fleet's bookkeeping next to this
 * instance's state.
 *
 * @example
 * ```ts
 * import type { ResilienceApi } from "@effect-resilience/http"
 *
 * const behind = (fleet: ResilienceApi.Fleet) => fleet.breakers.filter((b) => b.queued > 0)
 * ```
 *
 * @since 0.2.0
 * @category schemas
 */
export const Fleet = Schema.Struct({
  instance: Schema.String,
  live_instances: Schema.Array(Schema.Struct({ instance: Schema.String, last_heartbeat: Schema.String })),
  unreadable: Count,
  breakers: Schema.Array(Schema.Struct({
    name: Schema.String,
    counting: Schema.Literals(["local", "global", "quorum"]),
    /** This instance's state of the breaker's default circuit (null: not registered here). */
    local_state: Schema.NullOr(WireState),
    keys: Count,
    queued: Count,
    applied: Count,
    accepted: Count,
    rejected: Count,
    pending: Count,
    failed: Count,
    local_decisions: Count
  }))
})

/**
 * @example
 * ```ts
 * import type { ResilienceApi } from "@effect-resilience/http"
 *
 * const size = (fleet: ResilienceApi.Fleet) => fleet.live_instances.length
 * ```
 *
 * @since 0.2.0
 * @category schemas
 */
export type Fleet = typeof Fleet.Type

const ServiceHealth = Schema.Struct({
  status: Schema.Literals(["unknown", "healthy", "degraded", "unhealthy"]),
  last_check: Iso,
  response_time: Schema.NullOr(Schema.Number).annotate({ description: "milliseconds" }),
  consecutive_failures: Count,
  consecutive_successes: Count,
  total_checks: Count,
  last_error: Schema.NullOr(Schema.String)
})

const healthFields = {
  degradation_level: Count,
  timestamp: Schema.String,
  circuits: Schema.Record(
    Schema.String,
    Schema.Struct({
      state: WireState,
      failures: Count.annotate({
        description: "Failures counting toward opening the circuit (in a row, or in its rate window); while it is " +
          "open or half-open, the failures that opened it"
      })
    })
  ),
  monitoring_active: Schema.optionalKey(Schema.Boolean),
  services: Schema.optionalKey(Schema.Record(Schema.String, ServiceHealth)),
  summary: Schema.optionalKey(
    Schema.Struct({ total: Count, healthy: Count, degraded: Count, unhealthy: Count, unknown: Count })
  )
}

/**
 * `GET /health` while the instance serves (200): `healthy`, or `degraded` while a circuit is open (or forced open),
 * the degradation level is above 0 or the health monitor reports `Degraded`. A half-open, disabled or metrics-only
 * circuit leaves it `healthy`.
 *
 * @example
 * ```ts
 * import type { ResilienceApi } from "@effect-resilience/http"
 *
 * const level = (report: ResilienceApi.HealthReport) => report.degradation_level
 * ```
 *
 * @since 0.2.0
 * @category schemas
 */
export const HealthReport = Schema.Struct({ status: Schema.Literals(["healthy", "degraded"]), ...healthFields })

/**
 * @example
 * ```ts
 * import type { ResilienceApi } from "@effect-resilience/http"
 *
 * const services = (report: ResilienceApi.HealthReport) => Object.keys(report.services ?? {})
 * ```
 *
 * @since 0.2.0
 * @category schemas
 */
export type HealthReport = typeof HealthReport.Type

/**
 * `GET /health` when unhealthy, answered with 503 (a critical breaker open, a critical degradation level, or the
 * health monitor reporting `Unhealthy`).
 *
 * @example
 * ```ts
 * import type { ResilienceApi } from "@effect-resilience/http"
 *
 * const down = (report: ResilienceApi.HealthReport | ResilienceApi.UnhealthyReport) => report.status === "unhealthy"
 * ```
 *
 * @since 0.2.0
 * @category schemas
 */
export const UnhealthyReport = Schema.Struct({ status: Schema.Literal("unhealthy"), ...healthFields }).pipe(
  HttpApiSchema.status(503)
)

/**
 * @example
 * ```ts
 * import type { ResilienceApi } from "@effect-resilience/http"
 *
 * const when = (report: ResilienceApi.UnhealthyReport) => report.timestamp
 * ```
 *
 * @since 0.2.0
 * @category schemas
 */
export type UnhealthyReport = typeof UnhealthyReport.Type

/**
 * `GET /health/ready` while the instance should take traffic (200).
 *
 * @example
 * ```ts
 * import type { ResilienceApi } from "@effect-resilience/http"
 *
 * const ok = (r: ResilienceApi.Ready) => r.ready
 * ```
 *
 * @since 0.2.0
 * @category schemas
 */
export const Ready = Schema.Struct({ ready: Schema.Literal(true), timestamp: Schema.String })

/**
 * @example
 * ```ts
 * import type { ResilienceApi } from "@effect-resilience/http"
 *
 * const at = (r: ResilienceApi.Ready) => r.timestamp
 * ```
 *
 * @since 0.2.0
 * @category schemas
 */
export type Ready = typeof Ready.Type

/**
 * `GET /health/ready` while the instance should leave rotation (503), with the reasons.
 *
 * @example
 * ```ts
 * import type { ResilienceApi } from "@effect-resilience/http"
 *
 * const why = (r: ResilienceApi.NotReady) => r.reasons.join("; ")
 * ```
 *
 * @since 0.2.0
 * @category schemas
 */
export const NotReady = Schema.Struct({
  ready: Schema.Literal(false),
  timestamp: Schema.String,
  reasons: Schema.Array(Schema.String)
}).pipe(HttpApiSchema.status(503))

/**
 * @example
 * ```ts
 * import type { ResilienceApi } from "@effect-resilience/http"
 *
 * const count = (r: ResilienceApi.NotReady) => r.reasons.length
 * ```
 *
 * @since 0.2.0
 * @category schemas
 */
export type NotReady = typeof NotReady.Type

/**
 * The answer to an admin control: what was asked and the circuit's state after it.
 *
 * @example
 * ```ts
 * import type { ResilienceApi } from "@effect-resilience/http"
 *
 * const line = (r: ResilienceApi.AdminResult) => `${r.action} ${r.breaker}: ${r.state}`
 * ```
 *
 * @since 0.2.0
 * @category schemas
 */
export const AdminResult = Schema.Struct({
  breaker: Schema.String,
  key: Schema.NullOr(Schema.String),
  action: Schema.Literals(["reset", "force_open", "force_close", "disable"]),
  result: Schema.Literal("applied"),
  state: WireState
})

/**
 * @example
 * ```ts
 * import type { ResilienceApi } from "@effect-resilience/http"
 *
 * const state = (r: ResilienceApi.AdminResult) => r.state
 * ```
 *
 * @since 0.2.0
 * @category schemas
 */
export type AdminResult = typeof AdminResult.Type

const problemType = (slug: string) => `https://effect-resilience.dev/problems/${slug}` as const

/**
 * 404: no breaker of that name is registered.
 *
 * @example
 * ```ts
 * import { ResilienceApi } from "@effect-resilience/http"
 *
 * const problem = new ResilienceApi.BreakerNotFound({ breaker: "db", detail: "No circuit breaker named db" })
 * ```
 *
 * @since 0.2.0
 * @category errors
 */
export class BreakerNotFound extends HttpApiError.Problem<BreakerNotFound>()("BreakerNotFound", {
  type: problemType("breaker-not-found"),
  status: 404,
  title: "Circuit breaker not found"
}, { breaker: Schema.String }) {}

/**
 * 404: the fleet view was asked for, but no `RedisFleet` is provided.
 *
 * @example
 * ```ts
 * import { ResilienceApi } from "@effect-resilience/http"
 *
 * const problem = new ResilienceApi.FleetNotConfigured({})
 * ```
 *
 * @since 0.2.0
 * @category errors
 */
export class FleetNotConfigured extends HttpApiError.Problem<FleetNotConfigured>()("FleetNotConfigured", {
  type: problemType("fleet-not-configured"),
  status: 404,
  title: "No breaker fleet is configured on this instance"
}) {}

/**
 * 401: the admin token is missing or wrong.
 *
 * @example
 * ```ts
 * import { ResilienceApi } from "@effect-resilience/http"
 *
 * const problem = new ResilienceApi.AdminUnauthorized({})
 * ```
 *
 * @since 0.2.0
 * @category errors
 */
export class AdminUnauthorized extends HttpApiError.Problem<AdminUnauthorized>()("AdminUnauthorized", {
  type: problemType("admin-unauthorized"),
  status: 401,
  title: "A valid admin token is required (Authorization: Bearer <token>)"
}) {}

/**
 * 403: admin controls are off because no admin token is configured.
 *
 * @example
 * ```ts
 * import { ResilienceApi } from "@effect-resilience/http"
 *
 * const problem = new ResilienceApi.AdminNotConfigured({})
 * ```
 *
 * @since 0.2.0
 * @category errors
 */
export class AdminNotConfigured extends HttpApiError.Problem<AdminNotConfigured>()("AdminNotConfigured", {
  type: problemType("admin-not-configured"),
  status: 403,
  title: "Admin controls are not configured: set RESILIENCE_ADMIN_TOKEN (or the adminToken option)"
}) {}

/**
 * 400: a path parameter, query parameter or header failed validation, or a query parameter is not one the endpoint
 * declares (`message` "Unknown query parameter"). `errors` names each field, where it was (`path`, `query`,
 * `header`, `body`), what is wrong with it and what is expected; `detail` says it in one line.
 *
 * @example
 * ```ts
 * import { ResilienceApi } from "@effect-resilience/http"
 *
 * const problem = new ResilienceApi.InvalidRequest({
 *   detail: "Invalid query parameter key: Expected a value with a length of at least 1",
 *   errors: [{
 *     in: "query",
 *     field: "key",
 *     message: "Expected a value with a length of at least 1",
 *     expected: "a breaker key: 1 to 512 characters, no control characters"
 *   }]
 * })
 * ```
 *
 * @since 0.2.0
 * @category errors
 */
export class InvalidRequest extends HttpApiError.Problem<InvalidRequest>()("InvalidRequest", {
  type: problemType("invalid-request"),
  status: 400,
  title: "The request is invalid"
}, {
  errors: Schema.Array(Schema.Struct({
    in: Schema.Literals(["path", "query", "header", "body"]),
    field: Schema.String,
    message: Schema.String,
    /** The field's expected value, when its schema describes it (null otherwise). */
    expected: Schema.NullOr(Schema.String)
  }))
}) {}

/**
 * The API's request validation: it answers a path, query or header that fails its schema, and a query parameter that
 * an endpoint taking some does not declare (a misspelt `?Key=` is not taken for no key at all) or whose
 * percent-encoding does not decode (`?key=caf%E9` is not taken for the key `caf%E9`), with an `InvalidRequest` naming
 * the field (`ResilienceHttp` provides it; without it HttpApi answers an empty 400 and
 * ignores unknown parameters). An endpoint that takes none ignores them (a monitor's cache-buster on `/health`).
 *
 * @example
 * ```ts
 * import { ResilienceApi } from "@effect-resilience/http"
 *
 * const key = ResilienceApi.RequestValidation.key // "@effect-resilience/http/RequestValidation"
 * ```
 *
 * @since 0.2.0
 * @category middleware
 */
export class RequestValidation extends HttpApiMiddleware.Service<RequestValidation>()(
  "@effect-resilience/http/RequestValidation",
  { error: InvalidRequest }
) {}

const byName = { params: { name: BreakerName } }
const control = <const Id extends string, const Path extends string>(identifier: Id, path: Path) =>
  HttpApiEndpoint.post(identifier, `${prefix}/circuit-breakers/:name/${path}`, {
    ...byName,
    query: { key: Schema.optionalKey(BreakerKey) },
    success: AdminResult,
    error: [AdminUnauthorized, AdminNotConfigured, BreakerNotFound]
  }).annotate(OpenApi.Transform, (operation) => ({ ...operation, security: [{ adminToken: [] }] }))

/**
 * The read-only monitoring endpoints under `/api/v1/resilience`.
 *
 * @example
 * ```ts
 * import { ResilienceApi } from "@effect-resilience/http"
 *
 * const identifier = ResilienceApi.Monitoring.identifier // "monitoring"
 * ```
 *
 * @since 0.2.0
 * @category groups
 */
export const Monitoring = HttpApiGroup.make("monitoring")
  .add(
    HttpApiEndpoint.get("circuitBreakers", `${prefix}/circuit-breakers`, {
      success: Schema.Record(Schema.String, CircuitBreakerEntry)
    }),
    HttpApiEndpoint.get("circuitBreaker", `${prefix}/circuit-breakers/:name`, {
      ...byName,
      success: CircuitBreakerEntry,
      error: BreakerNotFound
    }),
    HttpApiEndpoint.get("health", `${prefix}/health`, { success: BreakersHealth }),
    HttpApiEndpoint.get("summary", `${prefix}/summary`, { success: Schema.Array(SummaryRow) }),
    HttpApiEndpoint.get("fleet", `${prefix}/fleet`, { success: Fleet, error: FleetNotConfigured })
  )

/**
 * The probes: `/health` (the report, 503 when unhealthy), `/health/live`, `/health/ready` (503 out of rotation).
 *
 * @example
 * ```ts
 * import { ResilienceApi } from "@effect-resilience/http"
 *
 * const identifier = ResilienceApi.Probes.identifier // "probes"
 * ```
 *
 * @since 0.2.0
 * @category groups
 */
export const Probes = HttpApiGroup.make("probes")
  .add(
    HttpApiEndpoint.get("health", "/health", { success: [HealthReport, UnhealthyReport] }),
    HttpApiEndpoint.get("live", "/health/live", {
      success: Schema.Struct({ status: Schema.Literal("alive"), timestamp: Schema.String })
    }),
    HttpApiEndpoint.get("ready", "/health/ready", { success: [Ready, NotReady] })
  )

/**
 * The admin controls (bearer token): reset, force open, force close (`MetricsOnly`: every call admitted, the
 * machine still counted), disable; `?key=` for one key, else every key. Any other query parameter is a 400
 * `InvalidRequest`, so that a misspelt `?Key=` does not act on every key.
 *
 * @example
 * ```ts
 * import { ResilienceApi } from "@effect-resilience/http"
 *
 * const identifier = ResilienceApi.Admin.identifier // "admin"
 * ```
 *
 * @since 0.2.0
 * @category groups
 */
export const Admin = HttpApiGroup.make("admin")
  .add(
    control("reset", "reset"),
    control("forceOpen", "force-open"),
    control("forceClose", "force-close"),
    control("disable", "disable")
  )

/**
 * The whole API: monitoring, probes and admin controls.
 *
 * @example
 * ```ts
 * import { ResilienceApi } from "@effect-resilience/http"
 * import { OpenApi } from "effect/http-api"
 *
 * const document = OpenApi.fromApi(ResilienceApi.ResilienceApi)
 * ```
 *
 * @since 0.2.0
 * @category api
 */
export const ResilienceApi = HttpApi.make("resilience")
  .add(Monitoring)
  .add(Probes)
  .add(Admin)
  // Every endpoint above: the middleware applies to the endpoints present when it is added.
  .middleware(RequestValidation)
  .annotate(OpenApi.Title, "effect-resilience")
  // The API's version, as its paths have it (/api/v1), not a package's.
  .annotate(OpenApi.Version, "1")
  // The admin token is checked by the handlers (so that refusals are published with the breaker and key); the
  // document still says which scheme the controls take.
  .annotate(OpenApi.Transform, (spec) => ({
    ...spec,
    components: {
      ...spec.components,
      securitySchemes: {
        ...spec.components?.securitySchemes,
        adminToken: { type: "http", scheme: "bearer", description: "RESILIENCE_ADMIN_TOKEN" }
      }
    }
  }))

/**
 * A typed client of a service that mounts the API (`client.monitoring.health()`, `client.admin.reset(...)`).
 *
 * @example
 * ```ts
 * import { ResilienceApi } from "@effect-resilience/http"
 * import { Effect, Redacted } from "effect"
 * import { FetchHttpClient, HttpClient, HttpClientRequest } from "effect/http"
 *
 * const resetPayments = (token: Redacted.Redacted) =>
 *   Effect.gen(function*() {
 *     const client = yield* ResilienceApi.client({
 *       baseUrl: "http://127.0.0.1:8080",
 *       transformClient: HttpClient.mapRequest(HttpClientRequest.bearerToken(Redacted.value(token)))
 *     })
 *     return yield* client.admin.reset({ params: { name: "payments" }, query: {} })
 *   }).pipe(Effect.provide(FetchHttpClient.layer))
 * ```
 *
 * @since 0.2.0
 * @category clients
 */
export const client = (options?: {
  readonly baseUrl?: URL | string | undefined
  readonly transformClient?: ((client: HttpClient.HttpClient) => HttpClient.HttpClient) | undefined
}) => HttpApiClient.make(ResilienceApi, options)
