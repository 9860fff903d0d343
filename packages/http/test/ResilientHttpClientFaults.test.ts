import { CircuitBreaker } from "@effect-resilience/core"
import { NodeHttpClient } from "@effect/platform-node"
import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect, Fiber, Stream } from "effect"
import { HttpClient, HttpClientRequest } from "effect/http"
import { TestClock } from "effect/testing"
import { createServer, type IncomingMessage, type ServerResponse } from "node:http"
import type { AddressInfo, Socket } from "node:net"
import * as ResilientHttpClient from "../src/ResilientHttpClient.ts"

// -----------------------------------------------------------------------------
// A misbehaving upstream on a loopback port, called through `@effect/platform-node`'s clients (undici and node:http)
// as a user would. Each path answers from a script, one step per request (the last step repeats). The server counts
// requests, TCP connections, and responses whose connection went before they were finished, and keeps the bodies.
// -----------------------------------------------------------------------------

type Step =
  | { readonly status: number; readonly headers?: Record<string, string> }
  | { readonly hang: true } // accepts the request, never answers
  | { readonly reset: true } // destroys the connection without an answer
  | { readonly stall: number } // sends the head of this status and half a body, then nothing

interface Upstream {
  readonly host: string
  readonly url: (path: string) => string
  readonly hits: (path: string) => number
  readonly bodies: (path: string) => ReadonlyArray<string>
  /** Responses on `path` whose connection closed before they were finished. */
  readonly cutOff: (path: string) => number
  /** TCP connections accepted so far. */
  readonly connections: () => number
}

const answer = (step: Step, request: IncomingMessage, response: ServerResponse): void => {
  if ("hang" in step) return
  if ("reset" in step) return void request.socket.destroy()
  if ("stall" in step) {
    response.writeHead(step.stall, { "content-type": "text/plain", "content-length": "100" })
    return void response.write("the first half of a body")
  }
  response.writeHead(step.status, { "content-type": "text/plain", ...step.headers })
  response.end(`status ${step.status}`)
}

const upstream = (script: Record<string, ReadonlyArray<Step>>) =>
  Effect.acquireRelease(
    Effect.callback<{ readonly server: ReturnType<typeof createServer>; readonly scripted: Upstream }>((resume) => {
      const bodies = new Map<string, Array<string>>()
      const cutOff = new Map<string, number>()
      let connections = 0
      const server = createServer((request, response) => {
        const path = request.url ?? "/"
        const seen = bodies.get(path) ?? []
        const index = seen.length
        seen.push("")
        bodies.set(path, seen)
        response.on("close", () => {
          if (!response.writableFinished) cutOff.set(path, (cutOff.get(path) ?? 0) + 1)
        })
        request.on("data", (chunk) => (seen[index] += chunk))
        const steps = script[path] ?? [{ status: 404 }]
        answer(steps[Math.min(seen.length, steps.length) - 1], request, response)
      })
      server.on("connection", (_: Socket) => connections++)
      server.listen(0, "127.0.0.1", () => {
        const host = `127.0.0.1:${(server.address() as AddressInfo).port}`
        resume(Effect.succeed({
          server,
          scripted: {
            host,
            url: (path) => `http://${host}${path}`,
            hits: (path) => bodies.get(path)?.length ?? 0,
            bodies: (path) => bodies.get(path) ?? [],
            cutOff: (path) => cutOff.get(path) ?? 0,
            connections: () => connections
          }
        }))
      })
      return Effect.sync(() => server.close())
    }),
    ({ server }) =>
      Effect.callback<void>((resume) => {
        server.closeAllConnections()
        server.close(() => resume(Effect.void))
      })
  ).pipe(Effect.map(({ scripted }) => scripted))

const status = (code: number, headers?: Record<string, string>): Step =>
  headers === undefined ? { status: code } : { status: code, headers }

// A loopback port nobody listens on: a server's, closed again.
const closedPort = Effect.callback<number>((resume) => {
  const server = createServer()
  server.listen(0, "127.0.0.1", () => {
    const port = (server.address() as AddressInfo).port
    server.close(() => resume(Effect.succeed(port)))
  })
})

const clientWith = (options: ResilientHttpClient.Options) =>
  Effect.gen(function*() {
    const middleware = yield* ResilientHttpClient.make(options)
    const client = (yield* HttpClient.HttpClient).pipe(middleware.apply)
    return { middleware, client }
  })

