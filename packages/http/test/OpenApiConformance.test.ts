// The OpenAPI document against what the server answers: every documented operation is called in several states
// (fresh, a failing health check, tripped, a critical breaker forced open) and with bad input, and each answer must
// have a status the operation lists, a content type listed for that status, and a body matching that schema. A
// client generated from the document (or `ResilienceApi.client`) decodes exactly these.
import { CircuitBreaker, Degradation, HealthMonitor } from "@effect-resilience/core"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Redacted } from "effect"
import type { FindMyWay } from "effect/http"
import { get, request, Server } from "./httpTest.ts"

// Enough of JSON Schema 2020-12 for what HttpApi's OpenAPI generator emits.
interface JsonSchema {
  readonly $ref?: string
  readonly anyOf?: ReadonlyArray<JsonSchema>
  readonly enum?: ReadonlyArray<unknown>
  readonly type?: string | ReadonlyArray<string>
  readonly minimum?: number
  readonly maximum?: number
  readonly minLength?: number
  readonly maxLength?: number
  readonly items?: JsonSchema
  readonly required?: ReadonlyArray<string>
  readonly properties?: Readonly<Record<string, JsonSchema>>
  readonly additionalProperties?: boolean | JsonSchema
}

const typeOf = (x: unknown): string =>
  x === null
    ? "null"
    : Array.isArray(x)
    ? "array"
    : typeof x === "number"
    ? Number.isInteger(x) ? "integer" : "number"
    : typeof x

// The mismatches of `value` against `schema`; `$ref`s are resolved in `root` (the document).
const validate = (root: unknown, schema: JsonSchema, value: unknown, at = "$"): Array<string> => {
  const s = schema.$ref === undefined
    ? schema
    : schema.$ref.split("/").slice(1).reduce((o, k) => (o as Record<string, unknown>)[k], root) as JsonSchema
  if (s.anyOf !== undefined) {
    return s.anyOf.some((alternative) => validate(root, alternative, value, at).length === 0)
      ? []
      : [`${at}: ${JSON.stringify(value)} matches none of anyOf`]
  }
  const errors: Array<string> = []
  if (s.enum !== undefined && !s.enum.includes(value)) {
    errors.push(`${at}: ${JSON.stringify(value)} not in ${JSON.stringify(s.enum)}`)
  }
  if (s.type !== undefined) {
    const types = typeof s.type === "string" ? [s.type] : s.type
    const actual = typeOf(value)
    if (!types.some((t) => t === actual || (t === "number" && actual === "integer"))) {
      return [...errors, `${at}: a ${actual}, expected ${types.join(" | ")}`]
    }
  }
  if (typeof value === "number") {
    if (s.minimum !== undefined && value < s.minimum) errors.push(`${at}: below ${s.minimum}`)
    if (s.maximum !== undefined && value > s.maximum) errors.push(`${at}: above ${s.maximum}`)
  }
  if (typeof value === "string") {
    if (s.minLength !== undefined && value.length < s.minLength) errors.push(`${at}: shorter than ${s.minLength}`)
    if (s.maxLength !== undefined && value.length > s.maxLength) errors.push(`${at}: longer than ${s.maxLength}`)
  }
  if (Array.isArray(value) && s.items !== undefined) {
    const items = s.items
    value.forEach((item, i) => errors.push(...validate(root, items, item, `${at}[${i}]`)))
  }
  if (value !== null && typeof value === "object" && !Array.isArray(value)) {
    for (const required of s.required ?? []) if (!Object.hasOwn(value, required)) errors.push(`${at}: no ${required}`)
    for (const [k, v] of Object.entries(value)) {
      const property = s.properties !== undefined && Object.hasOwn(s.properties, k) ? s.properties[k] : undefined
      if (property !== undefined) errors.push(...validate(root, property, v, `${at}.${k}`))
      else if (s.additionalProperties === false) errors.push(`${at}: unexpected property ${k}`)
      else if (typeof s.additionalProperties === "object") {
        errors.push(...validate(root, s.additionalProperties, v, `${at}.${k}`))
      }
    }
  }
  return errors
}

const token = "openapi-conformance-token"
const auth = { authorization: `Bearer ${token}` }
const bc = "/api/v1/resilience/circuit-breakers"

const Services = Degradation.layer({
  rules: [
    { level: 1, breakers: ["cache"], description: "No cache" },
    { level: 3, breakers: ["llm"], description: "No LLM" }
  ]
}).pipe(
  Layer.provideMerge(HealthMonitor.layer()),
  Layer.provideMerge(Layer.effectDiscard(Effect.all([
    CircuitBreaker.make({ name: "cache", trip: CircuitBreaker.consecutive(1) }),
    CircuitBreaker.make({ name: "llm" }),
    CircuitBreaker.make({ name: "payments" }),
    CircuitBreaker.make({ name: "hosts", trip: CircuitBreaker.consecutive(1) })
  ])))
)

