/**
 * The whole operational surface as one layer: the monitoring API, health probes and admin controls
 * (`ResilienceApi`), their OpenAPI document and docs page, plus the live events, Prometheus metrics and the
 * dashboard. Mount it in your own `HttpRouter` with `layer`, or serve it alone with `layerServer`.
 *
 * It only reads what core exposes (`CircuitBreakerRegistry`, and when provided `HealthMonitor`, `Degradation`,
 * `RedisFleet`) and adds nothing to a call's path. Every error is a JSON problem body (RFC 9457): malformed
 * names and keys, and a query parameter an endpoint that takes some does not declare, 400 (an `InvalidRequest`
 * naming the field and what it expects), a missing or wrong admin token 401 (with its `WWW-Authenticate: Bearer`
 * challenge), unknown paths 404, wrong methods 405, oversized requests 413, never a 500 with a stack. What Node's
 * parser itself rejects is answered by `createServer`.
 *
 * **Example** (Mounting the surface in an existing server)
 *
 * ```ts
 * import { CircuitBreakerRegistry } from "@effect-resilience/core"
 * import { ResilienceApi, ResilienceHttp } from "@effect-resilience/http"
 * import { NodeHttpServer } from "@effect/platform-node"
 * import { Layer } from "effect"
 * import { HttpRouter } from "effect/http"
 * import { createServer } from "node:http"
 *
 * // The router takes names as long as the API does (its default maxParamLength is 100).
 * const Server = HttpRouter.serve(ResilienceHttp.layer({ criticalBreakers: ["payments"] }), {
 *   routerConfig: { maxParamLength: ResilienceApi.maxNameLength }
 * }).pipe(
 *   Layer.provide(CircuitBreakerRegistry.layer),
 *   Layer.provide(NodeHttpServer.layer(createServer, { port: 8080 }))
 * )
 * ```
 *
 * @since 0.2.0
 */
import * as CircuitBreakerRegistry from "@effect-resilience/core/CircuitBreakerRegistry"
import * as Degradation from "@effect-resilience/core/Degradation"
import * as HealthMonitor from "@effect-resilience/core/HealthMonitor"
import * as PolicyConfig from "@effect-resilience/core/PolicyConfig"
import type * as RedisFleet from "@effect-resilience/redis/RedisFleet"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as ByteSize from "effect/ByteSize"
import * as Clock from "effect/Clock"
import * as Config from "effect/Config"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import type * as FileSystem from "effect/FileSystem"
import * as HttpApiBuilder from "effect/http-api/HttpApiBuilder"
import type * as HttpApiEndpoint from "effect/http-api/HttpApiEndpoint"
import * as HttpApiError from "effect/http-api/HttpApiError"
import type * as Etag from "effect/http/Etag"
import * as HttpIncomingMessage from "effect/http/HttpIncomingMessage"
import type * as HttpPlatform from "effect/http/HttpPlatform"
import * as HttpRouter from "effect/http/HttpRouter"
import * as HttpServerError from "effect/http/HttpServerError"
import * as HttpServerRequest from "effect/http/HttpServerRequest"
import * as HttpServerRespondable from "effect/http/HttpServerRespondable"
import * as HttpServerResponse from "effect/http/HttpServerResponse"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as Path from "effect/Path"
import type * as PlatformError from "effect/PlatformError"
import * as PubSub from "effect/PubSub"
import * as Redacted from "effect/Redacted"
import * as Result from "effect/Result"
import * as Schema from "effect/Schema"
import * as SchemaAST from "effect/SchemaAST"
import * as SchemaIssue from "effect/SchemaIssue"
import type * as Types from "effect/Types"
import * as Http from "node:http"
import * as Admin from "./Admin.ts"
import * as AdminToken from "./AdminToken.ts"
import * as Dashboard from "./Dashboard.ts"
import * as Events from "./Events.ts"
import * as clientError from "./internal/clientError.ts"
import * as docsPage from "./internal/docsPage.ts"
import * as wire from "./internal/wire.ts"
import * as Metrics from "./Metrics.ts"
import * as ResilienceApi from "./ResilienceApi.ts"

/**
 * What the layer serves and how strict it is.
 *
 * @example
 * ```ts
 * import type { ResilienceHttp } from "@effect-resilience/http"
 * import { Redacted } from "effect"
 *
 * const options: ResilienceHttp.Options = {
 *   adminToken: Redacted.make("s3cret"),
 *   criticalBreakers: ["payments"],
 *   maxKeys: 20
 * }
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export interface Options {
  /**
   * The admin token. Default: config `RESILIENCE_ADMIN_TOKEN`; neither set: admin routes answer 403. Printable ASCII
   * only (`!` to `~`, 0x21-0x7E; RFC 6750's b64token characters are a safe subset): one with whitespace or any other
   * character fails with `PolicyConfigError`, as no Bearer header could carry it.
   */
  readonly adminToken?: Redacted.Redacted<string> | undefined
  /** Breakers whose being open takes the instance out of rotation (`/health/ready` 503, `/health` unhealthy). */
  readonly criticalBreakers?: ReadonlyArray<string> | undefined
  /** The `Degradation` level from which the instance is out of rotation. Default: the highest rule's level. */
  readonly criticalLevel?: number | undefined
  /** Keys listed per keyed breaker (the most recently used first). Default 50. */
  readonly maxKeys?: number | undefined
  /** Requests with a larger declared body get 413. Default 16384 bytes. */
  readonly maxBodyBytes?: number | undefined
  /** Serve the OpenAPI document and the docs page under `/api/v1/resilience`. Default true. */
  readonly docs?: boolean | undefined
  /** `layer` only: the live event stream's options, or `false` to leave it out. */
  readonly events?: Events.Options | false | undefined
  /** `layer` only: the Prometheus endpoint's options, or `false` to leave it out. */
  readonly metrics?: Metrics.Options | false | undefined
  /** `layer` only: the dashboard's options, or `false` to leave it out. */
  readonly dashboard?: Dashboard.Options | false | undefined
}