// Real time, under TestClock or not: sockets do not wait for the test clock.
const liveSleep = (millis: number) => Effect.promise(() => new Promise<void>((resolve) => setTimeout(resolve, millis)))

// Polls, in real time, until `done` holds (two seconds at most).
const eventually = (done: () => boolean) =>
  Effect.gen(function*() {
    for (let i = 0; i < 200 && !done(); i++) yield* liveSleep(10)
  })

const fast = { base: "1 millis", cap: "5 millis" } as const

const transports = [
  ["undici", NodeHttpClient.layerUndici],
  ["node:http", NodeHttpClient.layerNodeHttp]
] as const

describe("ResilientHttpClient against a misbehaving upstream (NodeHttpClient)", () => {
  for (const [transport, layer] of transports) {
    describe(`through ${transport}`, () => {
      it.live("a hung attempt times out, its request is aborted, and the retry gets the answer", () =>
        Effect.gen(function*() {
          const server = yield* upstream({ "/slow": [{ hang: true }, status(200)] })
          const { client, middleware } = yield* clientWith({
            name: "hang",
            timeout: "100 millis",
            retry: { times: 2, ...fast }
          })
          const response = yield* client.get(server.url("/slow"))
          assert.strictEqual(response.status, 200)
          assert.strictEqual(yield* response.text, "status 200")
          assert.strictEqual(server.hits("/slow"), 2)
          yield* eventually(() => server.cutOff("/slow") >= 1)
          assert.strictEqual(server.cutOff("/slow"), 1)
          const timeout = yield* middleware.timeout.snapshot
          assert.strictEqual(timeout.timeouts, 1)
          assert.strictEqual(timeout.inFlight, 0)
        }).pipe(Effect.provide(layer)))

      it.live("a retried 503 whose body stalls is discarded before the retry: its connection is closed", () =>
        Effect.gen(function*() {
          const server = yield* upstream({ "/stall": [{ stall: 503 }, status(200)] })
          const { client } = yield* clientWith({ name: "stall", retry: { times: 1, ...fast } })
          assert.strictEqual((yield* client.get(server.url("/stall"))).status, 200)
          yield* eventually(() => server.cutOff("/stall") >= 1)
          assert.strictEqual(server.cutOff("/stall"), 1)
        }).pipe(Effect.provide(layer)))

      it.live("a caller interrupted while it waits to retry: the response is discarded, nothing is counted", () =>
        Effect.gen(function*() {
          const server = yield* upstream({ "/stall": [{ stall: 503 }, status(200)] })
          const { client, middleware } = yield* clientWith({
            name: "interrupted-wait",
            retry: { times: 1, base: "1 minute", cap: "1 minute" }
          })
          const caller = yield* Effect.forkChild(client.get(server.url("/stall")))
          yield* eventually(() => server.hits("/stall") >= 1)
          yield* liveSleep(50)
          yield* Fiber.interrupt(caller)
          yield* eventually(() => server.cutOff("/stall") >= 1)
          assert.strictEqual(server.cutOff("/stall"), 1)
          assert.strictEqual(server.hits("/stall"), 1)
          // Interruption is neither a success nor a failure for the breaker.
          const snapshot = yield* middleware.circuitBreaker.snapshotKey(server.host)
          assert.strictEqual(snapshot.totalCalls, 0)
          assert.strictEqual(snapshot.failureCount, 0)
          assert.strictEqual((yield* middleware.timeout.snapshot).inFlight, 0)
        }).pipe(Effect.provide(layer)))

      it.live("a caller interrupted during a hung retry: that request is aborted, nothing is counted", () =>
        Effect.gen(function*() {
          const server = yield* upstream({ "/busy": [status(503), { hang: true }] })
          const { client, middleware } = yield* clientWith({
            name: "interrupted-attempt",
            retry: { times: 2, ...fast }
          })
          const caller = yield* Effect.forkChild(client.get(server.url("/busy")))
          yield* eventually(() => server.hits("/busy") >= 2)
          yield* Fiber.interrupt(caller)
          yield* eventually(() => server.cutOff("/busy") >= 1)
          assert.strictEqual(server.cutOff("/busy"), 1)
          assert.strictEqual((yield* middleware.circuitBreaker.snapshotKey(server.host)).totalCalls, 0)
          assert.strictEqual((yield* middleware.timeout.snapshot).inFlight, 0)
        }).pipe(Effect.provide(layer)))

      it.live("a POST is sent once whatever goes wrong; each outcome is one failure for the breaker", () =>
        Effect.gen(function*() {
          const server = yield* upstream({
            "/500": [status(500), status(201)],
            "/503": [status(503, { "retry-after": "0" }), status(201)],
            "/reset": [{ reset: true }, status(201)],
            "/hang": [{ hang: true }, status(201)]
          })
          const { client, middleware } = yield* clientWith({
            name: "posts",
            timeout: "100 millis",
            retry: { times: 2, ...fast }
          })
          const post = (path: string) =>
            client.execute(HttpClientRequest.post(server.url(path)).pipe(HttpClientRequest.bodyText("{\"order\":1}")))
          assert.strictEqual((yield* post("/500")).status, 500)
          assert.strictEqual((yield* post("/503")).status, 503)
          const reset = yield* Effect.flip(post("/reset"))
          assert.strictEqual(reset._tag === "HttpClientError" && reset.reason._tag, "TransportError")
          assert.strictEqual((yield* Effect.flip(post("/hang")))._tag, "TimeoutError")
          for (const path of ["/500", "/503", "/reset", "/hang"]) assert.strictEqual(server.hits(path), 1, path)
          yield* eventually(() => server.cutOff("/hang") >= 1)
          assert.strictEqual(server.cutOff("/hang"), 1)
          const snapshot = yield* middleware.circuitBreaker.snapshotKey(server.host)
          assert.strictEqual(snapshot.totalCalls, 4)
          assert.strictEqual(snapshot.failureCount, 4)
          assert.strictEqual((yield* middleware.retry!.snapshot).calls, 0)
        }).pipe(Effect.provide(layer)))

      it.live("a refused connection is retried, then fails with the TransportError and trips the breaker", () =>
        Effect.gen(function*() {
          const port = yield* closedPort
          const { client, middleware } = yield* clientWith({
            name: "refused",
            retry: { times: 2, ...fast },
            circuitBreaker: { trip: CircuitBreaker.consecutive(1) }
          })
          const error = yield* Effect.flip(client.get(`http://127.0.0.1:${port}/x`))
          assert.strictEqual(error._tag === "HttpClientError" && error.reason._tag, "TransportError")
          assert.strictEqual((yield* middleware.retry!.snapshot).retries, 2)
          assert.strictEqual(yield* middleware.circuitBreaker.stateKey(`127.0.0.1:${port}`), "Open")
        }).pipe(Effect.provide(layer)))

      // Docs: "a request the client could not even build (bad URL, body that would not encode) is the caller's
      // mistake and is ignored". With undici, a body that fails to encode reaches the middleware as a
      // TransportError, and opens the host's circuit without a byte reaching the host. (FAILS with undici.)
      // undici reports a failing body stream as a TransportError, which the middleware cannot tell from the host's
      // (as its docs say); node:http reports an EncodeError, the caller's mistake.
      it.live(`a body that fails to encode is ${transport === "undici" ? "" : "not "}counted against the host`, () =>
        Effect.gen(function*() {
          const server = yield* upstream({ "/upload": [status(201)] })
          const { client, middleware } = yield* clientWith({
            name: "encode",
            retry: false,
            circuitBreaker: { trip: CircuitBreaker.consecutive(1) }
          })
          const request = HttpClientRequest.post(server.url("/upload")).pipe(
            HttpClientRequest.bodyStream(Stream.fail(new Error("cannot encode")))
          )
          const error = yield* Effect.flip(client.execute(request))
          assert.strictEqual(error._tag, "HttpClientError")
          assert.strictEqual(server.hits("/upload"), 0)
          assert.strictEqual(
            yield* middleware.circuitBreaker.stateKey(server.host),
            transport === "undici" ? "Open" : "Closed"
          )
        }).pipe(Effect.provide(layer)))
    })
  }

  describe("connections", () => {
    it.live("keep-alive connections the server closes after each answer are not errors", () =>
      Effect.gen(function*() {
        const server = yield* upstream({ "/a": [status(200, { connection: "close" })] })
        const { client, middleware } = yield* clientWith({ name: "keep-alive", retry: { times: 2, ...fast } })
        for (let i = 0; i < 5; i++) yield* (yield* client.get(server.url("/a"))).text
        assert.strictEqual(server.hits("/a"), 5)
        assert.strictEqual(server.connections(), 5)
        assert.strictEqual((yield* middleware.retry!.snapshot).retries, 0)
      }).pipe(Effect.provide(NodeHttpClient.layerUndici)))

    it.live("an open circuit rejects before any connection is made; another host is unaffected", () =>
      Effect.gen(function*() {
        // The down host closes every connection, so that a request would need a new one.
        const down = yield* upstream({ "/": [status(503, { connection: "close" })] })
        const up = yield* upstream({ "/": [status(200)] })
        const { client, middleware } = yield* clientWith({
          name: "open",
          retry: false,
          circuitBreaker: { trip: CircuitBreaker.consecutive(1), openDuration: "1 minute" }
        })
        yield* (yield* client.get(down.url("/"))).text
        yield* liveSleep(20)
        assert.strictEqual(down.connections(), 1)
        const rejected = yield* Effect.flip(client.get(down.url("/")))
        assert.strictEqual(rejected._tag, "CircuitBreakerError")
        yield* liveSleep(20)
        assert.strictEqual(down.connections(), 1)
        assert.strictEqual(down.hits("/"), 1)
        assert.strictEqual((yield* client.get(up.url("/"))).status, 200)
        assert.strictEqual(yield* middleware.circuitBreaker.stateKey(up.host), "Closed")
      }).pipe(Effect.provide(NodeHttpClient.layerUndici)))

    it.live("redirects followed outside the middleware: each hop is a call to its own host's circuit", () =>
      Effect.gen(function*() {
        const target = yield* upstream({ "/new": [status(503), status(200)] })
        const origin = yield* upstream({ "/old": [status(307, { location: target.url("/new") })] })
        const middleware = yield* ResilientHttpClient.make({ name: "redirects", retry: { times: 2, ...fast } })
        const client = (yield* HttpClient.HttpClient).pipe(middleware.apply, HttpClient.followRedirects(3))
        assert.strictEqual((yield* client.get(origin.url("/old"))).status, 200)
        assert.strictEqual(origin.hits("/old"), 1)
        assert.strictEqual(target.hits("/new"), 2)
        const calls = (yield* middleware.circuitBreaker.snapshots).map((s) => [s.key, s.totalCalls, s.failureCount])
        assert.sameDeepMembers(calls, [["default", 0, 0], [origin.host, 1, 0], [target.host, 1, 0]])
      }).pipe(Effect.provide(NodeHttpClient.layerUndici)))

    it.live("a POST with an Idempotency-Key is sent again with the same body", () =>
      Effect.gen(function*() {
        const server = yield* upstream({ "/orders": [status(503), status(201)] })
        const { client } = yield* clientWith({ name: "replay", retry: { times: 2, ...fast } })
        const response = yield* client.execute(
          HttpClientRequest.post(server.url("/orders")).pipe(
            HttpClientRequest.setHeader("Idempotency-Key", "order-42"),
            HttpClientRequest.bodyText("{\"order\":42}")
          )
        )
        assert.strictEqual(response.status, 201)
        assert.deepStrictEqual(server.bodies("/orders"), ["{\"order\":42}", "{\"order\":42}"])
      }).pipe(Effect.provide(NodeHttpClient.layerNodeHttp)))
  })

  describe("Retry-After", () => {
    it.live("a huge, too long or far-future Retry-After ends the retries at once; a negative or past one is no wait", () =>
      Effect.gen(function*() {
        const server = yield* upstream({
          "/huge": [status(429, { "retry-after": "9".repeat(400) }), status(200)],
          "/long": [status(503, { "retry-after": "99999999999" }), status(200)],
          "/future": [status(503, { "retry-after": "Fri, 31 Dec 9999 23:59:59 GMT" }), status(200)],
          "/negative": [status(503, { "retry-after": "-5" }), status(200)],
          "/past": [status(503, { "retry-after": "Thu, 01 Jan 1970 00:00:00 GMT" }), status(200)]
        })
        const { client, middleware } = yield* clientWith({ name: "retry-after", retry: { times: 2, ...fast } })
        const started = Date.now()
        assert.strictEqual((yield* client.get(server.url("/huge"))).status, 429)
        assert.strictEqual((yield* client.get(server.url("/long"))).status, 503)
        assert.strictEqual((yield* client.get(server.url("/future"))).status, 503)
        assert.strictEqual((yield* client.get(server.url("/negative"))).status, 200)
        assert.strictEqual((yield* client.get(server.url("/past"))).status, 200)
        assert.isBelow(Date.now() - started, 2000)
        assert.deepStrictEqual(
          ["/huge", "/long", "/future", "/negative", "/past"].map(server.hits),
          [1, 1, 1, 2, 2]
        )
        assert.strictEqual((yield* middleware.retry!.snapshot).giveUps.RetryAfterTooLong, 3)
      }).pipe(Effect.provide(NodeHttpClient.layerUndici)))

    // Docs: "one longer than `retry.maxRetryAfter` ends the retries at once" (module docs), "The longest
    // `Retry-After` worth waiting for; a longer one ends the retries" (`RetryOptions.maxRetryAfter`). (FAILS.)
    it.effect("a Retry-After the backoff outwaits anyway is no reason to give up, whatever maxRetryAfter", () =>
      Effect.gen(function*() {
        const server = yield* upstream({ "/busy": [status(503, { "retry-after": "2" }), status(200)] })
        const { client, middleware } = yield* clientWith({
          name: "max-retry-after",
          // Every backoff is 2.4 to 3.6 seconds: longer than the 2 seconds asked, which are more than the 1 allowed.
          retry: { times: 2, base: "3 seconds", cap: "3 seconds", maxRetryAfter: "1 second" }
        })
        const call = yield* Effect.forkChild(client.get(server.url("/busy")))
        yield* eventually(() => server.hits("/busy") >= 1)
        yield* liveSleep(20)
        yield* TestClock.adjust("10 seconds")
        const response = yield* Fiber.join(call)
        // maxRetryAfter bounds how long a Retry-After may stretch the wait; this one stretches nothing.
        assert.deepStrictEqual(
          { status: response.status, hits: server.hits("/busy") },
          { status: 200, hits: 2 }
        )
        assert.strictEqual((yield* middleware.retry!.snapshot).giveUps.RetryAfterTooLong, 0)
      }).pipe(Effect.provide(NodeHttpClient.layerUndici)))
  })

  describe("schedule", () => {
    it.effect("backoff doubles from base, jittered x0.8-1.2, and never exceeds 1.2 times the cap", () =>
      Effect.gen(function*() {
        const server = yield* upstream({ "/down": [status(503)] })
        const { client, middleware } = yield* clientWith({
          name: "backoff",
          retry: { times: 6, base: "100 millis", cap: "400 millis" }
        })
        const events = yield* Effect.forkChild(middleware.retry!.events.pipe(Stream.take(7), Stream.runCollect))
        yield* Effect.yieldNow
        const call = yield* Effect.forkChild(client.get(server.url("/down")))
        for (let i = 0; i < 7; i++) {
          yield* eventually(() => server.hits("/down") >= i + 1)
          yield* liveSleep(10)
          yield* TestClock.adjust("1 second")
        }
        assert.strictEqual((yield* Fiber.join(call)).status, 503)
        assert.strictEqual(server.hits("/down"), 7)
        const delays = (yield* Fiber.join(events)).flatMap((event) =>
          event._tag === "Retrying" ? [Duration.toMillis(event.delay)] : []
        )
        const nominal = [100, 200, 400, 400, 400, 400]
        assert.strictEqual(delays.length, 6)
        delays.forEach((delay, i) => {
          assert.isAtLeast(delay, nominal[i] * 0.8)
          assert.isAtMost(delay, nominal[i] * 1.2)
        })
      }).pipe(Effect.provide(NodeHttpClient.layerUndici)))

    it.effect("maxElapsed: no retry of hung attempts starts later than it after the call began", () =>
      Effect.gen(function*() {
        const server = yield* upstream({ "/hang": [{ hang: true }] })
        const { client, middleware } = yield* clientWith({
          name: "elapsed",
          timeout: "1 second",
          retry: { times: 10, base: "10 millis", cap: "10 millis", maxElapsed: "2500 millis" }
        })
        const call = yield* Effect.forkChild(client.get(server.url("/hang")))
        // Each attempt reaches the server, then times out at 1 second; the backoff (8 to 12 ms) follows.
        for (let i = 1; i <= 3; i++) {
          yield* eventually(() => server.hits("/hang") >= i)
          yield* liveSleep(10)
          yield* TestClock.adjust("1 second")
          yield* liveSleep(10)
          yield* TestClock.adjust("20 millis")
        }
        const error = yield* Effect.flip(Fiber.join(call))
        assert.strictEqual(error._tag, "TimeoutError")
        // Attempts at 0, ~1020 and ~2040 ms; a fourth would start past 2500 ms.
        assert.strictEqual(server.hits("/hang"), 3)
        assert.strictEqual((yield* middleware.retry!.snapshot).giveUps.ScheduleDone, 1)
        yield* eventually(() => server.cutOff("/hang") >= 3)
        assert.strictEqual(server.cutOff("/hang"), 3)
      }).pipe(Effect.provide(NodeHttpClient.layerUndici)))
  })

  describe("half-open", () => {
    it.effect("a probe interrupted while it waits to retry gives its slot back", () =>
      Effect.gen(function*() {
        const server = yield* upstream({ "/p": [status(500), status(503), status(200)] })
        const { client, middleware } = yield* clientWith({
          name: "probe",
          retry: { times: 1, base: "1 minute", cap: "1 minute" },
          circuitBreaker: { trip: CircuitBreaker.consecutive(1), openDuration: "10 seconds" }
        })
        assert.strictEqual((yield* client.get(server.url("/p"))).status, 500)
        assert.strictEqual(yield* middleware.circuitBreaker.stateKey(server.host), "Open")
        yield* TestClock.adjust("10 seconds")
        const probe = yield* Effect.forkChild(client.get(server.url("/p")))
        yield* eventually(() => server.hits("/p") >= 2)
        yield* liveSleep(30)
        assert.strictEqual((yield* middleware.circuitBreaker.snapshotKey(server.host)).halfOpen?.probesInFlight, 1)
        yield* Fiber.interrupt(probe)
        assert.strictEqual((yield* middleware.circuitBreaker.snapshotKey(server.host)).halfOpen?.probesInFlight, 0)
        // The next call is the probe, and closes the circuit.
        assert.strictEqual((yield* client.get(server.url("/p"))).status, 200)
        assert.strictEqual(yield* middleware.circuitBreaker.stateKey(server.host), "Closed")
      }).pipe(Effect.provide(NodeHttpClient.layerUndici)))

    // Docs: "the breaker sees one outcome per call, after the retries" (docs/operations.md), "a 5xx returned as a
    // response counts as a failure" (module docs). With the middleware's defaults (10 s per attempt, 3 retries,
    // Retry-After up to 30 s), a call can outlast the breaker's default `maxProbeTime` (1 minute): a half-open
    // probe's outcome is then dropped. (FAILS.)
    it.effect("a half-open probe that ends in a 503 after honouring Retry-After reopens the circuit", () =>
      Effect.gen(function*() {
        const server = yield* upstream({ "/trip": [status(500)], "/busy": [status(503, { "retry-after": "25" })] })
        const { client, middleware } = yield* clientWith({
          name: "long-probe",
          circuitBreaker: { trip: CircuitBreaker.consecutive(1), openDuration: "10 seconds" }
        })
        assert.strictEqual((yield* client.get(server.url("/trip"))).status, 500)
        yield* TestClock.adjust("10 seconds")
        const probe = yield* Effect.forkChild(client.get(server.url("/busy")))
        for (let i = 1; i <= 3; i++) {
          yield* eventually(() => server.hits("/busy") >= i)
          yield* liveSleep(20)
          yield* TestClock.adjust("25 seconds")
        }
        const response = yield* Fiber.join(probe)
        assert.strictEqual(response.status, 503)
        assert.strictEqual(server.hits("/busy"), 4)
        const snapshot = yield* middleware.circuitBreaker.snapshotKey(server.host)
        assert.deepStrictEqual(
          { state: snapshot.state, failureCount: snapshot.failureCount },
          { state: "Open", failureCount: 2 }
        )
      }).pipe(Effect.provide(NodeHttpClient.layerUndici)))
  })
})
