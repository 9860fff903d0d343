import { CircuitBreaker, CircuitBreakerRegistry } from "@effect-resilience/core"
import { Admin, AdminToken, ResilienceApi } from "@effect-resilience/http"
import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Effect, Fiber, Layer, Logger, PubSub, Redacted, References, Schema, Stream } from "effect"
import { request, Server } from "./httpTest.ts"

const token = "s3cret-admin-token"
const auth = { authorization: `Bearer ${token}` }

const post = (path: string, headers: Record<string, string> = {}) =>
  request("POST", `/api/v1/resilience/circuit-breakers/${path}`, { headers })

const lines: Array<string> = []
const Captured = Logger.layer([
  Logger.make((options) => {
    lines.push(JSON.stringify({
      message: options.message,
      annotations: options.fiber.getRef(References.CurrentLogAnnotations)
    }))
  })
])

const WithToken = Server({ adminToken: Redacted.make(token) }).pipe(Layer.provide(Captured))

describe("AdminToken", () => {
  it("takes a Bearer token, the scheme in any case, and compares it whole", () => {
    const configured = Redacted.make("s3cret-admin-token")
    assert.deepStrictEqual(
      ["Bearer s3cret-admin-token", "bearer s3cret-admin-token", "BEARER  s3cret-admin-token "].map((header) =>
        AdminToken.authorizes(header, configured)
      ),
      [true, true, true]
    )
    const refused = [undefined, "", "s3cret-admin-token", "Basic s3cret-admin-token", "Bearer s3cret", "Bearer  "]
    assert.deepStrictEqual(refused.map((header) => AdminToken.authorizes(header, configured)), refused.map(() => false))
    assert.strictEqual(AdminToken.equals("s3cret-admin-token", configured), true)
    assert.strictEqual(AdminToken.equals(undefined, Redacted.make("")), false)
    // A token left unset is no token: an empty one given does not match it.
    assert.strictEqual(AdminToken.equals("", Redacted.make("")), false)
    assert.strictEqual(AdminToken.bearer("Bearer a b"), undefined)
  })
})