const OptionsSchema = Schema.Struct({
  criticalBreakers: Schema.Array(ResilienceApi.BreakerName),
  criticalLevel: Schema.optional(PolicyConfig.NonNegativeInt),
  maxKeys: PolicyConfig.PositiveInt,
  maxBodyBytes: PolicyConfig.PositiveInt,
  docs: Schema.Boolean
})

type Settings = typeof OptionsSchema.Type & { readonly adminToken: Redacted.Redacted<string> | undefined }

// Looked up by its key, so that `@effect-resilience/redis` stays an optional peer: only its type is imported.
const RedisFleetService = Context.Service<RedisFleet.RedisFleet>("@effect-resilience/redis/RedisFleet")

// What keeps a Bearer header from carrying the token, if anything does.
const tokenProblem = (value: string): string | undefined =>
  /\s/.test(value)
    ? "Expected a token without whitespace (a Bearer token cannot carry it; a trailing newline, say)"
    : /^[\x21-\x7E]+$/.test(value)
    ? undefined
    : "Expected a token of printable ASCII characters (! to ~, 0x21-0x7E; RFC 6750's b64token is a subset): an HTTP "
      + "header cannot carry others"

const settings = (options: Options | undefined) =>
  Effect.gen(function*() {
    const decoded = yield* PolicyConfig.decode(OptionsSchema, {
      criticalBreakers: options?.criticalBreakers ?? [],
      criticalLevel: options?.criticalLevel,
      maxKeys: options?.maxKeys ?? 50,
      maxBodyBytes: options?.maxBodyBytes ?? 16384,
      docs: options?.docs ?? true
    }, { kind: "resilience http", policy: "ResilienceHttp" })
    const configured = options?.adminToken !== undefined
      ? Option.some(options.adminToken)
      : yield* Config.option(Config.Redacted("RESILIENCE_ADMIN_TOKEN"))
    // An empty token would make "no token" a credential: treat it as not configured.
    const adminToken = Option.filter(configured, (t) => Redacted.value(t).length > 0)
    // A token no Bearer header can carry (a secret file's trailing newline, a "€": headers are read as Latin-1, so
    // its UTF-8 bytes never compare equal) would make every admin request a 401. Refused at startup instead, without
    // showing the token.
    const unpresentable = Option.isNone(adminToken) ? undefined : tokenProblem(Redacted.value(adminToken.value))
    if (unpresentable !== undefined) {
      return yield* PolicyConfig.error(
        { kind: "resilience http", policy: "ResilienceHttp" },
        options?.adminToken !== undefined ? "adminToken" : "RESILIENCE_ADMIN_TOKEN (adminToken)",
        unpresentable
      )
    }
    return { ...decoded, adminToken: Option.getOrUndefined(adminToken) } satisfies Settings
  })

const breakers = Effect.flatMap(
  CircuitBreakerRegistry.all,
  (all) =>
    Effect.forEach(all, (b) => Effect.map(b.snapshots, (snapshots): wire.Breaker => ({ name: b.name, snapshots })))
)

// Handlers run with what the layer was built with: capture the registry once, provide it per request.
const registryProvider = Effect.map(
  CircuitBreakerRegistry.CircuitBreakerRegistry,
  (registry) => <A, E>(effect: Effect.Effect<A, E, CircuitBreakerRegistry.CircuitBreakerRegistry>) =>
    Effect.provideService(effect, CircuitBreakerRegistry.CircuitBreakerRegistry, registry)
)

const nowIso = Effect.map(Clock.currentTimeMillis, (now) => new Date(now).toISOString())

const notFound = (name: string) =>
  new ResilienceApi.BreakerNotFound({ breaker: name, detail: "No circuit breaker of that name is registered" })

