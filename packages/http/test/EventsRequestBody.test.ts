// Issue 17 (fuzzer): `GET /api/v1/resilience/events` sent with a request body was closed without any response.
// node:http sends a GET body with neither Content-Length nor Transfer-Encoding, so the server reads those bytes as a
// second, malformed request arriving in the same TCP segment as the first.
import { CircuitBreakerRegistry } from "@effect-resilience/core"
import { Events } from "@effect-resilience/http"
import { NodeHttpServer } from "@effect/platform-node"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { HttpRouter, HttpServer } from "effect/http"
import * as Http from "node:http"
import * as Net from "node:net"

const Server = HttpRouter.serve(Events.layer(), { disableLogger: true, disableListenLog: true }).pipe(
  Layer.provideMerge(NodeHttpServer.layerTest),
  Layer.provideMerge(CircuitBreakerRegistry.layer)
)

const port = Effect.map(HttpServer.HttpServer, (server) => (server.address as { readonly port: number }).port)

// Writes `payload` in one segment and collects what comes back until the server closes, or for at most `ms` (real
// time: the bytes cross a socket).
const raw = (payload: string, ms = 1000) =>
  Effect.flatMap(port, (p) =>
    Effect.callback<{ readonly text: string; readonly closed: boolean }>((resume) => {
      let text = ""
      const socket = Net.connect(p, "127.0.0.1", () => socket.write(payload))
      socket.setEncoding("utf8")
      socket.on("error", () => {})
      socket.on("data", (chunk: string) => (text += chunk))
      const timer = setTimeout(() => {
        socket.destroy()
        resume(Effect.succeed({ text, closed: false }))
      }, ms)
      socket.on("close", () => {
        clearTimeout(timer)
        resume(Effect.succeed({ text, closed: true }))
      })
    }))

// What the fuzzer's client does: node:http, `end(body)` on a GET, no keep-alive.
const nodeGet = (body: string) =>
  Effect.flatMap(port, (p) =>
    Effect.callback<{ readonly status: number } | { readonly error: string }>((resume) => {
      const request = Http.request({
        agent: new Http.Agent({ keepAlive: false }),
        host: "127.0.0.1",
        port: p,
        method: "GET",
        path: "/api/v1/resilience/events",
        headers: { "content-type": "application/json" }
      })
      request.on("error", (error) => resume(Effect.succeed({ error: error.message })))
      request.on("response", (response) => {
        resume(Effect.succeed({ status: response.statusCode ?? 0 }))
        request.destroy()
      })
      request.end(body)
    }))

const clientsGone = Effect.flatMap(
  Events.EventHub,
  (hub) =>
    Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 10))).pipe(
      Effect.andThen(hub.stats),
      Effect.repeat({ until: (stats) => stats.clients === 0, times: 200 })
    )
)

describe("Events: a request with a body", () => {
  it.effect("unframed body bytes after the request get a 400, not a closed connection", () =>
    Effect.gen(function*() {
      const reply = yield* raw("GET /api/v1/resilience/events HTTP/1.1\r\nHost: localhost\r\n\r\n{\"a\":1}")
      assert.match(reply.text, /^HTTP\/1\.1 400 /)
      assert.isTrue(reply.closed)
      // No client left registered with the hub for a stream that never ran.
      assert.strictEqual((yield* clientsGone).clients, 0)
    }).pipe(Effect.provide(Server)))

  it.effect("node:http's GET with a body (as the fuzzer sends it) gets an answer", () =>
    Effect.gen(function*() {
      for (const body of ["{}", "x".repeat(20_000), "y".repeat(1_000_000)]) {
        assert.deepStrictEqual(yield* nodeGet(body), { status: 400 }, `${body.length} bytes`)
      }
    }).pipe(Effect.provide(Server)))

  it.effect("a framed body (Content-Length or chunked) is ignored and the stream opens", () =>
    Effect.gen(function*() {
      const body = "{\"a\":1}"
      for (
        const framing of [
          `Content-Length: ${body.length}\r\n\r\n${body}`,
          `Transfer-Encoding: chunked\r\n\r\n${body.length.toString(16)}\r\n${body}\r\n0\r\n\r\n`
        ]
      ) {
        const reply = yield* raw(`GET /api/v1/resilience/events HTTP/1.1\r\nHost: localhost\r\n${framing}`, 300)
        assert.match(reply.text, /^HTTP\/1\.1 200 /)
        assert.include(reply.text, "content-type: text/event-stream")
        assert.include(reply.text, ": connected")
      }
    }).pipe(Effect.provide(Server)))
})