describe("admin controls", () => {
  it.effect("each action applies to the breaker (or one key with ?key=) and answers the state after it", () =>
    Effect.gen(function*() {
      const db = yield* CircuitBreaker.make({ name: "db" })
      const open = yield* post("db/force-open", auth)
      assert.strictEqual(open.status, 200)
      assert.deepStrictEqual(Schema.decodeUnknownSync(ResilienceApi.AdminResult)(open.json), {
        breaker: "db",
        key: null,
        action: "force_open",
        result: "applied",
        state: "forced_open"
      })
      assert.strictEqual(yield* db.state, "ForcedOpen")
      assert.strictEqual((yield* post("db/reset", auth)).json.state, "closed")
      assert.strictEqual(yield* db.state, "Closed")
      assert.strictEqual((yield* post("db/force-close", auth)).json.state, "metrics_only")
      assert.strictEqual(yield* db.state, "MetricsOnly")
      assert.strictEqual((yield* post("db/disable", auth)).json.state, "disabled")
      assert.strictEqual(yield* db.state, "Disabled")
      yield* db.reset()
      const one = yield* post("db/force-open?key=eu-1", auth)
      assert.strictEqual(one.json.key, "eu-1")
      assert.strictEqual(yield* db.stateKey("eu-1"), "ForcedOpen")
      assert.strictEqual(yield* db.stateKey("us-1"), "Closed")
    }).pipe(Effect.provide(WithToken)))

  it.effect("a misspelt ?key= (?Key=, ?kye=) is a 400 naming it, not the action on every key", () =>
    Effect.gen(function*() {
      const db = yield* CircuitBreaker.make({ name: "db" })
      yield* db.protectKey(Effect.void, "eu-1")
      yield* db.forceOpen("us-1")
      const misspelt = [
        ["db/force-open?Key=eu-1", "Key"],
        ["db/reset?kye=eu-1", "kye"],
        ["db/disable?key=eu-1&all=true", "all"]
      ] as const
      for (const [path, field] of misspelt) {
        const reply = yield* post(path, auth)
        assert.strictEqual(reply.status, 400, `${path}: ${reply.text}`)
        assert.deepStrictEqual(reply.json.errors.map((e: { readonly field: string }) => e.field), [field])
      }
      assert.strictEqual(yield* db.state, "Closed")
      assert.strictEqual(yield* db.stateKey("eu-1"), "Closed")
      assert.strictEqual(yield* db.stateKey("us-1"), "ForcedOpen")
    }).pipe(Effect.provide(WithToken)))

  it.effect("401 without or with a wrong token (nothing applied), 404 for an unknown breaker only once authorized", () =>
    Effect.gen(function*() {
      const db = yield* CircuitBreaker.make({ name: "db" })
      for (
        const headers of [
          {},
          { authorization: "Bearer wrong" },
          { authorization: `Bearer ${token}x` },
          { authorization: token },
          { authorization: `Basic ${token}` },
          { authorization: "Bearer " }
        ]
      ) {
        const reply = yield* post("db/force-open", headers)
        assert.strictEqual(reply.status, 401, JSON.stringify(headers))
        assert.strictEqual(reply.json.status, 401)
        assert.notInclude(reply.text, token)
      }
      assert.strictEqual(yield* db.state, "Closed")
      assert.strictEqual((yield* post("nope/reset")).status, 401)
      const missing = yield* post("nope/reset", auth)
      assert.strictEqual(missing.status, 404)
      assert.strictEqual(missing.json.breaker, "nope")
      // The scheme is case-insensitive (RFC 9110).
      assert.strictEqual((yield* post("db/force-open", { authorization: `bearer ${token}` })).status, 200)
    }).pipe(Effect.provide(WithToken)))

  it.effect("403 saying so when no token is configured", () =>
    Effect.gen(function*() {
      const db = yield* CircuitBreaker.make({ name: "db" })
      const reply = yield* post("db/force-open", auth)
      assert.strictEqual(reply.status, 403)
      assert.include(reply.json.title, "RESILIENCE_ADMIN_TOKEN")
      assert.strictEqual(yield* db.state, "Closed")
    }).pipe(Effect.provide(Server())))

  it.effect("the token comes from RESILIENCE_ADMIN_TOKEN", () =>
    Effect.gen(function*() {
      yield* CircuitBreaker.make({ name: "db" })
      assert.strictEqual((yield* post("db/force-open", { authorization: "Bearer from-env" })).status, 200)
      assert.strictEqual((yield* post("db/force-open", auth)).status, 401)
    }).pipe(
      Effect.provide(Server()),
      Effect.provide(ConfigProvider.layer(ConfigProvider.fromUnknown({ RESILIENCE_ADMIN_TOKEN: "from-env" })))
    ))

  it.effect("a token with whitespace, which no Bearer header can carry, is refused at startup without showing it", () =>
    Effect.gen(function*() {
      const given = yield* Effect.flip(Effect.scoped(Layer.build(Server({ adminToken: Redacted.make("s3cret two") }))))
      assert.strictEqual(given._tag, "PolicyConfigError")
      assert.include(given.message, "adminToken: Expected a token without whitespace")
      assert.notInclude(given.message, "s3cret")
      const fromEnv = yield* Effect.flip(Effect.scoped(Layer.build(Server()))).pipe(
        Effect.provide(ConfigProvider.layer(ConfigProvider.fromUnknown({ RESILIENCE_ADMIN_TOKEN: "from-file\n" })))
      )
      assert.include(fromEnv.message, "RESILIENCE_ADMIN_TOKEN (adminToken): Expected a token without whitespace")
    }))

  it.effect("any whitespace in a token is refused at startup, a tab or a carriage return too", () =>
    Effect.gen(function*() {
      for (const configured of ["s3cret\ttab", "s3cret\r", "\u00a0s3cret"]) {
        const given = yield* Effect.flip(Effect.scoped(Layer.build(Server({ adminToken: Redacted.make(configured) }))))
        assert.include(given.message, "adminToken: Expected a token without whitespace", JSON.stringify(configured))
      }
    }))

  it.effect("a token outside printable ASCII, which a header carries as other bytes, is refused at startup", () =>
    Effect.gen(function*() {
      // "€" leaves a client as UTF-8 and is read back as Latin-1: no request could ever match.
      for (const configured of ["s3cret-€uro-token", "s3cret\u0001", "caf\u00e9"]) {
        const outcome = yield* Effect.scoped(Layer.build(Server({ adminToken: Redacted.make(configured) }))).pipe(
          Effect.match({ onFailure: (e) => `${e._tag}: ${e.message}`, onSuccess: () => "accepted" })
        )
        assert.include(outcome, "PolicyConfigError", JSON.stringify(configured))
        assert.include(outcome, "adminToken: Expected a token of printable ASCII")
        assert.notInclude(outcome, "s3cret")
      }
      // Every visible ASCII character is accepted.
      const visible = Array.from({ length: 0x7e - 0x21 + 1 }, (_, i) => String.fromCharCode(0x21 + i)).join("")
      yield* Effect.scoped(Layer.build(Server({ adminToken: Redacted.make(visible) })))
    }))

  it.effect("every action is published and logged with breaker, key and result, never the token", () =>
    Effect.gen(function*() {
      lines.length = 0
      yield* CircuitBreaker.make({ name: "db" })
      const admin = yield* Admin.AdminEvents
      const subscription = yield* PubSub.subscribe(admin)
      const events = yield* Stream.fromSubscription(subscription).pipe(
        Stream.take(3),
        Stream.runCollect,
        Effect.forkChild
      )
      yield* post("db/force-open?key=eu-1", auth)
      yield* post("db/reset", { authorization: "Bearer wrong" })
      yield* post("gone/reset", auth)
      const published = yield* Fiber.join(events)
      assert.deepStrictEqual(published.map((e) => [e.action, e.breaker, e.key, e.result]), [
        ["force_open", "db", "eu-1", "applied"],
        ["reset", "db", null, "unauthorized"],
        ["reset", "gone", null, "not_found"]
      ])
      const admins = lines.filter((line) => line.includes("resilience admin action"))
      assert.strictEqual(admins.length, 3)
      assert.include(admins[0], `"breaker":"db"`)
      assert.include(admins[0], `"key":"eu-1"`)
      assert.include(admins[0], `"result":"applied"`)
      for (const line of lines) assert.notInclude(line, token)
    }).pipe(Effect.provide(WithToken)))

  it.effect("no path trick reaches a control without the token", () =>
    Effect.gen(function*() {
      const db = yield* CircuitBreaker.make({ name: "db" })
      const tricks = [
        "/api/v1/resilience/circuit-breakers/db/reset",
        "/api/v1/resilience/circuit-breakers/db%2Freset",
        "/api/v1/resilience/circuit-breakers/db/%72eset",
        "/API/V1/RESILIENCE/circuit-breakers/db/force-open",
        "/api/v1/resilience/circuit-breakers/db/FORCE-OPEN",
        "/api/v1/resilience/circuit-breakers/db/force-open.",
        "/api/v1/resilience/circuit-breakers/db./force-open",
        "/api/v1/resilience/circuit-breakers/db/force-open/",
        "//api/v1/resilience/circuit-breakers/db/force-open",
        "/api/v1/resilience/circuit-breakers/db/./force-open",
        "/api/v1/resilience/circuit-breakers/x/../db/force-open",
        "/api/v1/resilience/circuit-breakers/db/force-open;x=1",
        "/api/v1/resilience/circuit-breakers/db/force-open%00",
        "/api/v1/resilience/circuit-breakers/db/force-open?key=../../db"
      ]
      for (const path of tricks) {
        for (const method of ["POST", "PUT", "GET", "PATCH"]) {
          const reply = yield* request(method, path)
          assert.oneOf(reply.status, [400, 401, 404, 405], `${method} ${path}`)
        }
        assert.strictEqual(yield* db.state, "Closed", path)
      }
      assert.strictEqual(yield* db.stateKey("../../db"), "Closed")
      assert.lengthOf(yield* CircuitBreakerRegistry.snapshots, 1)
    }).pipe(Effect.provide(WithToken)))
})