const MonitoringLive = (s: Settings) =>
  HttpApiBuilder.group(ResilienceApi.ResilienceApi, "monitoring", (handlers) =>
    Effect.gen(function*() {
      const provide = yield* registryProvider
      const fleet = yield* Effect.serviceOption(RedisFleetService)
      return handlers
        .handle("circuitBreakers", () =>
          provide(Effect.map(breakers, (all) =>
            // `fromEntries`, not `out[name] = e`: a breaker named `__proto__` would set the prototype, unlisted.
            Object.fromEntries(all.flatMap((b) => {
              const e = wire.entry(b.snapshots, s.maxKeys)
              return e === undefined ? [] : [[b.name, e] as const]
            })))))
        .handle("circuitBreaker", ({ params }) =>
          provide(CircuitBreakerRegistry.get(params.name)).pipe(
            Effect.flatMap((b) => b.snapshots),
            Effect.map((snapshots) => wire.entry(snapshots, s.maxKeys)),
            Effect.catchTag("CircuitBreakerNotFound", () => Effect.succeed(undefined)),
            Effect.flatMap((e) => e === undefined ? Effect.fail(notFound(params.name)) : Effect.succeed(e))
          ))
        .handle("health", () =>
          provide(Effect.zipWith(breakers, Clock.currentTimeMillis, (all, now) => wire.breakersHealth(all, now))))
        .handle("summary", () =>
          provide(Effect.map(breakers, wire.summary)))
        .handle("fleet", () =>
          Effect.gen(function*() {
            if (Option.isNone(fleet)) return yield* new ResilienceApi.FleetNotConfigured({})
            const snapshot = yield* fleet.value.snapshot
            const instances = yield* fleet.value.instances.pipe(Effect.orElseSucceed(() => []))
            const local = new Map((yield* provide(breakers)).map((b) => [b.name, b.snapshots] as const))
            return {
              instance: snapshot.instance,
              live_instances: instances.map((i) => ({
                instance: i.instance,
                last_heartbeat: new Date(i.lastHeartbeat).toISOString()
              })),
              unreadable: snapshot.unreadable,
              breakers: snapshot.breakers.map((b) => {
                const snapshots = local.get(b.breaker)
                return {
                  name: b.breaker,
                  counting: b.counting,
                  local_state: snapshots === undefined ? null : wire.wireState(wire.worstState(snapshots)),
                  keys: b.keys,
                  queued: b.queued,
                  applied: b.applied,
                  accepted: b.accepted,
                  rejected: b.rejected,
                  pending: b.pending,
                  failed: b.failed,
                  local_decisions: b.localDecisions
                }
              })
            }
          }))
    }))

const ProbesLive = (s: Settings) =>
  HttpApiBuilder.group(ResilienceApi.ResilienceApi, "probes", (handlers) =>
    Effect.gen(function*() {
      const provide = yield* registryProvider
      const degradation = yield* Effect.serviceOption(Degradation.Degradation)
      const monitor = yield* Effect.serviceOption(HealthMonitor.HealthMonitor)
      const critical = new Set(s.criticalBreakers)
      // What keeps the instance out of rotation: a critical breaker open, or a critical degradation level.
      const outOfRotation = Effect.gen(function*() {
        const all = yield* provide(breakers)
        const level = Option.isSome(degradation) ? (yield* degradation.value.status).level : 0
        const criticalLevel = s.criticalLevel ??
          (Option.isSome(degradation) && degradation.value.rules.length > 0
            ? Math.max(...degradation.value.rules.map((r) => r.level))
            : Number.POSITIVE_INFINITY)
        const reasons: Array<string> = []
        for (const b of all) {
          if (critical.has(b.name) && wire.isOpen(wire.worstState(b.snapshots))) {
            reasons.push(`critical circuit breaker ${b.name} is open`)
          }
        }
        if (level > 0 && level >= criticalLevel) reasons.push(`degradation level ${level} is critical`)
        return { all, level, reasons }
      })
      return handlers
        .handle("health", () =>
          Effect.gen(function*() {
            const { all, level, reasons } = yield* outOfRotation
            const report = Option.isSome(monitor) ? yield* monitor.value.report : undefined
            // As the seeds' `any_open`: a half-open circuit is recovering, a disabled or metrics-only one admits all.
            const anyOpen = all.some((b) => wire.isOpen(wire.worstState(b.snapshots)))
            const status = reasons.length > 0 || report?.status === "Unhealthy"
              ? "unhealthy" as const
              : anyOpen || level > 0 || report?.status === "Degraded"
              ? "degraded" as const
              : "healthy" as const
            return {
              status,
              degradation_level: level,
              timestamp: yield* nowIso,
              circuits: wire.circuits(all),
              ...(report === undefined ? {} : wire.monitor(report))
            }
          }))
        .handle("live", () => Effect.map(nowIso, (timestamp) => ({ status: "alive" as const, timestamp })))
        .handle("ready", () =>
          Effect.gen(function*() {
            const { reasons } = yield* outOfRotation
            const timestamp = yield* nowIso
            return reasons.length === 0
              ? { ready: true as const, timestamp }
              : { ready: false as const, timestamp, reasons }
          }))
    }))

type Action = Admin.AdminEvent["action"]

