import { CircuitBreaker, CircuitBreakerRegistry } from "@effect-resilience/core"
import { ResilienceApi, ResilienceHttp } from "@effect-resilience/http"
import { RedisFleet } from "@effect-resilience/redis"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Logger, Redacted, Schema } from "effect"
import { FetchHttpClient, HttpClient, HttpClientRequest } from "effect/http"
import * as Net from "node:net"
import { get, type Reply, request, Server } from "./httpTest.ts"

const statsFields = [
  "state",
  "failure_count",
  "failure_threshold",
  "success_count",
  "success_threshold",
  "failure_rate",
  "total_calls",
  "state_changes",
  "opened_at",
  "last_failure_time",
  "time_in_state_ms",
  "retry_after_ms"
]

const freePort = Effect.promise(() =>
  new Promise<number>((resolve) => {
    const probe = Net.createServer().listen(0, "127.0.0.1", () => {
      const free = (probe.address() as Net.AddressInfo).port
      probe.close(() => resolve(free))
    })
  })
)

const isProblem = (reply: Reply, status: number) => {
  assert.strictEqual(reply.status, status)
  assert.match(String(reply.headers["content-type"]), /^application\/problem\+json/)
  assert.strictEqual(reply.json.status, status)
  assert.isString(reply.json.type)
  assert.isString(reply.json.title)
}

// The log messages of a layerServer that answered one request.
const servedLog = (logRequests: boolean) =>
  Effect.gen(function*() {
    const messages: Array<string> = []
    const port = yield* freePort
    yield* Effect.scoped(Effect.gen(function*() {
      yield* Layer.build(ResilienceHttp.layerServer({ port, host: "127.0.0.1", logRequests }))
      yield* Effect.promise(() => fetch(`http://127.0.0.1:${port}/health`).then((r) => r.text()))
    })).pipe(
      Effect.provide(Logger.layer([Logger.make((options) => void messages.push(String(options.message)))]))
    )
    return messages
  })

