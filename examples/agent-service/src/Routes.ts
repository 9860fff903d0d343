/**
 * The agent service's own routes: search, chat, the chaos controls and the Telegram outbox. The operational surface
 * (/health, /metrics, the dashboard, the API) comes from `@effect-resilience/http`.
 */
import { AdminToken as TokenCheck } from "@effect-resilience/http"
import { ByteSize, Context, Data, Effect, Layer, type Redacted } from "effect"
import { HttpIncomingMessage, HttpRouter, HttpServerRequest, HttpServerResponse } from "effect/http"
import { AgentService } from "./Agent.ts"
import { type ChaosSettings, isService, services, Upstreams } from "./Upstreams.ts"

/** The token the chaos controls require (`Authorization: Bearer <token>`, any case of `Bearer`, or `X-Admin-Token`). */
export class AdminToken extends Context.Service<AdminToken, Redacted.Redacted<string>>()(
  "@effect-resilience/example-agent-service/AdminToken"
) {}

const json = (body: unknown, status = 200) => HttpServerResponse.jsonUnsafe(body, { status })

const badRequest = (field: string, message: string) => json({ error: "BadRequest", field, message }, 400)

// As the HTTP package's admin routes check it: in constant time, the scheme in any case.
const authorizedBy = (token: Redacted.Redacted<string>) =>
  Effect.map(HttpServerRequest.HttpServerRequest, ({ headers }) => {
    // Both compared every time, so that which header was sent (or none) does not show in the time taken.
    const byBearer = TokenCheck.authorizes(headers["authorization"], token)
    const byHeader = TokenCheck.equals(headers["x-admin-token"], token)
    return byBearer || byHeader
  })

// RFC 6750: the challenge says which scheme the token goes in.
const unauthorized = HttpServerResponse.jsonUnsafe({ error: "Unauthorized", message: "The admin token is required" }, {
  status: 401,
  headers: { "www-authenticate": "Bearer realm=\"effect-resilience\"" }
})

// Effect reads a body of any size unless told otherwise. The largest valid body, /chat's 200 + 10000 characters, is
// about 61 KB even with every character escaped (`\u0001`, 6 bytes), 31 KB at most as UTF-8: 64 KiB is above both.
const maxBodyBytes = 65_536

class BodyTooLarge extends Data.TaggedError("BodyTooLarge") {}

const tooLarge = json({
  error: "PayloadTooLarge",
  field: "body",
  message: `Expected a body of at most ${maxBodyBytes} bytes`
}, 413)

// The body as JSON, or `undefined` when it is not JSON. A declared length past the limit is refused before anything
// is read; a streamed (chunked) body, once it passes the limit.
const bodyJson = Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) => {
  const length = Number(request.headers["content-length"] ?? "0")
  if (!Number.isFinite(length) || length > maxBodyBytes) return Effect.fail(new BodyTooLarge())
  return request.json.pipe(
    Effect.provideService(HttpIncomingMessage.MaxBodySize, ByteSize.bytes(maxBodyBytes)),
    Effect.catch((error) =>
      error.reason._tag === "RequestParseError" && error.reason.reason === "BodyTooLarge"
        ? Effect.fail(new BodyTooLarge())
        : Effect.succeed(undefined)
    )
  )
})

const orTooLarge = <A, E, R>(self: Effect.Effect<A, E | BodyTooLarge, R>) =>
  Effect.catchTag(self, "BodyTooLarge", () => Effect.succeed(tooLarge))

const isObject = (u: unknown): u is Record<string, unknown> => typeof u === "object" && u !== null && !Array.isArray(u)