const AdminLive = (s: Settings) =>
  HttpApiBuilder.group(ResilienceApi.ResilienceApi, "admin", (handlers) =>
    Effect.gen(function*() {
      const provide = yield* registryProvider
      const events = yield* Admin.AdminEvents
      const run = (action: Action) =>
      (
        { params, query, request }: {
          readonly params: { readonly name: string }
          readonly query: { readonly key?: string }
          readonly request: HttpServerRequest.HttpServerRequest
        }
      ) =>
        Effect.gen(function*() {
          const key = query.key ?? null
          const record = (result: Admin.AdminEvent["result"]) =>
            Effect.gen(function*() {
              const at = yield* Clock.currentTimeMillis
              yield* Effect.logInfo("resilience admin action").pipe(
                Effect.annotateLogs({ action, breaker: params.name, key: key ?? "*", result })
              )
              yield* PubSub.publish(events, { action, breaker: params.name, key, result, at })
            })
          if (s.adminToken === undefined) {
            yield* record("not_configured")
            return yield* new ResilienceApi.AdminNotConfigured({})
          }
          if (!AdminToken.authorizes(request.headers["authorization"], s.adminToken)) {
            yield* record("unauthorized")
            return yield* new ResilienceApi.AdminUnauthorized({})
          }
          const found = yield* Effect.option(provide(CircuitBreakerRegistry.get(params.name)))
          if (Option.isNone(found)) {
            yield* record("not_found")
            return yield* notFound(params.name)
          }
          const breaker = found.value
          const k = query.key
          yield* action === "reset"
            ? breaker.reset(k)
            : action === "force_open"
            ? breaker.forceOpen(k)
            : action === "force_close"
            ? breaker.metricsOnly(k)
            : breaker.disable(k)
          yield* record("applied")
          const state = yield* (k === undefined ? breaker.state : breaker.stateKey(k))
          return { breaker: params.name, key, action, result: "applied" as const, state: wire.wireState(state) }
        })
      return handlers
        .handle("reset", run("reset"))
        .handle("forceOpen", run("force_open"))
        .handle("forceClose", run("force_close"))
        .handle("disable", run("disable"))
    }))

type Issue = ResilienceApi.InvalidRequest["errors"][number]
type Location = Issue["in"]

const locations: Record<HttpApiError.HttpApiSchemaError["kind"], Location | undefined> = {
  Params: "path",
  Query: "query",
  Headers: "header",
  Payload: "body",
  Body: undefined,
  ResponseHeaders: undefined
}

const labels: Record<Location, string> = {
  path: "path parameter",
  query: "query parameter",
  header: "header",
  body: "body field"
}

const formatIssues = SchemaIssue.makeFormatterStandardSchemaV1()

// What a field should hold: the description of its schema in the endpoint's request slot (an object schema).
const expectedOf = (slot: Schema.Top | undefined, field: PropertyKey | undefined): string | null => {
  if (slot === undefined || field === undefined || !SchemaAST.isObjects(slot.ast)) return null
  const property = slot.ast.propertySignatures.find((p) => p.name === field)
  return property === undefined ? null : SchemaAST.resolveDescription(property.type) ?? null
}

const slotSchema = (endpoint: HttpApiEndpoint.Top, kind: HttpApiError.HttpApiSchemaError["kind"]) =>
  kind === "Params"
    ? endpoint.params
    : kind === "Query"
    ? endpoint.query
    : kind === "Headers"
    ? endpoint.headers
    : undefined

const segment = (s: PropertyKey | { readonly key: PropertyKey }): PropertyKey => typeof s === "object" ? s.key : s

const invalid = (errors: ReadonlyArray<Issue>): ResilienceApi.InvalidRequest =>
  new ResilienceApi.InvalidRequest({
    detail: errors.map((e) =>
      `Invalid ${labels[e.in]} ${e.field}: ${e.message}${e.expected === null ? "" : ` (expected ${e.expected})`}`
    ).join("; "),
    errors
  })

const invalidRequest = (
  error: HttpApiError.HttpApiSchemaError,
  endpoint: HttpApiEndpoint.Top
): ResilienceApi.InvalidRequest | undefined => {
  const location = locations[error.kind]
  // A response that does not encode is the server's fault: left to the 500 below.
  if (location === undefined) return undefined
  return invalid(
    formatIssues(error.cause.issue).issues.map((issue) => {
      const path = (issue.path ?? []).map(segment)
      return {
        in: location,
        field: path.length === 0 ? "(all)" : path.map(String).join("."),
        message: issue.message,
        expected: expectedOf(slotSchema(endpoint, error.kind), path[0])
      }
    })
  )
}

// Query parameters an endpoint that takes some does not declare. HttpApi drops them, and a misspelt `?Key=eu-1` on
// a control would then act on every key. An endpoint that takes none (the reads, the probes) ignores them: a
// monitor's cache-buster (`/health?_=1`) must not fail a probe.
const unknownQuery = (
  endpoint: HttpApiEndpoint.Top,
  search: HttpServerRequest.ParsedSearchParams["Service"]
): ResilienceApi.InvalidRequest | undefined => {
  if (endpoint.query === undefined || !SchemaAST.isObjects(endpoint.query.ast)) return undefined
  const declared = endpoint.query.ast.propertySignatures.map((p) => String(p.name))
  const unknown = Object.keys(search).filter((name) => !declared.includes(name))
  if (unknown.length === 0) return undefined
  const expected = declared.join(" or ")
  return invalid(unknown.map((field) => ({ in: "query", field, message: "Unknown query parameter", expected })))
}