const conforms = Effect.gen(function*() {
  const spec = (yield* get("/api/v1/resilience/openapi.json")).json
  const exercised = new Set<string>()
  const mismatches: Array<string> = []
  const call = (method: "GET" | "POST", template: string, path: string, headers: Record<string, string> = {}) =>
    Effect.gen(function*() {
      const operation = spec.paths[template]?.[method.toLowerCase()]
      assert.isDefined(operation, `${method} ${template} is documented`)
      exercised.add(`${method} ${template}`)
      const reply = yield* request(method, path, { headers })
      const label = `${method} ${path.length > 80 ? `${path.slice(0, 77)}...` : path} -> ${reply.status}`
      const response = operation.responses[String(reply.status)]
      const contentType = String(reply.headers["content-type"] ?? "").split(";")[0]
      const media = response?.content?.[contentType]
      if (response === undefined) {
        mismatches.push(`${label}: status not documented (${Object.keys(operation.responses).join(", ")})`)
      } else if (media === undefined) {
        mismatches.push(`${label}: content type ${contentType} not documented`)
      } else {
        for (const error of validate(spec, media.schema, reply.json)) mismatches.push(`${label}: ${error}`)
      }
    })

  const reads = Effect.gen(function*() {
    yield* call("GET", bc, bc)
    yield* call("GET", `${bc}/{name}`, `${bc}/cache`)
    yield* call("GET", `${bc}/{name}`, `${bc}/hosts`)
    for (const what of ["health", "summary", "fleet"]) {
      yield* call("GET", `/api/v1/resilience/${what}`, `/api/v1/resilience/${what}`)
    }
    for (const probe of ["/health", "/health/live", "/health/ready"]) yield* call("GET", probe, probe)
  })

  // Fresh, with a health check that passes and one that fails, before and after they ran.
  const monitor = yield* HealthMonitor.HealthMonitor
  yield* monitor.register({ name: "postgres", check: Effect.void, interval: "1 hour" })
  yield* monitor.register({
    name: "redis",
    check: Effect.fail("ECONNREFUSED"),
    interval: "1 hour",
    warningThreshold: 1,
    failureThreshold: 1,
    critical: false
  })
  yield* reads
  yield* monitor.runNow("postgres")
  yield* monitor.runNow("redis")
  yield* reads

  // Tripped: a breaker open by a failure, a keyed breaker with one key open.
  const cache = yield* CircuitBreaker.make({ name: "cache2", trip: CircuitBreaker.consecutive(1) })
  yield* Effect.ignore(cache.protect(Effect.fail("down")))
  const hosts = yield* CircuitBreaker.make({ name: "hosts2", trip: CircuitBreaker.consecutive(1) })
  yield* hosts.protectKey(Effect.void, "a.example")
  yield* Effect.ignore(hosts.protectKey(Effect.fail("down"), "b.example"))
  yield* reads
  yield* call("GET", `${bc}/{name}`, `${bc}/hosts2`)

  // Every control: applied, for a key, without a token, with a wrong one, on an unknown breaker, with a bad or an
  // unknown query parameter.
  for (const control of ["reset", "force-open", "force-close", "disable"]) {
    const template = `${bc}/{name}/${control}`
    yield* call("POST", template, `${bc}/llm/${control}`, auth)
    yield* call("POST", template, `${bc}/hosts2/${control}?key=b.example`, auth)
    yield* call("POST", template, `${bc}/llm/${control}`)
    yield* call("POST", template, `${bc}/llm/${control}`, { authorization: "Bearer wrong" })
    yield* call("POST", template, `${bc}/nope/${control}`, auth)
    yield* call("POST", template, `${bc}/llm/${control}?key=`, auth)
    yield* call("POST", template, `${bc}/llm/${control}?Key=eu-1`, auth)
  }
  // A critical breaker forced open (out of rotation, unhealthy), and back.
  yield* call("POST", `${bc}/{name}/force-open`, `${bc}/payments/force-open`, auth)
  yield* call("POST", `${bc}/{name}/force-open`, `${bc}/llm/force-open`, auth)
  yield* reads
  yield* call("POST", `${bc}/{name}/reset`, `${bc}/payments/reset`, auth)
  yield* call("POST", `${bc}/{name}/reset`, `${bc}/llm/reset`, auth)

  // Bad names, whoever turns them away (HttpApi, the router, the percent-decoding), and an unknown one of 150
  // characters (a 404, or a 400 under a router that takes fewer).
  for (const name of ["a%01b", "x".repeat(201), "y".repeat(150), "%E0%A4%A"]) {
    yield* call("GET", `${bc}/{name}`, `${bc}/${name}`)
    yield* call("POST", `${bc}/{name}/reset`, `${bc}/${name}/reset`, auth)
  }
  yield* call("GET", `${bc}/{name}`, `${bc}/cache?verbose=1`)

  const documented = Object.entries(spec.paths as Record<string, Record<string, unknown>>)
    .flatMap(([template, operations]) => Object.keys(operations).map((m) => `${m.toUpperCase()} ${template}`))
  assert.deepStrictEqual(documented.filter((operation) => !exercised.has(operation)), [])
  assert.deepStrictEqual(mismatches, [], `answers contradicting the document:\n${mismatches.join("\n")}\n`)
})

const serving = (routerConfig?: Partial<FindMyWay.RouterConfig>) =>
  Server({ adminToken: Redacted.make(token), criticalBreakers: ["payments"] }, Services, routerConfig)

describe("OpenAPI conformance", () => {
  it.effect("every answer of every documented operation has a documented status, content type and body", () =>
    conforms.pipe(Effect.provide(serving())))

  it.effect("so under a router with the default maxParamLength (100), which turns longer names away itself", () =>
    conforms.pipe(Effect.provide(serving({}))))
})
