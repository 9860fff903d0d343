// Issue 17 (fuzzer): requests Node's parser rejects were answered with a reset instead of a response whenever the
// client was still sending (a large body after an unknown method, a path over the header limit).
import { CircuitBreakerRegistry } from "@effect-resilience/core"
import { ResilienceHttp } from "@effect-resilience/http"
import { NodeHttpServer } from "@effect/platform-node"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { HttpRouter, HttpServer } from "effect/http"
import * as Http from "node:http"

const Server = HttpRouter.serve(ResilienceHttp.layer({ metrics: false, dashboard: false }), {
  disableLogger: true,
  disableListenLog: true
}).pipe(
  Layer.provideMerge(NodeHttpServer.layer(ResilienceHttp.createServer, { port: 0, host: "127.0.0.1" })),
  Layer.provideMerge(CircuitBreakerRegistry.layer)
)

type Outcome =
  | { readonly status: number; readonly contentType: string | undefined; readonly json: unknown }
  | { readonly error: string }

// What the fuzzer's client does: node:http without keep-alive, the whole body in `end`.
const send = (method: string, path: string, body?: string) =>
  Effect.flatMap(HttpServer.HttpServer, (server) =>
    Effect.callback<Outcome>((resume) => {
      const port = (server.address as { readonly port: number }).port
      const request = Http.request({
        agent: new Http.Agent({ keepAlive: false }),
        host: "127.0.0.1",
        port,
        method,
        path,
        headers: { "content-type": "application/json" }
      })
      request.on("error", (error) => resume(Effect.succeed({ error: error.message })))
      request.on("response", (response) => {
        let text = ""
        response.setEncoding("utf8")
        response.on("data", (chunk: string) => (text += chunk))
        response.on("end", () => {
          let json: unknown = undefined
          try {
            json = JSON.parse(text)
          } catch {
            json = text
          }
          resume(
            Effect.succeed({ status: response.statusCode ?? 0, contentType: response.headers["content-type"], json })
          )
        })
      })
      request.end(body)
    }))

const problem = (status: number, title: string, detail: string) => ({
  status,
  contentType: "application/problem+json",
  json: { type: "about:blank", title, status, detail }
})

describe("ResilienceHttp.createServer", () => {
  it.effect("what Node's parser rejects gets a problem, even while the client is still sending", () =>
    Effect.gen(function*() {
      const body = "y".repeat(2_000_000)
      const malformed = problem(400, "Bad Request", "The request is not valid HTTP/1.1")
      assert.deepStrictEqual(yield* send("FOO", "/health", body), malformed)
      assert.deepStrictEqual(yield* send("POST", "%2Fhealth", body), malformed)
      assert.deepStrictEqual(
        yield* send("GET", `/${"x".repeat(70_000)}`),
        problem(431, "Request Header Fields Too Large", "The request line and headers exceed the limit")
      )
      // A HEAD gets the status without a body (its client would read one as a second response).
      assert.deepStrictEqual(yield* send("HEAD", "%2Fhealth"), { status: 400, contentType: undefined, json: "" })
      assert.deepStrictEqual(yield* send("HEAD", `/${"x".repeat(70_000)}`), {
        status: 431,
        contentType: undefined,
        json: ""
      })
      // A GET body without framing, right after the request: the bytes are a second, malformed request.
      assert.deepStrictEqual(yield* send("GET", "/api/v1/resilience/events", "{}"), malformed)
      // The server still serves.
      const live = yield* send("GET", "/health/live")
      assert.strictEqual("status" in live ? live.status : live.error, 200)
    }).pipe(Effect.provide(Server)))
})