// Query parameters whose percent-encoding does not decode, of an endpoint that takes some. The router keeps such a
// value raw: `?key=caf%E9` (a Latin-1 "café") would act on a key named `caf%E9`, answered 200 as applied.
const undecodableQuery = (endpoint: HttpApiEndpoint.Top, url: string): ResilienceApi.InvalidRequest | undefined => {
  const start = url.indexOf("?")
  if (endpoint.query === undefined || start === -1 || !url.includes("%", start)) return undefined
  const end = url.indexOf("#", start)
  const errors: Array<Issue> = []
  for (const pair of url.slice(start + 1, end === -1 ? undefined : end).split("&")) {
    const equals = pair.indexOf("=")
    const name = (equals === -1 ? pair : pair.slice(0, equals)).replaceAll("+", " ")
    const value = equals === -1 ? "" : pair.slice(equals + 1).replaceAll("+", " ")
    if (Option.isSome(percentDecoded(value))) continue
    const field = Option.getOrElse(percentDecoded(name), () => name)
    errors.push({
      in: "query",
      field,
      message: "its percent-encoding does not decode",
      expected: expectedOf(endpoint.query, field)
    })
  }
  return errors.length === 0 ? undefined : invalid(errors)
}

// HttpApi decodes the path, query and headers inside this middleware, before the handler; left alone, it answers a
// failure with an empty 400 that the problems middleware cannot tell the field of.
const RequestValidationLive = Layer.succeed(
  ResilienceApi.RequestValidation,
  (httpEffect, { endpoint }) =>
    Effect.gen(function*() {
      const refused = unknownQuery(endpoint, yield* HttpServerRequest.ParsedSearchParams) ??
        undecodableQuery(endpoint, (yield* HttpServerRequest.HttpServerRequest).url)
      if (refused !== undefined) return yield* refused
      return yield* httpEffect
    }).pipe(
      Effect.catch((error) =>
        Effect.fail(HttpApiError.HttpApiSchemaError.is(error) ? invalidRequest(error, endpoint) ?? error : error)
      )
    )
)

// The routes' templates, to tell a wrong method (405, with `Allow`) from an unknown path (404); the group captures
// the raw (still percent-encoded) breaker name. Case-insensitive, as the router matches by default.
const templates: ReadonlyArray<readonly [method: string, pattern: RegExp]> = [
  ["GET", /^\/api\/v1\/resilience\/(?:circuit-breakers|health|summary|fleet|openapi\.json|docs|events)$/i],
  ["GET", /^\/api\/v1\/resilience\/circuit-breakers\/([^/]+)$/i],
  ["POST", /^\/api\/v1\/resilience\/circuit-breakers\/([^/]+)\/(?:reset|force-open|force-close|disable)$/i],
  ["GET", /^\/health(?:\/live|\/ready)?$/i]
]

const rawName = (path: string): string | undefined => {
  for (const [, pattern] of templates) {
    const name = pattern.exec(path)?.[1]
    if (name !== undefined) return name
  }
  return undefined
}

const percentDecoded = Option.liftThrowable(decodeURIComponent)

const nameExpected = SchemaAST.resolveDescription(ResilienceApi.BreakerName.ast) ?? null
const decodeBreakerName = Schema.decodeUnknownResult(ResilienceApi.BreakerName)

// A name the router turns away before HttpApi sees it (past the router's `maxParamLength`), answered as HttpApi would
// answer a name failing `BreakerName`: an `InvalidRequest` on the path parameter `name`.
const invalidName = (name: string): ResilienceApi.InvalidRequest => {
  const decoded = decodeBreakerName(name)
  const messages = Result.isFailure(decoded)
    ? formatIssues(decoded.failure.issue).issues.map((issue) => issue.message)
    // Valid by the API's schema: the router's limit is below the API's.
    : [
      "longer than this server's router accepts: its maxParamLength (100 by default) is below the "
      + `${ResilienceApi.maxNameLength} characters a breaker name may have (see HttpRouter.serve's routerConfig)`
    ]
  return invalid(messages.map((message) => ({ in: "path", field: "name", message, expected: nameExpected })))
}

const problem = (status: number, title: string, detail?: string, headers?: Record<string, string>) =>
  HttpServerResponse.jsonUnsafe(
    { type: "about:blank", title, status, ...(detail === undefined ? {} : { detail }) },
    { status, contentType: "application/problem+json", headers }
  )

const titles: Record<number, string> = {
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  413: "Payload Too Large",
  500: "Internal Server Error",
  503: "Service Unavailable"
}