describe("ResilienceApi", () => {
  it.effect("GET /circuit-breakers: every breaker by name, in the wire shape", () =>
    Effect.gen(function*() {
      const db = yield* CircuitBreaker.make({ name: "db", trip: CircuitBreaker.consecutive(2) })
      yield* CircuitBreaker.make({ name: "search" })
      yield* Effect.ignore(db.protect(Effect.fail("boom")))
      yield* Effect.ignore(db.protect(Effect.fail("boom")))
      const reply = yield* get("/api/v1/resilience/circuit-breakers")
      assert.strictEqual(reply.status, 200)
      assert.deepStrictEqual(Object.keys(reply.json).sort(), ["db", "search"])
      const entry = Schema.decodeUnknownSync(ResilienceApi.CircuitBreakerEntry)(reply.json.db)
      assert.deepStrictEqual(Object.keys(reply.json.db).sort(), [...statsFields].sort())
      assert.strictEqual(entry.state, "open")
      assert.strictEqual(entry.total_calls, 2)
      assert.strictEqual(entry.failure_count, 2)
      assert.strictEqual(entry.opened_at, "1970-01-01T00:00:00.000Z")
      assert.strictEqual(entry.last_failure_time, "1970-01-01T00:00:00.000Z")
      assert.strictEqual(reply.json.search.state, "closed")
      assert.strictEqual(reply.json.search.opened_at, null)
    }).pipe(Effect.provide(Server())))

  it.effect("keyed breakers list their keys, capped, with the count not shown", () =>
    Effect.gen(function*() {
      const hosts = yield* CircuitBreaker.make({ name: "hosts", trip: CircuitBreaker.consecutive(1) })
      yield* hosts.protectKey(Effect.void, "a")
      yield* hosts.protectKey(Effect.void, "b")
      yield* Effect.ignore(hosts.protectKey(Effect.fail("down"), "c"))
      const reply = yield* get("/api/v1/resilience/circuit-breakers/hosts")
      assert.strictEqual(reply.status, 200)
      const entry = Schema.decodeUnknownSync(ResilienceApi.CircuitBreakerEntry)(reply.json)
      assert.strictEqual(Object.keys(entry.keys!).length, 2)
      assert.strictEqual(entry.keys_not_shown, 1)
      for (const stats of Object.values(reply.json.keys)) {
        assert.deepStrictEqual(Object.keys(stats as object).sort(), [...statsFields].sort())
      }
    }).pipe(Effect.provide(Server({ maxKeys: 2 }))))

  // One circuit per host, as every ResilientHttpClient has: the default circuit is never called.
  it.effect("a keyed breaker's top level is its circuit worst off, in every view, with that circuit's figures", () =>
    Effect.gen(function*() {
      const hosts = yield* CircuitBreaker.make({ name: "hosts", trip: CircuitBreaker.consecutive(1) })
      yield* hosts.protectKey(Effect.void, "cdn.example:443")
      yield* Effect.ignore(hosts.protectKey(Effect.fail("down"), "api.example:443"))
      const one = (yield* get("/api/v1/resilience/circuit-breakers/hosts")).json
      assert.deepStrictEqual([one.state, one.failure_count, one.keys["api.example:443"].state], ["open", 1, "open"])
      assert.strictEqual((yield* get("/api/v1/resilience/circuit-breakers")).json.hosts.state, "open")
      const [row] = (yield* get("/api/v1/resilience/summary")).json
      assert.deepStrictEqual([row.state, row.failure_count, row.failure_threshold], ["open", 1, 1])
      assert.strictEqual((yield* get("/health")).json.circuits.hosts.state, "open")
    }).pipe(Effect.provide(Server())))

  it.effect("a breaker or key named __proto__ is listed like any other", () =>
    Effect.gen(function*() {
      // Keys often come from request data (a host, a tenant): on a plain object map this one set the prototype.
      const proto = yield* CircuitBreaker.make({ name: "__proto__", trip: CircuitBreaker.consecutive(1) })
      const tenants = yield* CircuitBreaker.make({ name: "tenants", trip: CircuitBreaker.consecutive(1) })
      yield* Effect.ignore(proto.protect(Effect.fail("down")))
      yield* tenants.protectKey(Effect.void, "acme")
      yield* Effect.ignore(tenants.protectKey(Effect.fail("down"), "__proto__"))
      const all = yield* get("/api/v1/resilience/circuit-breakers")
      assert.deepStrictEqual(Object.keys(all.json).sort(), ["__proto__", "tenants"])
      assert.strictEqual(all.json["__proto__"].state, "open")
      const keyed = yield* get("/api/v1/resilience/circuit-breakers/tenants")
      assert.deepStrictEqual(Object.keys(keyed.json.keys).sort(), ["__proto__", "acme"])
      assert.strictEqual(keyed.json.keys["__proto__"].state, "open")
      assert.strictEqual(keyed.json.keys_not_shown, 0)
    }).pipe(Effect.provide(Server())))

  it.effect("GET /circuit-breakers/{name}: an unknown name is a 404 problem", () =>
    Effect.gen(function*() {
      yield* CircuitBreaker.make({ name: "db" })
      const ok = yield* get("/api/v1/resilience/circuit-breakers/db")
      assert.strictEqual(ok.status, 200)
      assert.strictEqual(ok.json.state, "closed")
      const missing = yield* get("/api/v1/resilience/circuit-breakers/nope")
      isProblem(missing, 404)
      assert.strictEqual(missing.json.breaker, "nope")
    }).pipe(Effect.provide(Server())))

  it.effect("GET /health: healthy, degraded when any circuit is open, critical when more than half are", () =>
    Effect.gen(function*() {
      const a = yield* CircuitBreaker.make({ name: "a" })
      const b = yield* CircuitBreaker.make({ name: "b" })
      const c = yield* CircuitBreaker.make({ name: "c" })
      const health = Effect.map(get("/api/v1/resilience/health"), (r) => {
        assert.strictEqual(r.status, 200)
        return Schema.decodeUnknownSync(ResilienceApi.BreakersHealth)(r.json)
      })
      const healthy = yield* health
      assert.strictEqual(healthy.status, "healthy")
      assert.deepStrictEqual(healthy.circuits_by_state, { closed: 3, open: 0, half_open: 0 })
      yield* CircuitBreaker.setState(a, "Open")
      yield* CircuitBreaker.setState(c, "HalfOpen")
      const degraded = yield* health
      assert.strictEqual(degraded.status, "degraded")
      assert.strictEqual(degraded.total_circuits, 3)
      assert.deepStrictEqual(degraded.circuits_by_state, { closed: 1, open: 1, half_open: 1 })
      assert.deepStrictEqual(degraded.open_circuits, ["a"])
      yield* b.forceOpen()
      const critical = yield* health
      assert.strictEqual(critical.status, "critical")
      assert.deepStrictEqual(critical.open_circuits, ["a", "b"])
    }).pipe(Effect.provide(Server())))

  it.effect("GET /summary: health_percentage is 100 closed, 50 half-open, 0 open", () =>
    Effect.gen(function*() {
      yield* CircuitBreaker.make({ name: "closed" })
      yield* Effect.flatMap(CircuitBreaker.make({ name: "half" }), (b) => CircuitBreaker.setState(b, "HalfOpen"))
      yield* Effect.flatMap(CircuitBreaker.make({ name: "open" }), (b) => CircuitBreaker.setState(b, "Open"))
      const reply = yield* get("/api/v1/resilience/summary")
      assert.strictEqual(reply.status, 200)
      const rows = Schema.decodeUnknownSync(Schema.Array(ResilienceApi.SummaryRow))(reply.json)
      assert.deepStrictEqual(rows.map((r) => [r.name, r.state, r.health_percentage]), [
        ["closed", "closed", 100],
        ["half", "half_open", 50],
        ["open", "open", 0]
      ])
      assert.deepStrictEqual(Object.keys(reply.json[1]).sort(), [
        "failure_count",
        "failure_threshold",
        "health_percentage",
        "name",
        "state",
        "success_count",
        "success_threshold"
      ])
      assert.strictEqual(rows[1].success_threshold, 1)
    }).pipe(Effect.provide(Server())))

  it.effect("thresholds come from the breaker's options: consecutive failures, probe successes; null for rates only", () =>
    Effect.gen(function*() {
      yield* CircuitBreaker.make({
        name: "llm",
        trip: CircuitBreaker.consecutive(3),
        halfOpen: { successThreshold: 2 }
      })
      yield* CircuitBreaker.make({
        name: "rates",
        trip: CircuitBreaker.failureRate({ threshold: 0.5, minimumCalls: 10, window: CircuitBreaker.lastCalls(20) })
      })
      const rows = Schema.decodeUnknownSync(Schema.Array(ResilienceApi.SummaryRow))(
        (yield* get("/api/v1/resilience/summary")).json
      )
      assert.deepStrictEqual(rows.map((r) => [r.name, r.failure_threshold, r.success_threshold]), [
        ["llm", 3, 2],
        ["rates", null, 1]
      ])
      // The document says so too.
      const openapi = yield* get("/api/v1/resilience/openapi.json")
      const stats = openapi.json.paths["/api/v1/resilience/circuit-breakers/{name}"].get.responses["200"]
        .content["application/json"].schema.properties
      assert.include(stats.failure_threshold.description, "null for a breaker that trips on rates only")
      assert.include(stats.success_threshold.description, "in every state; never null")
    }).pipe(Effect.provide(Server())))

  it.effect("GET /fleet: 404 problem without a fleet", () =>
    Effect.gen(function*() {
      isProblem(yield* get("/api/v1/resilience/fleet"), 404)
    }).pipe(Effect.provide(Server())))

  it.effect("GET /fleet: the live instances and, per shared breaker, the fleet's figures next to the local state", () =>
    Effect.gen(function*() {
      yield* Effect.flatMap(CircuitBreaker.make({ name: "db" }), (b) => CircuitBreaker.setState(b, "Open"))
      const reply = yield* get("/api/v1/resilience/fleet")
      assert.strictEqual(reply.status, 200)
      const fleet = Schema.decodeUnknownSync(ResilienceApi.Fleet)(reply.json)
      assert.strictEqual(fleet.instance, "i-1")
      assert.deepStrictEqual(fleet.live_instances, [
        { instance: "i-1", last_heartbeat: "1970-01-01T00:00:01.000Z" },
        { instance: "i-2", last_heartbeat: "1970-01-01T00:00:02.000Z" }
      ])
      assert.deepStrictEqual(fleet.breakers.map((b) => [b.name, b.local_state, b.queued]), [["db", "open", 3], [
        "gone",
        null,
        0
      ]])
    }).pipe(
      Effect.provide(Server()),
      Effect.provide(Layer.succeed(
        RedisFleet.RedisFleet,
        {
          instance: "i-1",
          snapshot: Effect.succeed({
            instance: "i-1",
            liveInstances: 2,
            unreadable: 0,
            breakers: ["db", "gone"].map((breaker) => ({
              breaker,
              counting: "local" as const,
              keys: 1,
              queued: breaker === "db" ? 3 : 0,
              applied: 0,
              accepted: 0,
              rejected: 0,
              pending: 0,
              failed: 0,
              localDecisions: 0
            }))
          }),
          instances: Effect.succeed([{ instance: "i-1", lastHeartbeat: 1000 }, {
            instance: "i-2",
            lastHeartbeat: 2000
          }])
        } as unknown as RedisFleet.RedisFleet
      ))
    ))

  it.effect("serves its OpenAPI document and a docs page that loads nothing from elsewhere", () =>
    Effect.gen(function*() {
      const openapi = yield* get("/api/v1/resilience/openapi.json")
      assert.strictEqual(openapi.status, 200)
      assert.deepStrictEqual([openapi.json.info.title, openapi.json.info.version], ["effect-resilience", "1"])
      assert.includeMembers(Object.keys(openapi.json.paths), [
        "/api/v1/resilience/circuit-breakers",
        "/api/v1/resilience/circuit-breakers/{name}",
        "/api/v1/resilience/health",
        "/api/v1/resilience/summary",
        "/api/v1/resilience/fleet",
        "/api/v1/resilience/circuit-breakers/{name}/reset",
        "/health",
        "/health/ready"
      ])
      assert.deepStrictEqual(openapi.json.components.securitySchemes.adminToken.scheme, "bearer")
      assert.deepStrictEqual(openapi.json.paths["/api/v1/resilience/circuit-breakers/{name}/reset"].post.security, [
        { adminToken: [] }
      ])
      assert.deepStrictEqual(openapi.json.paths["/api/v1/resilience/health"].get.security, [])
      const docs = yield* get("/api/v1/resilience/docs")
      assert.strictEqual(docs.status, 200)
      assert.match(String(docs.headers["content-type"]), /^text\/html/)
      assert.include(docs.text, "api-reference-container")
      assert.notMatch(docs.text, /<script[^>]+src=/)
      assert.notMatch(docs.text, /<link[^>]+href="?https?:/)
      assert.include(docs.text, `"withDefaultFonts":false`)
    }).pipe(Effect.provide(Server())))

  it.effect("the typed client reads the API", () =>
    Effect.gen(function*() {
      yield* Effect.flatMap(CircuitBreaker.make({ name: "db" }), (b) => CircuitBreaker.setState(b, "Open"))
      const client = yield* ResilienceApi.client()
      const health = yield* client.monitoring.health()
      assert.deepStrictEqual(health.open_circuits, ["db"])
      const db = yield* client.monitoring.circuitBreaker({ params: { name: "db" } })
      assert.strictEqual(db.state, "open")
      const missing = yield* Effect.flip(client.monitoring.circuitBreaker({ params: { name: "nope" } }))
      assert.strictEqual(missing._tag, "BreakerNotFound")
    }).pipe(Effect.provide(Server())))

  it.effect("bad input gets JSON problems (400, 404, 405, 413), never a 500", () =>
    Effect.gen(function*() {
      yield* CircuitBreaker.make({ name: "db" })
      const control = yield* get("/api/v1/resilience/circuit-breakers/a%01b")
      isProblem(control, 400)
      isProblem(yield* get(`/api/v1/resilience/circuit-breakers/${"x".repeat(201)}`), 400)
      isProblem(yield* get("/api/v1/resilience/nope"), 404)
      // Not mounted here (events: false): absent, not malformed.
      isProblem(yield* get("/api/v1/resilience/events"), 404)
      isProblem(yield* request("POST", "/api/v1/resilience/events"), 405)
      isProblem(yield* get("/api/v1/resilience/circuit-breakers/db/extra/segments"), 404)
      const wrongMethod = yield* request("DELETE", "/api/v1/resilience/health")
      isProblem(wrongMethod, 405)
      assert.strictEqual(wrongMethod.headers["allow"], "GET")
      const postProbe = yield* request("POST", "/health")
      isProblem(postProbe, 405)
      const getControl = yield* get("/api/v1/resilience/circuit-breakers/db/reset")
      isProblem(getControl, 405)
      assert.strictEqual(getControl.headers["allow"], "POST")
      const big = yield* request("POST", "/api/v1/resilience/circuit-breakers/db/reset", {
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ pad: "x".repeat(20_000) })
      })
      isProblem(big, 413)
      const declared = yield* request("POST", "/api/v1/resilience/circuit-breakers/db/reset", {
        headers: { "content-length": "20000" },
        body: "x".repeat(20_000)
      })
      isProblem(declared, 413)
      const badKey = yield* request("POST", "/api/v1/resilience/circuit-breakers/db/reset?key=%00")
      isProblem(badKey, 400)
      const badQuery = yield* request("POST", "/api/v1/resilience/circuit-breakers/db/reset?key=a&key=b")
      assert.oneOf(badQuery.status, [400, 401])
      assert.notInclude(badQuery.text, "    at ")
    }).pipe(Effect.provide(Server())))

  it.effect("a path the router takes as a route's (case, a trailing or doubled slash) gets that route's 405 and 400", () =>
    Effect.gen(function*() {
      yield* CircuitBreaker.make({ name: "db" })
      // The router serves these paths as the routes they spell differently, so a wrong method is one on that route.
      for (
        const [method, path, allow] of [
          ["GET", "/api/v1/resilience/circuit-breakers/db/reset/", "POST"],
          ["GET", "/API/V1/Resilience/circuit-breakers/db/force-open", "POST"],
          ["POST", "/health/ready/", "GET"],
          ["DELETE", "/api/v1/resilience//health", "GET"],
          ["POST", "/Health", "GET"]
        ]
      ) {
        const reply = yield* request(method, path)
        assert.strictEqual(reply.status, 405, `${method} ${path}: ${reply.text}`)
        isProblem(reply, 405)
        assert.strictEqual(reply.headers["allow"], allow, path)
      }
      // Under the router's default maxParamLength, a long name with a trailing slash is still told why.
      const long = yield* get(`/api/v1/resilience/circuit-breakers/${"x".repeat(150)}/`)
      isProblem(long, 400)
      assert.include(long.json.detail, "maxParamLength")
      // A path that does not decode, under another spelling of the package's paths: a problem, not an empty 404.
      isProblem(yield* get("/HEALTH/%FF"), 400)
    }).pipe(Effect.provide(Server({}, undefined, {}))))

  it.effect("layerServer serves the surface alone; any other path is a 404 problem", () =>
    Effect.gen(function*() {
      const port = yield* freePort
      yield* Layer.build(
        ResilienceHttp.layerServer({ port, host: "127.0.0.1", events: false, metrics: false, dashboard: false })
      )
      const fetchJson = (path: string) =>
        Effect.promise(async () => {
          const response = await fetch(`http://127.0.0.1:${port}${path}`)
          return { status: response.status, json: (await response.json()) as Reply["json"] }
        })
      const health = yield* fetchJson("/api/v1/resilience/health")
      assert.strictEqual(health.status, 200)
      assert.strictEqual(health.json.total_circuits, 1)
      const other = yield* fetchJson("/somewhere/else")
      assert.strictEqual(other.status, 404)
      assert.strictEqual(other.json.status, 404)
      // The catch-all leaves HEAD to the router, which answers it with the GET route: probes use HEAD.
      const head = (path: string) =>
        Effect.promise(() => fetch(`http://127.0.0.1:${port}${path}`, { method: "HEAD" }).then((r) => r.status))
      for (const path of ["/health", "/health/live", "/health/ready", "/api/v1/resilience/circuit-breakers/db"]) {
        assert.strictEqual(yield* head(path), 200, `HEAD ${path}`)
      }
      assert.strictEqual(yield* head("/api/v1/resilience/circuit-breakers/db/reset"), 405)
      assert.strictEqual(yield* head("/somewhere/else"), 404)
    }).pipe(
      Effect.provide(
        Layer.effectDiscard(CircuitBreaker.make({ name: "db" })).pipe(
          Layer.provideMerge(CircuitBreakerRegistry.layer)
        )
      )
    ))

  it.effect("layerServer logs where it listens, and the requests it serves only with logRequests", () =>
    Effect.gen(function*() {
      const quiet = yield* servedLog(false)
      assert.isTrue(quiet.some((m) => m.includes("Listening on")), quiet.join("\n"))
      assert.isFalse(quiet.some((m) => m.includes("Sent HTTP response")), quiet.join("\n"))
      assert.isTrue((yield* servedLog(true)).some((m) => m.includes("Sent HTTP response")))
    }).pipe(Effect.provide(CircuitBreakerRegistry.layer)))

  it.effect("layerServer serves every name the API takes: 200 characters, listed, read and controlled", () =>
    Effect.gen(function*() {
      const port = yield* freePort
      yield* Layer.build(ResilienceHttp.layerServer({
        port,
        host: "127.0.0.1",
        adminToken: Redacted.make("s3cret"),
        events: false,
        metrics: false,
        dashboard: false
      }))
      // Past the router's default maxParamLength (100), and longer still percent-encoded.
      const name = `tenant-\u00e9-${"x".repeat(ResilienceApi.maxNameLength - 9)}`
      assert.strictEqual(name.length, 200)
      yield* CircuitBreaker.make({ name })
      const client = yield* ResilienceApi.client({
        baseUrl: `http://127.0.0.1:${port}`,
        transformClient: HttpClient.mapRequest(HttpClientRequest.bearerToken("s3cret"))
      })
      assert.property(yield* client.monitoring.circuitBreakers(), name)
      assert.strictEqual((yield* client.monitoring.circuitBreaker({ params: { name } })).state, "closed")
      assert.strictEqual((yield* client.admin.forceOpen({ params: { name }, query: {} })).state, "forced_open")
      // One more character is the API's own 400, named.
      const over = yield* Effect.promise(() =>
        fetch(`http://127.0.0.1:${port}/api/v1/resilience/circuit-breakers/${encodeURIComponent(name)}x`)
          .then(async (r) => ({ status: r.status, json: (await r.json()) as Reply["json"] }))
      )
      assert.strictEqual(over.status, 400)
      const problem = Schema.decodeUnknownSync(ResilienceApi.InvalidRequest)(over.json)
      assert.deepStrictEqual(problem.errors.map((e) => [e.in, e.field, e.message]), [[
        "path",
        "name",
        "Expected a value with a length of at most 200"
      ]])
    }).pipe(Effect.provide(CircuitBreakerRegistry.layer), Effect.provide(FetchHttpClient.layer)))

  it.effect("HEAD answers as GET does, without a body", () =>
    Effect.gen(function*() {
      yield* CircuitBreaker.make({ name: "db" })
      for (
        const path of ["/health", "/health/live", "/api/v1/resilience/health", "/api/v1/resilience/circuit-breakers/db"]
      ) {
        const reply = yield* request("HEAD", path)
        assert.strictEqual(reply.status, 200, path)
        assert.strictEqual(reply.text, "")
      }
      assert.strictEqual((yield* request("HEAD", "/api/v1/resilience/nope")).status, 404)
    }).pipe(Effect.provide(Server())))

  it.effect("layer mounts the metrics and the dashboard too", () =>
    Effect.gen(function*() {
      yield* CircuitBreaker.make({ name: "db" })
      const metrics = yield* get("/metrics")
      assert.strictEqual(metrics.status, 200)
      assert.match(String(metrics.headers["content-type"]), /^text\/plain/)
      const dashboard = yield* get("/dashboard")
      assert.strictEqual(dashboard.status, 200)
      assert.match(String(dashboard.headers["content-type"]), /^text\/html/)
    }).pipe(Effect.provide(Server({ metrics: {}, dashboard: {} }))))

  it.effect("options are validated: one PolicyConfigError with every issue", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(Layer.build(Server({ maxKeys: 0, criticalBreakers: [""], maxBodyBytes: 1.5 })))
      assert.strictEqual(error._tag, "PolicyConfigError")
      assert.deepStrictEqual(
        (error as { readonly issues: ReadonlyArray<{ readonly path: string }> }).issues.map((i) => i.path).sort(),
        ["criticalBreakers[0]", "maxBodyBytes", "maxKeys"]
      )
    }))
})