/** Checks a chaos patch: a 400 names the first bad field. */
export const validateChaos = (
  body: unknown
): { readonly _tag: "Ok"; readonly patch: Partial<ChaosSettings> } | {
  readonly _tag: "Bad"
  readonly field: string
  readonly message: string
} => {
  if (!isObject(body)) return { _tag: "Bad", field: "body", message: "Expected a JSON object" }
  const unknown = Object.keys(body).find((key) => key !== "failure_rate" && key !== "latency_ms")
  if (unknown !== undefined) {
    return { _tag: "Bad", field: unknown, message: "Unknown field: expected failure_rate or latency_ms" }
  }
  const patch: { failure_rate?: number; latency_ms?: number } = {}
  if ("failure_rate" in body) {
    const rate = body["failure_rate"]
    if (typeof rate !== "number" || !(rate >= 0 && rate <= 1)) {
      return { _tag: "Bad", field: "failure_rate", message: "Expected a number from 0 to 1" }
    }
    patch.failure_rate = rate
  }
  if ("latency_ms" in body) {
    const latency = body["latency_ms"]
    if (typeof latency !== "number" || !Number.isInteger(latency) || latency < 0 || latency > 60_000) {
      return { _tag: "Bad", field: "latency_ms", message: "Expected an integer from 0 to 60000" }
    }
    patch.latency_ms = latency
  }
  if (Object.keys(patch).length === 0) {
    return { _tag: "Bad", field: "failure_rate", message: "Expected failure_rate and/or latency_ms" }
  }
  return { _tag: "Ok", patch }
}

export const layer = HttpRouter.use(Effect.fnUntraced(function*(router) {
  const agent = yield* AgentService
  const upstreams = yield* Upstreams
  const authorized = authorizedBy(yield* AdminToken)

  yield* router.add("GET", "/search", (request) => {
    const query = new URL(request.url, "http://localhost").searchParams.get("q")
    if (query === null || query.trim() === "") return Effect.succeed(badRequest("q", "Expected a non-empty query"))
    return Effect.map(agent.search(query), (answer) => json(answer))
  })

  yield* router.add(
    "POST",
    "/chat",
    Effect.gen(function*() {
      const body = yield* bodyJson
      if (!isObject(body)) return badRequest("body", "Expected a JSON object")
      // A misspelt field ("mesage") is named, as /chaos does, rather than ignored.
      const unknown = Object.keys(body).find((key) => key !== "user_id" && key !== "message")
      if (unknown !== undefined) return badRequest(unknown, "Unknown field: expected user_id or message")
      const userId = body["user_id"]
      const message = body["message"]
      if (typeof userId !== "string" || userId === "" || userId.length > 200) {
        return badRequest("user_id", "Expected a string of 1 to 200 characters")
      }
      if (typeof message !== "string" || message === "" || message.length > 10_000) {
        return badRequest("message", "Expected a string of 1 to 10000 characters")
      }
      return yield* agent.chat(userId, message).pipe(
        Effect.map((answer) => json(answer)),
        Effect.catchTag(
          "DeferredDeliveryError",
          (error) =>
            Effect.succeed(json({ error: "DeliveryRefused", reason: error.reason, message: error.message }, 503))
        )
      )
    }).pipe(orTooLarge)
  )

  yield* router.add(
    "GET",
    "/chaos",
    Effect.gen(function*() {
      if (!(yield* authorized)) return unauthorized
      return json(yield* upstreams.chaos)
    })
  )

  yield* router.add(
    "POST",
    "/chaos/:service",
    Effect.gen(function*() {
      if (!(yield* authorized)) return unauthorized
      const { service } = yield* HttpRouter.params
      if (service === undefined || !isService(service)) {
        return json({ error: "NotFound", message: `Unknown service; expected one of ${services.join(", ")}` }, 404)
      }
      const checked = validateChaos(yield* bodyJson)
      if (checked._tag === "Bad") return badRequest(checked.field, checked.message)
      const settings = yield* upstreams.setChaos(service, checked.patch)
      yield* Effect.logInfo(
        `chaos: ${service} failure_rate=${settings.failure_rate} latency_ms=${settings.latency_ms}`
      )
      return json({ service, ...settings })
    }).pipe(orTooLarge)
  )

  yield* router.add("GET", "/telegram/outbox", Effect.map(agent.outbox, (outbox) => json(outbox)))
}))

export const layerFor = (token: Redacted.Redacted<string>) =>
  layer.pipe(Layer.provide(Layer.succeed(AdminToken, token)))