const pathOf = (url: string): string => {
  const end = url.search(/[?#]/)
  return end === -1 ? url : url.slice(0, end)
}

// The path as the router matches it by default: repeated slashes as one, a trailing slash ignored. Read raw, a
// `/health/ready/` it serves as `/health/ready` would be unknown here, a wrong method on it a 404 and not a 405.
const routedPath = (url: string): string => {
  const path = pathOf(url).replace(/\/{2,}/g, "/")
  return path.length > 1 && path.endsWith("/") ? path.slice(0, -1) : path
}

const fallback = Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) => {
  const path = routedPath(request.url)
  const matching = templates.filter(([, pattern]) => pattern.test(path))
  const allowed = matching.map(([method]) => method)
  const method = request.method === "HEAD" ? "GET" : request.method
  const same = matching.find(([m]) => m === method)
  const name = same === undefined ? undefined : same[1].exec(path)?.[1]
  return same === undefined && allowed.length > 0
    ? Effect.succeed(problem(405, "Method Not Allowed", `Use ${allowed.join(", ")}`, { allow: allowed.join(", ") }))
    : name !== undefined
    // The route exists but the router would not match it: a path parameter past the router's length limit.
    ? HttpServerRespondable.toResponse(invalidName(Option.getOrElse(percentDecoded(name), () => name)))
    // Unknown, or a route left out of this mount (events, docs, fleet without a fleet).
    : Effect.succeed(problem(404, "Not Found", "No such resilience endpoint"))
})

// Every method but HEAD, for catch-alls: the router answers a HEAD with the GET route when no HEAD route matches, and
// a catch-all for every method would match first.
const methodsButHead = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "QUERY"] as const

const fallbacks = HttpRouter.use((router) =>
  Effect.forEach(
    methodsButHead,
    (method) =>
      Effect.andThen(
        router.add(method, `${ResilienceApi.prefix}/*`, fallback),
        router.add(method, "/health/*", fallback)
      ),
    { discard: true }
  )
)

// `layerServer`'s answer to any path the surface does not serve.
const unknownPaths = HttpRouter.use((router) =>
  Effect.forEach(methodsButHead, (method) => router.add(method, "/*", problem(404, "Not Found")), { discard: true })
)

const ours = (path: string): boolean => {
  const lower = path.toLowerCase()
  return lower.startsWith(`${ResilienceApi.prefix}/`) || lower === "/health" || lower.startsWith("/health/")
}

// The router cannot match a path whose percent-encoding does not decode, and answers it with an empty 404 before
// any route (and so the problems below) sees it. Under this package's paths, such a path gets a 400 `InvalidRequest`
// (on `name` when the name is what does not decode); others are left to whoever serves them.
const undecodablePaths = HttpRouter.middleware(
  (httpEffect) =>
    // Every request of the server passes here, so it costs one step: most have no escape at all.
    Effect.withFiber((fiber) => {
      const context = fiber.context as Context.Context<HttpServerRequest.HttpServerRequest>
      const request = Context.get(context, HttpServerRequest.HttpServerRequest)
      if (!request.url.includes("%")) return httpEffect
      const path = routedPath(request.url)
      if (!ours(path) || !path.includes("%")) return httpEffect
      if (Option.isSome(percentDecoded(path))) return httpEffect
      const name = rawName(path)
      const message = "its percent-encoding does not decode"
      return HttpServerRespondable.toResponse(
        name !== undefined && Option.isNone(percentDecoded(name))
          ? invalid([{ in: "path", field: "name", message, expected: nameExpected }])
          : new ResilienceApi.InvalidRequest({
            detail: `Invalid path: ${message} (expected %XX escapes of UTF-8 bytes)`,
            errors: [{ in: "path", field: "(all)", message, expected: "%XX escapes of UTF-8 bytes" }]
          })
      )
    }),
  { global: true }
)

// RFC 6750 §3: a 401 names the scheme, and says `invalid_token` when a bearer token was given but is not the one.
const bearerChallenge = (authorization: string | undefined): string =>
  AdminToken.bearer(authorization) === undefined
    ? `Bearer realm="effect-resilience"`
    : `Bearer realm="effect-resilience", error="invalid_token"`

// Every error leaves as a problem body: the builder's empty 4xx/5xx get a JSON body, a defect a bare 500
// (logged here, never echoed), and a declared body larger than the limit never reaches a handler.
const problems = (maxBodyBytes: number) =>
  HttpRouter.middleware((httpEffect): Effect.Effect<
    HttpServerResponse.HttpServerResponse,
    // Every failure is answered here; the router's type asks route middleware to pass errors on.
    Types.unhandled,
    HttpServerRequest.HttpServerRequest
  > =>
    Effect.gen(function*() {
      const request = yield* HttpServerRequest.HttpServerRequest
      const tooLarge = problem(413, "Payload Too Large", `Bodies are limited to ${maxBodyBytes} bytes`)
      const length = Number(request.headers["content-length"] ?? "0")
      if (!Number.isFinite(length) || length > maxBodyBytes) return tooLarge
      // No route here takes a body: a chunked one is read (up to the limit) so that its size is known.
      if (request.headers["transfer-encoding"] !== undefined) {
        const read = yield* request.arrayBuffer.pipe(
          Effect.provideService(HttpIncomingMessage.MaxBodySize, ByteSize.bytes(maxBodyBytes)),
          Effect.result
        )
        if (Result.isFailure(read)) {
          const reason = read.failure.reason
          return reason._tag === "RequestParseError" && reason.reason === "BodyTooLarge"
            ? tooLarge
            : problem(400, "Bad Request", "Unreadable request body")
        }
      }
      const answered = yield* httpEffect.pipe(
        Effect.catchCause((cause) =>
          Effect.flatMap(HttpServerError.causeResponse(cause), ([failed]) =>
            failed.status >= 500
              ? Effect.as(Effect.logError("resilience http: request failed", cause), failed)
              : Effect.succeed(failed))
        )
      )
      const response = answered.status === 401 && answered.headers["www-authenticate"] === undefined
        ? HttpServerResponse.setHeader(
          answered,
          "www-authenticate",
          bearerChallenge(request.headers["authorization"])
        )
        : answered
      if (response.status < 400 || response.body._tag !== "Empty") return response
      return problem(response.status, titles[response.status] ?? "Error", undefined, { ...response.headers })
    })
  ).layer

