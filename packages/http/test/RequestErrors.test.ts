// Review notes on the API's errors: a malformed path or query parameter names the field and what it expects, and a
// 401 carries its RFC 6750 challenge.
import { CircuitBreaker } from "@effect-resilience/core"
import { ResilienceApi } from "@effect-resilience/http"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Redacted, Schema } from "effect"
import { type Reply, request, Server } from "./httpTest.ts"

const token = "s3cret-admin-token"

const post = (headers: Record<string, string>) =>
  request("POST", "/api/v1/resilience/circuit-breakers/db/force-open", { headers })

const invalid = (reply: Reply) => {
  assert.strictEqual(reply.status, 400, reply.text)
  assert.match(String(reply.headers["content-type"]), /^application\/problem\+json/)
  return Schema.decodeUnknownSync(ResilienceApi.InvalidRequest)(reply.json)
}

describe("request errors", () => {
  it.effect("a malformed path parameter or query names the field and what is expected", () =>
    Effect.gen(function*() {
      yield* CircuitBreaker.make({ name: "db" })
      const name = invalid(yield* request("GET", "/api/v1/resilience/circuit-breakers/a%01b"))
      assert.deepStrictEqual(name.errors, [{
        in: "path",
        field: "name",
        message: "a breaker name must not contain control characters",
        expected: "a breaker name: 1 to 200 characters, no control characters"
      }])
      assert.strictEqual(
        name.detail,
        "Invalid path parameter name: a breaker name must not contain control characters "
          + "(expected a breaker name: 1 to 200 characters, no control characters)"
      )
      assert.strictEqual(name.type, "https://effect-resilience.dev/problems/invalid-request")

      const headers = { authorization: `Bearer ${token}` }
      const empty = invalid(yield* request("POST", "/api/v1/resilience/circuit-breakers/db/reset?key=", { headers }))
      assert.deepStrictEqual(empty.errors, [{
        in: "query",
        field: "key",
        message: "Expected a value with a length of at least 1",
        expected: "a breaker key: 1 to 512 characters, no control characters"
      }])
      assert.include(empty.detail, "query parameter key")
      for (const query of ["key=%00", "key=a&key=b", `key=${"k".repeat(513)}`]) {
        const reply = invalid(
          yield* request("POST", `/api/v1/resilience/circuit-breakers/db/reset?${query}`, { headers })
        )
        assert.deepStrictEqual(reply.errors.map((e) => [e.in, e.field, e.expected]), [[
          "query",
          "key",
          "a breaker key: 1 to 512 characters, no control characters"
        ]], query)
      }
      // A path the router cannot decode never reaches a route: still an InvalidRequest, on `name` when it is the name.
      for (
        const [method, path] of [
          ["GET", "/api/v1/resilience/circuit-breakers/%E0%A4%A"],
          ["POST", "/api/v1/resilience/circuit-breakers/%E0%A4%A/reset"]
        ]
      ) {
        assert.deepStrictEqual(invalid(yield* request(method, path)).errors, [{
          in: "path",
          field: "name",
          message: "its percent-encoding does not decode",
          expected: "a breaker name: 1 to 200 characters, no control characters"
        }], path)
      }
      const undecodable = invalid(yield* request("GET", "/health/%FF"))
      assert.deepStrictEqual(undecodable.errors.map((e) => [e.in, e.field]), [["path", "(all)"]])
      assert.include(undecodable.detail, "percent-encoding")
      // A name past the API's 200 characters, which the router turns away first: named as the API would name it.
      const long = invalid(yield* request("GET", `/api/v1/resilience/circuit-breakers/${"x".repeat(201)}`))
      assert.deepStrictEqual(long.errors, [{
        in: "path",
        field: "name",
        message: "Expected a value with a length of at most 200",
        expected: "a breaker name: 1 to 200 characters, no control characters"
      }])
    }).pipe(Effect.provide(Server({ adminToken: Redacted.make(token) }))))

  it.effect("under the router's default maxParamLength (100), a longer valid name is an InvalidRequest saying why", () =>
    Effect.gen(function*() {
      const name = "x".repeat(150)
      yield* CircuitBreaker.make({ name })
      const headers = { authorization: `Bearer ${token}` }
      for (
        const [method, path] of [
          ["GET", `/api/v1/resilience/circuit-breakers/${name}`],
          ["POST", `/api/v1/resilience/circuit-breakers/${name}/reset`]
        ]
      ) {
        const reply = invalid(yield* request(method, path, { headers }))
        assert.deepStrictEqual(reply.errors.map((e) => [e.in, e.field]), [["path", "name"]], method)
        assert.include(reply.detail, "its maxParamLength (100 by default) is below the 200 characters")
      }
      // Past 200 characters, the API's own answer.
      const long = invalid(yield* request("GET", `/api/v1/resilience/circuit-breakers/${"x".repeat(201)}`))
      assert.strictEqual(long.errors[0].message, "Expected a value with a length of at most 200")
    }).pipe(Effect.provide(Server({ adminToken: Redacted.make(token) }, undefined, {}))))

  it.effect("a query parameter a control does not declare is named; the reads and probes take none and ignore any", () =>
    Effect.gen(function*() {
      yield* CircuitBreaker.make({ name: "db" })
      const headers = { authorization: `Bearer ${token}` }
      const control = invalid(
        yield* request("POST", "/api/v1/resilience/circuit-breakers/db/force-open?Key=eu-1", { headers })
      )
      assert.deepStrictEqual(control.errors, [{
        in: "query",
        field: "Key",
        message: "Unknown query parameter",
        expected: "key"
      }])
      assert.strictEqual(control.detail, "Invalid query parameter Key: Unknown query parameter (expected key)")
      // Checked before the token, as the declared parameters are.
      invalid(yield* request("POST", "/api/v1/resilience/circuit-breakers/db/reset?kye=eu-1"))
      // A monitor's cache-buster must not fail a probe.
      for (const path of ["/api/v1/resilience/circuit-breakers/db?_=1", "/health?_=1", "/health/ready?_=1"]) {
        assert.strictEqual((yield* request("GET", path)).status, 200, path)
      }
    }).pipe(Effect.provide(Server({ adminToken: Redacted.make(token) }))))

  it.effect("a ?key= whose percent-encoding does not decode is a 400 on key, not the action on the raw text", () =>
    Effect.gen(function*() {
      const db = yield* CircuitBreaker.make({ name: "db" })
      const headers = { authorization: `Bearer ${token}` }
      // "café" sent as Latin-1, a truncated escape, an overlong and a surrogate's UTF-8: the router keeps them raw.
      for (const key of ["caf%E9", "%E0%A4%A", "%C0%80", "%ED%A0%80"]) {
        const reply = invalid(
          yield* request("POST", `/api/v1/resilience/circuit-breakers/db/force-open?key=${key}`, { headers })
        )
        assert.deepStrictEqual(reply.errors, [{
          in: "query",
          field: "key",
          message: "its percent-encoding does not decode",
          expected: "a breaker key: 1 to 512 characters, no control characters"
        }], key)
      }
      assert.deepStrictEqual((yield* db.snapshots).map((s) => [s.key, s.state]), [["default", "Closed"]])
      // A key that decodes is taken as before, a literal "%" sent as %25 too.
      const escaped = yield* request("POST", "/api/v1/resilience/circuit-breakers/db/force-open?key=caf%C3%A9%25E9", {
        headers
      })
      assert.strictEqual(escaped.json.key, "café%E9")
      // The reads take no parameter and ignore any, undecodable or not.
      assert.strictEqual((yield* request("GET", "/health?_=%FF")).status, 200)
    }).pipe(Effect.provide(Server({ adminToken: Redacted.make(token) }))))

  it.effect("the OpenAPI document declares the 400 problem", () =>
    Effect.gen(function*() {
      const openapi = yield* request("GET", "/api/v1/resilience/openapi.json")
      const responses = openapi.json.paths["/api/v1/resilience/circuit-breakers/{name}/reset"].post.responses
      assert.property(responses, "400")
    }).pipe(Effect.provide(Server())))

  it.effect("a 401 carries WWW-Authenticate: Bearer, with error=\"invalid_token\" for a wrong token", () =>
    Effect.gen(function*() {
      yield* CircuitBreaker.make({ name: "db" })
      for (const headers of [{}, { authorization: `Basic ${token}` }, { authorization: "Bearer" }]) {
        const reply = yield* post(headers)
        assert.strictEqual(reply.status, 401, JSON.stringify(headers))
        assert.strictEqual(reply.headers["www-authenticate"], `Bearer realm="effect-resilience"`)
      }
      for (const wrong of ["wrong", `${token}x`]) {
        const reply = yield* post({ authorization: `Bearer ${wrong}` })
        assert.strictEqual(reply.status, 401)
        assert.strictEqual(
          reply.headers["www-authenticate"],
          `Bearer realm="effect-resilience", error="invalid_token"`
        )
      }
      const ok = yield* post({ authorization: `Bearer ${token}` })
      assert.strictEqual(ok.status, 200)
      assert.isUndefined(ok.headers["www-authenticate"])
    }).pipe(Effect.provide(Server({ adminToken: Redacted.make(token) }))))
})