// The docs page (Scalar, bundled: no CDN, no web fonts), built at its first request. Not `HttpApiScalar.layer`: the
// 5 MB bundle it imports as a module slowed the whole server's garbage collection (see internal/docsPage.ts).
const docs = HttpRouter.use(Effect.fnUntraced(function*(router) {
  const files = yield* Effect.context<FileSystem.FileSystem | Path.Path>()
  const page = yield* Effect.cached(
    Effect.map(
      Effect.provideContext(docsPage.readScript, files),
      (script) =>
        docsPage.html(ResilienceApi.ResilienceApi, script, { withDefaultFonts: false, agent: { disabled: true } })
    )
  )
  yield* router.add(
    "GET",
    `${ResilienceApi.prefix}/docs`,
    Effect.match(page, {
      onFailure: (error) => problem(503, "Service Unavailable", `The docs page could not be built: ${error.message}`),
      // Not to be framed (clickjacking), nor to pass its URL on; Scalar's inline scripts need no more than that.
      onSuccess: (html) =>
        HttpServerResponse.html(html).pipe(HttpServerResponse.setHeaders({
          "content-security-policy": "frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
          "x-content-type-options": "nosniff",
          "referrer-policy": "no-referrer"
        }))
    })
  )
}))

/**
 * The services the routes need from the server (provided by `NodeHttpServer.layer`, or `layerServer`).
 *
 * @example
 * ```ts
 * import type { ResilienceHttp } from "@effect-resilience/http"
 * import type { Layer } from "effect"
 *
 * type Needs = Layer.Layer<never, never, ResilienceHttp.ServerServices>
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export type ServerServices = Etag.Generator | FileSystem.FileSystem | HttpPlatform.HttpPlatform | Path.Path

/**
 * This package's own routes: `ResilienceApi` (monitoring, probes, admin controls), its OpenAPI document at
 * `/api/v1/resilience/openapi.json`, a self-contained docs page at `/api/v1/resilience/docs` (bundled Scalar,
 * no CDN or web fonts), and JSON problems for every error under `/api/v1/resilience` and `/health`.
 * `layer` adds the events, metrics and dashboard.
 *
 * @example
 * ```ts
 * import { CircuitBreakerRegistry } from "@effect-resilience/core"
 * import { Admin, ResilienceHttp } from "@effect-resilience/http"
 * import { Layer } from "effect"
 *
 * const ApiOnly = ResilienceHttp.layerApi({ docs: false }).pipe(
 *   Layer.provide([Admin.layer, CircuitBreakerRegistry.layer])
 * )
 * ```
 *
 * @since 0.2.0
 * @category layers
 */
export const layerApi = (
  options?: Options
): Layer.Layer<
  never,
  PolicyConfig.PolicyConfigError | Config.ConfigError,
  HttpRouter.HttpRouter | ServerServices | CircuitBreakerRegistry.CircuitBreakerRegistry | Admin.AdminEvents
> =>
  Layer.unwrap(Effect.map(settings(options), (s) => {
    const routes = Layer.mergeAll(
      HttpApiBuilder.layer(
        ResilienceApi.ResilienceApi,
        s.docs ? { openapiPath: `${ResilienceApi.prefix}/openapi.json` } : {}
      )
        .pipe(
          // The groups' routes look the API's middleware up in what their layers were built with.
          Layer.provide(
            Layer.mergeAll(MonitoringLive(s), ProbesLive(s), AdminLive(s)).pipe(Layer.provide(RequestValidationLive))
          )
        ),
      fallbacks
    ).pipe(Layer.provide(problems(s.maxBodyBytes)), Layer.merge(undecodablePaths))
    return s.docs
      ? Layer.merge(
        routes,
        docs
      )
      : routes
  }))

/**
 * Everything, mounted into the `HttpRouter` in context with one layer: `layerApi`, the live events
 * (`/api/v1/resilience/events`), Prometheus metrics (`/metrics`) and the dashboard (`/dashboard`). The admin routes
 * and the event stream share the `Admin.AdminEvents` in context, or one of their own when there is none.
 *
 * **Gotchas**
 *
 * Breaker names go up to `ResilienceApi.maxNameLength` (200) characters, but `HttpRouter`'s default
 * `maxParamLength` is 100: serve with `routerConfig: { maxParamLength: ResilienceApi.maxNameLength }` (or more), or a
 * name of 101 to 200 characters can be neither read nor controlled (a 400 `InvalidRequest` on `name` saying so).
 * `routerConfig` replaces the router's configuration as a whole: merge it into your own.
 *
 * @example
 * ```ts
 * import { CircuitBreakerRegistry } from "@effect-resilience/core"
 * import { ResilienceApi, ResilienceHttp } from "@effect-resilience/http"
 * import { NodeHttpServer } from "@effect/platform-node"
 * import { Layer } from "effect"
 * import { HttpRouter } from "effect/http"
 * import { createServer } from "node:http"
 *
 * const Server = HttpRouter.serve(ResilienceHttp.layer(), {
 *   routerConfig: { maxParamLength: ResilienceApi.maxNameLength }
 * }).pipe(
 *   Layer.provide(CircuitBreakerRegistry.layer),
 *   Layer.provide(NodeHttpServer.layer(createServer, { port: 8080 }))
 * )
 * ```
 *
 * @since 0.2.0
 * @category layers
 */
export const layer = (
  options?: Options
): Layer.Layer<
  never,
  PolicyConfig.PolicyConfigError | Config.ConfigError | PlatformError.PlatformError,
  HttpRouter.HttpRouter | ServerServices | CircuitBreakerRegistry.CircuitBreakerRegistry
> => {
  const all = Layer.mergeAll(
    layerApi(options),
    // Built for its route; its hub stays private to it.
    options?.events === false ? Layer.empty : Layer.empty.pipe(Layer.provide(Events.layer(options?.events))),
    options?.metrics === false ? Layer.empty : Metrics.layer(options?.metrics),
    options?.dashboard === false ? Layer.empty : Dashboard.layer(options?.dashboard)
  )
  return Layer.unwrap(
    Effect.map(
      Effect.serviceOption(Admin.AdminEvents),
      (admin) =>
        all.pipe(Layer.provide(Option.isSome(admin) ? Layer.succeed(Admin.AdminEvents, admin.value) : Admin.layer))
    )
  )
}

/**
 * Serves `layer` alone on its own port with `@effect/platform-node` (a sidecar port for operations, say), its router
 * taking every breaker name the API does (`maxParamLength: ResilienceApi.maxNameLength`). Unknown paths anywhere
 * answer a 404 problem. It logs where it listens, and no request unless `logRequests` (a port that Prometheus and
 * probes poll every few seconds would fill a log with them).
 *
 * @example
 * ```ts
 * import { CircuitBreakerRegistry } from "@effect-resilience/core"
 * import { ResilienceHttp } from "@effect-resilience/http"
 * import { NodeRuntime } from "@effect/platform-node"
 * import { Layer } from "effect"
 *
 * const Ops = ResilienceHttp.layerServer({ port: 9464, host: "127.0.0.1" }).pipe(
 *   Layer.provide(CircuitBreakerRegistry.layer)
 * )
 * const main = () => NodeRuntime.runMain(Layer.launch(Ops))
 * ```
 *
 * @since 0.2.0
 * @category layers
 */
export const layerServer = (
  options: Options & {
    readonly port: number
    readonly host?: string | undefined
    /** Log every request served, as `HttpRouter.serve` does by default. Default: false. */
    readonly logRequests?: boolean | undefined
  }
): Layer.Layer<
  never,
  PolicyConfig.PolicyConfigError | Config.ConfigError | PlatformError.PlatformError | HttpServerError.ServeError,
  CircuitBreakerRegistry.CircuitBreakerRegistry
> =>
  HttpRouter.serve(Layer.merge(layer(options), unknownPaths), {
    disableLogger: options.logRequests !== true,
    // The router's default (100) would turn away names the API takes.
    routerConfig: { maxParamLength: ResilienceApi.maxNameLength }
  }).pipe(
    Layer.provide(NodeHttpServer.layer(createServer, { port: options.port, host: options.host }))
  )

/**
 * `node:http`'s `createServer`, answering what Node's parser rejects (a malformed request, headers over its limit)
 * with a JSON problem (400, 431, 408) and closing the connection gently: Node's default destroys the socket at once,
 * and a client still sending then gets a reset instead of the answer. `layerServer` uses it; pass it to
 * `NodeHttpServer.layer` when you serve `layer` in your own server.
 *
 * @example
 * ```ts
 * import { CircuitBreakerRegistry } from "@effect-resilience/core"
 * import { ResilienceHttp } from "@effect-resilience/http"
 * import { NodeHttpServer } from "@effect/platform-node"
 * import { Layer } from "effect"
 * import { HttpRouter } from "effect/http"
 *
 * const Server = HttpRouter.serve(ResilienceHttp.layer()).pipe(
 *   Layer.provide(CircuitBreakerRegistry.layer),
 *   Layer.provide(NodeHttpServer.layer(ResilienceHttp.createServer, { port: 8080 }))
 * )
 * ```
 *
 * @since 0.2.0
 * @category constructors
 */
export const createServer = (options: Http.ServerOptions = {}): Http.Server =>
  clientError.install(Http.createServer(options))
