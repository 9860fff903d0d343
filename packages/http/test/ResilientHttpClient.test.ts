import { CircuitBreaker, CircuitBreakerRegistry, Retry } from "@effect-resilience/core"
import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect, Exit, Fiber, Random, Stream } from "effect"
import { FetchHttpClient, HttpBody, HttpClient, HttpClientRequest, HttpClientResponse } from "effect/http"
import { PrometheusMetrics } from "effect/observability"
import { TestClock } from "effect/testing"
import { createServer, type ServerResponse } from "node:http"
import type { AddressInfo } from "node:net"
import { Readable } from "node:stream"
import { isReplayable, retryAfterMillis } from "../src/internal/resilientHttpClient.ts"
import * as ResilientHttpClient from "../src/ResilientHttpClient.ts"

// -----------------------------------------------------------------------------
// A flaky HTTP server on a loopback port: each path answers from a script, one step per request (the last step
// repeats), and counts the requests it got.
// -----------------------------------------------------------------------------

type Step =
  | { readonly status: number; readonly headers?: Record<string, string> }
  | "reset" // destroys the connection without an answer
  | "hang" // never answers
  | "stall" // answers 503, then never finishes the body

interface FlakyServer {
  readonly url: (path: string) => string
  readonly host: string
  readonly hits: (path: string) => number
  readonly methods: (path: string) => ReadonlyArray<string>
  /** Requests on `path` whose connection the client closed before they were answered. */
  readonly aborted: (path: string) => number
}

const flakyServer = (script: Record<string, ReadonlyArray<Step>>) =>
  Effect.acquireRelease(
    Effect.callback<{ readonly server: ReturnType<typeof createServer>; readonly flaky: FlakyServer }>((resume) => {
      const hits = new Map<string, Array<string>>()
      const hung: Array<ServerResponse> = []
      const aborted = new Map<string, number>()
      const server = createServer((request, response) => {
        const path = request.url ?? "/"
        const seen = hits.get(path) ?? []
        seen.push(request.method ?? "")
        hits.set(path, seen)
        const steps = script[path] ?? [{ status: 404 }]
        const step = steps[Math.min(seen.length, steps.length) - 1]
        // Drain the request body, so that a POST's answer is not held up behind it.
        request.resume()
        if (step === "reset") return request.socket.destroy()
        if (step === "stall") {
          response.on("close", () => aborted.set(path, (aborted.get(path) ?? 0) + 1))
          response.writeHead(503, { "content-type": "text/plain" })
          return void response.write("the first half of a body")
        }
        if (step === "hang") {
          response.on("close", () => aborted.set(path, (aborted.get(path) ?? 0) + 1))
          return void hung.push(response)
        }
        response.writeHead(step.status, { "content-type": "text/plain", ...step.headers })
        response.end(`status ${step.status}`)
      })
      server.listen(0, "127.0.0.1", () => {
        const host = `127.0.0.1:${(server.address() as AddressInfo).port}`
        resume(Effect.succeed({
          server,
          flaky: {
            host,
            url: (path) => `http://${host}${path}`,
            hits: (path) => hits.get(path)?.length ?? 0,
            methods: (path) => hits.get(path) ?? [],
            aborted: (path) => aborted.get(path) ?? 0
          }
        }))
      })
    }),
    ({ server }) =>
      Effect.callback<void>((resume) => {
        server.closeAllConnections()
        server.close(() => resume(Effect.void))
      })
  ).pipe(Effect.map(({ flaky }) => flaky))

const status = (code: number, headers?: Record<string, string>): Step =>
  headers === undefined ? { status: code } : { status: code, headers }

// A client wrapped by a fresh middleware; every test gets its own, so that breakers and budgets start afresh.
const clientWith = (options: ResilientHttpClient.Options) =>
  Effect.gen(function*() {
    const middleware = yield* ResilientHttpClient.make(options)
    const client = (yield* HttpClient.HttpClient).pipe(middleware.apply)
    return { middleware, client }
  })

const liveSleep = (duration: Duration.Input) => TestClock.withLive(Effect.sleep(duration))

// The first `Retrying` event of a policy, subscribed to before the call starts.
const firstRetry = (retry: Retry.Retry<unknown>) =>
  Effect.forkChild(
    retry.events.pipe(
      Stream.filter((event) => event._tag === "Retrying"),
      Stream.runHead
    )
  )

const fast = { base: "1 millis", cap: "5 millis" } as const

const issues = (options: ResilientHttpClient.Options) =>
  ResilientHttpClient.make(options).pipe(
    Effect.flip,
    Effect.map((error) => error.issues.map((issue) => issue.path))
  )

/** A PUT with a raw body. */
const put = (body: unknown) =>
  HttpClientRequest.put("http://example.com/put").pipe(HttpClientRequest.setBody(HttpBody.raw(body)))

async function* chunks() {
  yield new TextEncoder().encode("payload")
}

describe("ResilientHttpClient", () => {
  describe("breaker", () => {
    it.live("a 503 returned as a response trips the host's circuit; the caller still gets the response", () =>
      Effect.gen(function*() {
        const server = yield* flakyServer({ "/down": [status(503)] })
        const { client, middleware } = yield* clientWith({
          name: "down",
          retry: false,
          circuitBreaker: { trip: CircuitBreaker.consecutive(2), openDuration: "1 minute" }
        })
        assert.strictEqual((yield* client.get(server.url("/down"))).status, 503)
        assert.strictEqual(yield* middleware.circuitBreaker.stateKey(server.host), "Closed")
        assert.strictEqual((yield* client.get(server.url("/down"))).status, 503)
        assert.strictEqual(yield* middleware.circuitBreaker.stateKey(server.host), "Open")
        const rejected = yield* Effect.flip(client.get(server.url("/down")))
        assert.strictEqual(rejected._tag, "CircuitBreakerError")
        assert.strictEqual(rejected._tag === "CircuitBreakerError" && rejected.key, server.host)
        // Rejected before reaching the host.
        assert.strictEqual(server.hits("/down"), 2)
        // The circuit is the host's, not the breaker's default one.
        assert.strictEqual(yield* middleware.circuitBreaker.state, "Closed")
      }).pipe(Effect.provide(FetchHttpClient.layer)))

    it.live("each host has a circuit of its own", () =>
      Effect.gen(function*() {
        const down = yield* flakyServer({ "/": [status(503)] })
        const up = yield* flakyServer({ "/": [status(200)] })
        const { client, middleware } = yield* clientWith({
          name: "hosts",
          retry: false,
          circuitBreaker: { trip: CircuitBreaker.consecutive(1) }
        })
        assert.strictEqual((yield* client.get(down.url("/"))).status, 503)
        assert.strictEqual((yield* Effect.flip(client.get(down.url("/"))))._tag, "CircuitBreakerError")
        assert.strictEqual((yield* client.get(up.url("/"))).status, 200)
        assert.strictEqual(yield* middleware.circuitBreaker.stateKey(down.host), "Open")
        assert.strictEqual(yield* middleware.circuitBreaker.stateKey(up.host), "Closed")
        const keys = (yield* middleware.circuitBreaker.snapshots).map((snapshot) => snapshot.key)
        assert.sameMembers(keys, ["default", down.host, up.host])
      }).pipe(Effect.provide(FetchHttpClient.layer)))

    it.live("where relative URLs resolve against a page's location (a browser), they share their host's circuit", () =>
      Effect.gen(function*() {
        const server = yield* flakyServer({ "/a": [status(503)], "/b": [status(503)] })
        yield* Effect.acquireRelease(
          Effect.sync(() => {
            ;(globalThis as { location?: unknown }).location = { origin: `http://${server.host}`, pathname: "/" }
          }),
          () => Effect.sync(() => delete (globalThis as { location?: unknown }).location)
        )
        const { client, middleware } = yield* clientWith({
          name: "relative",
          retry: false,
          circuitBreaker: { trip: CircuitBreaker.consecutive(2), openDuration: "1 minute" }
        })
        assert.strictEqual((yield* client.get("/a")).status, 503)
        assert.strictEqual((yield* client.get("/b")).status, 503)
        const keys = (yield* middleware.circuitBreaker.snapshots).map((snapshot) => snapshot.key)
        assert.sameMembers(keys, ["default", server.host])
        assert.strictEqual(yield* middleware.circuitBreaker.stateKey(server.host), "Open")
      }).pipe(Effect.provide(FetchHttpClient.layer)))

    it.live("a 404 is not a failure; isFailureResponse decides which statuses are", () =>
      Effect.gen(function*() {
        const server = yield* flakyServer({ "/missing": [status(404)], "/limited": [status(429)] })
        const { client, middleware } = yield* clientWith({
          name: "statuses",
          retry: false,
          circuitBreaker: { trip: CircuitBreaker.consecutive(1) },
          isFailureResponse: (response) => response.status === 429
        })
        assert.strictEqual((yield* client.get(server.url("/missing"))).status, 404)
        assert.strictEqual(yield* middleware.circuitBreaker.stateKey(server.host), "Closed")
        assert.strictEqual((yield* client.get(server.url("/limited"))).status, 429)
        assert.strictEqual(yield* middleware.circuitBreaker.stateKey(server.host), "Open")
      }).pipe(Effect.provide(FetchHttpClient.layer)))

    it.live("the breaker sees one outcome per call, after the retries", () =>
      Effect.gen(function*() {
        const server = yield* flakyServer({ "/flaky": [status(503), status(503), status(200)] })
        const { client, middleware } = yield* clientWith({
          name: "one-outcome",
          retry: { times: 3, ...fast },
          circuitBreaker: { trip: CircuitBreaker.consecutive(1) }
        })
        assert.strictEqual((yield* client.get(server.url("/flaky"))).status, 200)
        assert.strictEqual(server.hits("/flaky"), 3)
        const snapshot = yield* middleware.circuitBreaker.snapshotKey(server.host)
        assert.strictEqual(snapshot.state, "Closed")
        assert.strictEqual(snapshot.totalCalls, 1)
        assert.strictEqual(snapshot.failureCount, 0)
      }).pipe(Effect.provide(FetchHttpClient.layer)))

    it.live("a request the client cannot build is not counted against the host", () =>
      Effect.gen(function*() {
        const { client, middleware } = yield* clientWith({
          name: "bad-url",
          retry: false,
          circuitBreaker: { trip: CircuitBreaker.consecutive(1) },
          key: () => "api"
        })
        const error = yield* Effect.flip(client.get("http://exa mple"))
        assert.strictEqual(error._tag === "HttpClientError" && error.reason._tag, "InvalidUrlError")
        assert.strictEqual(yield* middleware.circuitBreaker.stateKey("api"), "Closed")
      }).pipe(Effect.provide(FetchHttpClient.layer)))
  })

  describe("retries", () => {
    it.live("retries 502, 503 and 504 until a success", () =>
      Effect.gen(function*() {
        const server = yield* flakyServer({ "/gw": [status(502), status(503), status(504), status(200)] })
        const { client, middleware } = yield* clientWith({ name: "gateway", retry: { times: 3, ...fast } })
        assert.strictEqual((yield* client.get(server.url("/gw"))).status, 200)
        assert.strictEqual(server.hits("/gw"), 4)
        const snapshot = yield* middleware.retry!.snapshot
        assert.strictEqual(snapshot.retries, 3)
        assert.strictEqual(snapshot.succeededAfterRetry, 1)
        // The parts export their metrics like any policy's.
        const lines = (yield* PrometheusMetrics.format()).split("\n")
        assert.include(lines, `retry_retries_total{policy="gateway"} 3`)
        assert.include(lines, `timeout_calls_total{policy="gateway"} 4`)
        assert.include(lines, `circuit_breaker_calls_total{breaker="gateway",outcome="success"} 1`)
      }).pipe(Effect.provide(FetchHttpClient.layer)))

    it.live("gives up after `times` retries with the last response, which the breaker counts once", () =>
      Effect.gen(function*() {
        const server = yield* flakyServer({ "/down": [status(503)] })
        const { client, middleware } = yield* clientWith({ name: "give-up", retry: { times: 2, ...fast } })
        const response = yield* client.get(server.url("/down"))
        assert.strictEqual(response.status, 503)
        assert.strictEqual(yield* response.text, "status 503")
        assert.strictEqual(server.hits("/down"), 3)
        const snapshot = yield* middleware.circuitBreaker.snapshotKey(server.host)
        assert.strictEqual(snapshot.failureCount, 1)
        assert.strictEqual((yield* middleware.retry!.snapshot).giveUps.ScheduleDone, 1)
      }).pipe(Effect.provide(FetchHttpClient.layer)))

    it.live("a retried response is discarded: its connection is closed, not left to the garbage collector", () =>
      Effect.gen(function*() {
        const server = yield* flakyServer({ "/stall": ["stall", status(200)] })
        const { client } = yield* clientWith({ name: "discard", retry: { times: 1, ...fast } })
        assert.strictEqual((yield* client.get(server.url("/stall"))).status, 200)
        for (let i = 0; i < 100 && server.aborted("/stall") < 1; i++) yield* Effect.sleep("10 millis")
        assert.strictEqual(server.aborted("/stall"), 1)
      }).pipe(Effect.provide(FetchHttpClient.layer)))

    it.live("a caller interrupted while it waits to retry: the retried response is discarded, its connection closed", () =>
      Effect.gen(function*() {
        const server = yield* flakyServer({ "/stall": ["stall", status(200)] })
        const { client } = yield* clientWith({
          name: "discard",
          retry: { times: 1, base: "1 minute", cap: "1 minute" }
        })
        const caller = yield* Effect.forkChild(client.get(server.url("/stall")))
        for (let i = 0; i < 100 && server.hits("/stall") < 1; i++) yield* Effect.sleep("10 millis")
        yield* Effect.sleep("50 millis")
        yield* Fiber.interrupt(caller)
        for (let i = 0; i < 100 && server.aborted("/stall") < 1; i++) yield* Effect.sleep("10 millis")
        assert.strictEqual(server.aborted("/stall"), 1)
        assert.strictEqual(server.hits("/stall"), 1)
      }).pipe(Effect.provide(FetchHttpClient.layer)))

    it.effect("a response that comes at its attempt's deadline is timed out all the same, its request aborted", () =>
      Effect.gen(function*() {
        // A transport whose answer takes exactly the attempt's time: it comes before the timer that would interrupt
        // the attempt, and the timeout fails the attempt anyway. Nobody gets that response.
        const signals: Array<AbortSignal> = []
        const transport = HttpClient.make((request, _url, signal) => {
          signals.push(signal)
          return Effect.as(Effect.sleep("1 second"), HttpClientResponse.fromWeb(request, new Response("late")))
        })
        const middleware = yield* ResilientHttpClient.make({ name: "late", timeout: "1 second", retry: { times: 1 } })
        const client = transport.pipe(middleware.apply)
        // A GET, tried twice, and a POST, tried once.
        for (const call of [client.get("http://api.internal/late"), client.post("http://api.internal/late")]) {
          const caller = yield* Effect.forkChild(Effect.flip(call))
          yield* TestClock.adjust("3 seconds")
          assert.strictEqual((yield* Fiber.join(caller))._tag, "TimeoutError")
        }
        assert.deepStrictEqual(signals.map((signal) => signal.aborted), [true, true, true])
      }).pipe(
        // A jitter factor of exactly 1: the retry waits a whole 100 ms, so that the second attempt's deadline and its
        // answer fall on one instant too (a fractional wait made the answer come a rounding error before it).
        Effect.provideService(Random.Random, { nextIntUnsafe: () => 0, nextDoubleUnsafe: () => 0.5 })
      ))

    it.live("a response isFailureResponse throws on: the caller gets the defect, and its connection is closed", () =>
      Effect.gen(function*() {
        const server = yield* flakyServer({ "/stall": ["stall"] })
        const bug = new Error("bug")
        const { client } = yield* clientWith({
          name: "misjudged",
          retry: false,
          isFailureResponse: () => {
            throw bug
          }
        })
        const exit = yield* Effect.exit(client.get(server.url("/stall")))
        assert.deepStrictEqual(exit, Exit.die(bug))
        for (let i = 0; i < 100 && server.aborted("/stall") < 1; i++) yield* Effect.sleep("10 millis")
        assert.strictEqual(server.aborted("/stall"), 1)
      }).pipe(Effect.provide(FetchHttpClient.layer)))

    it.live("a status not in `statuses` is not retried", () =>
      Effect.gen(function*() {
        const server = yield* flakyServer({ "/err": [status(500), status(200)] })
        const { client } = yield* clientWith({ name: "no-500", retry: { times: 3, ...fast } })
        assert.strictEqual((yield* client.get(server.url("/err"))).status, 500)
        assert.strictEqual(server.hits("/err"), 1)
      }).pipe(Effect.provide(FetchHttpClient.layer)))

    it.live("retries a reset connection", () =>
      Effect.gen(function*() {
        const server = yield* flakyServer({ "/reset": ["reset", "reset", status(200)] })
        const { client, middleware } = yield* clientWith({
          name: "reset",
          retry: { times: 3, ...fast },
          circuitBreaker: { trip: CircuitBreaker.consecutive(1) }
        })
        assert.strictEqual((yield* client.get(server.url("/reset"))).status, 200)
        assert.strictEqual(server.hits("/reset"), 3)
        assert.strictEqual(yield* middleware.circuitBreaker.stateKey(server.host), "Closed")
      }).pipe(Effect.provide(FetchHttpClient.layer)))

    it.live("a connection that keeps resetting fails with the TransportError and trips the breaker", () =>
      Effect.gen(function*() {
        const server = yield* flakyServer({ "/reset": ["reset"] })
        const { client, middleware } = yield* clientWith({
          name: "resets",
          retry: { times: 1, ...fast },
          circuitBreaker: { trip: CircuitBreaker.consecutive(1) }
        })
        const error = yield* Effect.flip(client.get(server.url("/reset")))
        assert.strictEqual(error._tag === "HttpClientError" && error.reason._tag, "TransportError")
        assert.strictEqual(server.hits("/reset"), 2)
        assert.strictEqual(yield* middleware.circuitBreaker.stateKey(server.host), "Open")
      }).pipe(Effect.provide(FetchHttpClient.layer)))

    it.live("a hung attempt times out and is retried; the hung requests are aborted", () =>
      Effect.gen(function*() {
        const server = yield* flakyServer({ "/slow": ["hang", status(200)], "/stuck": ["hang"] })
        const { client, middleware } = yield* clientWith({
          name: "hangs",
          timeout: "100 millis",
          retry: { times: 1, ...fast }
        })
        const started = Date.now()
        assert.strictEqual((yield* client.get(server.url("/slow"))).status, 200)
        assert.strictEqual(server.hits("/slow"), 2)
        const error = yield* Effect.flip(client.get(server.url("/stuck")))
        assert.strictEqual(error._tag, "TimeoutError")
        assert.strictEqual(server.hits("/stuck"), 2)
        // Three attempts timed out after 100ms each; none waited for the server.
        const elapsed = Date.now() - started
        assert.isAtLeast(elapsed, 300)
        assert.isBelow(elapsed, 5000)
        assert.strictEqual((yield* middleware.timeout.snapshot).timeouts, 3)
        assert.strictEqual((yield* middleware.timeout.snapshot).inFlight, 0)
        // The client closed the hung requests: the server saw them go.
        for (let i = 0; i < 100 && server.aborted("/slow") + server.aborted("/stuck") < 3; i++) {
          yield* Effect.sleep("10 millis")
        }
        assert.strictEqual(server.aborted("/slow") + server.aborted("/stuck"), 3)
      }).pipe(Effect.provide(FetchHttpClient.layer)))
  })

  describe("Retry-After", () => {
    it.effect("a 429 with Retry-After in seconds waits that long, and not a millisecond less", () =>
      Effect.gen(function*() {
        const server = yield* flakyServer({ "/limited": [status(429, { "retry-after": "3" }), status(200)] })
        const { client, middleware } = yield* clientWith({ name: "seconds", retry: { times: 2, ...fast } })
        const retrying = yield* firstRetry(middleware.retry!)
        yield* Effect.yieldNow
        const call = yield* Effect.forkChild(client.get(server.url("/limited")))
        const event = yield* Fiber.join(retrying)
        assert.strictEqual(
          event._tag === "Some" && event.value._tag === "Retrying" && event.value.errorTag,
          "RetryableResponse"
        )
        assert.strictEqual(
          event._tag === "Some" && event.value._tag === "Retrying" && Duration.toMillis(event.value.delay),
          3000
        )
        yield* liveSleep("20 millis")
        yield* TestClock.adjust("2999 millis")
        yield* liveSleep("50 millis")
        assert.strictEqual(server.hits("/limited"), 1)
        yield* TestClock.adjust("1 millis")
        assert.strictEqual((yield* Fiber.join(call)).status, 200)
        assert.strictEqual(server.hits("/limited"), 2)
      }).pipe(Effect.provide(FetchHttpClient.layer)))

    it.effect("a 503 with Retry-After as an HTTP-date waits until that date", () =>
      Effect.gen(function*() {
        yield* TestClock.setTime(Date.parse("2026-12-06T02:00:00Z"))
        const server = yield* flakyServer({
          "/maintenance": [status(503, { "retry-after": "Sun, 06 Dec 2026 02:00:05 GMT" }), status(200)]
        })
        const { client, middleware } = yield* clientWith({ name: "date", retry: { times: 2, ...fast } })
        const retrying = yield* firstRetry(middleware.retry!)
        yield* Effect.yieldNow
        const call = yield* Effect.forkChild(client.get(server.url("/maintenance")))
        const event = yield* Fiber.join(retrying)
        assert.strictEqual(
          event._tag === "Some" && event.value._tag === "Retrying" && Duration.toMillis(event.value.delay),
          5000
        )
        yield* liveSleep("20 millis")
        yield* TestClock.adjust("4999 millis")
        yield* liveSleep("50 millis")
        assert.strictEqual(server.hits("/maintenance"), 1)
        yield* TestClock.adjust("1 millis")
        assert.strictEqual((yield* Fiber.join(call)).status, 200)
      }).pipe(Effect.provide(FetchHttpClient.layer)))

    it.live("a Retry-After longer than maxRetryAfter ends the retries at once with the response", () =>
      Effect.gen(function*() {
        const server = yield* flakyServer({ "/later": [status(429, { "retry-after": "120" }), status(200)] })
        const { client, middleware } = yield* clientWith({
          name: "too-long",
          retry: { times: 3, ...fast, maxRetryAfter: "1 minute" }
        })
        const response = yield* client.get(server.url("/later"))
        assert.strictEqual(response.status, 429)
        assert.strictEqual(server.hits("/later"), 1)
        assert.strictEqual((yield* middleware.retry!.snapshot).giveUps.RetryAfterTooLong, 1)
      }).pipe(Effect.provide(FetchHttpClient.layer)))

    it("reads delay-seconds and HTTP-dates, and ignores what it cannot read", () => {
      const now = Date.parse("2026-12-06T02:00:00Z")
      assert.strictEqual(retryAfterMillis("120", now), 120_000)
      assert.strictEqual(retryAfterMillis(" 0 ", now), 0)
      assert.strictEqual(retryAfterMillis("Sun, 06 Dec 2026 02:00:30 GMT", now), 30_000)
      // RFC 9110 makes recipients accept the obsolete forms too: RFC 850's and asctime's (UTC, though it says no zone).
      assert.strictEqual(retryAfterMillis("Sunday, 06-Dec-26 02:00:30 GMT", now), 30_000)
      assert.strictEqual(retryAfterMillis("Sun Dec  6 02:00:30 2026", now), 30_000)
      // A date in the past: no wait at all.
      assert.strictEqual(retryAfterMillis("Sun, 06 Dec 2026 01:00:00 GMT", now), 0)
      assert.isUndefined(retryAfterMillis(undefined, now))
      assert.isUndefined(retryAfterMillis("-5", now))
      assert.isUndefined(retryAfterMillis("1.5", now))
      assert.isUndefined(retryAfterMillis("soon", now))
      assert.isUndefined(retryAfterMillis("2026-12-06", now))
    })

    it("reads an asctime date as UTC whatever the process's time zone", () => {
      const zone = process.env.TZ
      process.env.TZ = "America/New_York"
      try {
        const now = Date.parse("2026-12-06T02:00:00Z")
        assert.strictEqual(retryAfterMillis("Sun Dec  6 02:00:30 2026", now), 30_000)
      } finally {
        if (zone === undefined) delete process.env.TZ
        else process.env.TZ = zone
      }
    })
  })

  describe("methods", () => {
    it("a raw body that is read as it is sent is never replayable: a Web stream, a Node stream, any async iterable", () => {
      const methods = new Set(["PUT"])
      // node's old streams: piped, not iterated.
      const piped = { pipe: () => undefined, on: () => undefined }
      assert.isTrue(isReplayable(put("payload"), methods))
      assert.isTrue(isReplayable(put(new TextEncoder().encode("payload")), methods))
      assert.isFalse(isReplayable(put(new ReadableStream()), methods))
      assert.isFalse(isReplayable(put(Readable.from(["payload"])), methods))
      assert.isFalse(isReplayable(put(chunks()), methods))
      assert.isFalse(isReplayable(put(piped), methods))
    })

    it.live("a POST is sent once; with an Idempotency-Key, or when its method is listed, it is retried", () =>
      Effect.gen(function*() {
        const server = yield* flakyServer({
          "/once": [status(503), status(201)],
          "/keyed": [status(503), status(201)],
          "/listed": [status(503), status(201)]
        })
        const { client } = yield* clientWith({ name: "posts", retry: { times: 2, ...fast } })
        assert.strictEqual((yield* client.post(server.url("/once"))).status, 503)
        assert.strictEqual(server.hits("/once"), 1)
        const keyed = HttpClientRequest.post(server.url("/keyed")).pipe(
          HttpClientRequest.setHeader("Idempotency-Key", "order-42"),
          HttpClientRequest.bodyText("{}")
        )
        assert.strictEqual((yield* client.execute(keyed)).status, 201)
        assert.deepStrictEqual(server.methods("/keyed"), ["POST", "POST"])
        const listed = yield* clientWith({ name: "listed", retry: { times: 2, ...fast, methods: ["POST"] } })
        assert.strictEqual((yield* listed.client.post(server.url("/listed"))).status, 201)
        assert.strictEqual(server.hits("/listed"), 2)
      }).pipe(Effect.provide(FetchHttpClient.layer)))

    it.live("a PUT whose body is a Web stream (HttpClientRequest.fromWeb) is sent once: it was read as it went", () =>
      Effect.gen(function*() {
        const server = yield* flakyServer({ "/put": [status(503), status(200)] })
        const { client } = yield* clientWith({ name: "raw-stream", retry: { times: 2, ...fast } })
        const request = HttpClientRequest.fromWeb(
          new Request(server.url("/put"), { method: "PUT", body: "payload", headers: { "content-type": "text/plain" } })
        )
        assert.strictEqual(request.body._tag, "Raw")
        // Not retried with a stream already read (a TransportError): the caller gets the host's answer.
        assert.strictEqual((yield* client.execute(request)).status, 503)
        assert.strictEqual(server.hits("/put"), 1)
      }).pipe(Effect.provide(FetchHttpClient.layer)))

    it.live("a request that is not retried still gets the timeout and the breaker", () =>
      Effect.gen(function*() {
        const server = yield* flakyServer({ "/hang": ["hang"] })
        const { client, middleware } = yield* clientWith({
          name: "post-timeout",
          timeout: "50 millis",
          retry: { times: 3, ...fast },
          circuitBreaker: { trip: CircuitBreaker.consecutive(1) }
        })
        const error = yield* Effect.flip(client.post(server.url("/hang")))
        assert.strictEqual(error._tag, "TimeoutError")
        assert.strictEqual(server.hits("/hang"), 1)
        assert.strictEqual(yield* middleware.circuitBreaker.stateKey(server.host), "Open")
      }).pipe(Effect.provide(FetchHttpClient.layer)))
  })

  describe("budget", () => {
    it.live("a retry the budget cannot pay for is not made: the last response, or RetryBudgetExhausted", () =>
      Effect.gen(function*() {
        const server = yield* flakyServer({ "/down": [status(503), status(200)], "/reset": ["reset", status(200)] })
        const budget = yield* Retry.budget({ ratio: 0, minPerSecond: 0.1, window: "10 seconds" })
        const { client, middleware } = yield* clientWith({ name: "budget", retry: { times: 3, ...fast, budget } })
        // The budget holds one retry (0.1 per second over 10 seconds): the first call spends it.
        assert.strictEqual((yield* client.get(server.url("/down"))).status, 200)
        assert.strictEqual(server.hits("/down"), 2)
        const error = yield* Effect.flip(client.get(server.url("/reset")))
        assert.strictEqual(error._tag, "RetryBudgetExhausted")
        assert.strictEqual(server.hits("/reset"), 1)
        assert.strictEqual((yield* middleware.retry!.snapshot).budgetRejections, 1)
      }).pipe(Effect.provide(FetchHttpClient.layer)))

    it.effect("a caller that leaves while it waits to retry neither spends the budget nor counts a retry", () =>
      Effect.gen(function*() {
        let hits = 0
        const upstream = HttpClient.make((request) =>
          Effect.sync(() => {
            hits++
            return HttpClientResponse.fromWeb(request, new Response("busy", { status: 503 }))
          })
        )
        // One retry per window (0.1 per second over 10 seconds).
        const budget = yield* Retry.budget({ ratio: 0, minPerSecond: 0.1, window: "10 seconds" })
        const middleware = yield* ResilientHttpClient.make({
          name: "leaving",
          retry: { times: 1, base: "5 seconds", cap: "5 seconds", budget }
        })
        const client = middleware.apply(upstream)
        const caller = yield* Effect.forkChild(client.get("http://upstream.test/x"))
        yield* TestClock.adjust("1 second")
        yield* Fiber.interrupt(caller)
        yield* TestClock.adjust("1 minute")
        assert.strictEqual(hits, 1)
        assert.strictEqual((yield* middleware.retry!.snapshot).retries, 0)
        assert.deepStrictEqual((yield* budget.snapshot).available, 1)
      }))

    it.live("a spent budget returns a retry status as the response it was", () =>
      Effect.gen(function*() {
        const server = yield* flakyServer({ "/down": [status(503), status(200)] })
        const budget = yield* Retry.budget({ ratio: 0, minPerSecond: 0 })
        const { client } = yield* clientWith({ name: "spent", retry: { times: 3, ...fast, budget } })
        assert.strictEqual((yield* client.get(server.url("/down"))).status, 503)
        assert.strictEqual(server.hits("/down"), 1)
      }).pipe(Effect.provide(FetchHttpClient.layer)))
  })

  describe("options", () => {
    it.effect("bad options fail with PolicyConfigError naming the field", () =>
      Effect.gen(function*() {
        assert.deepStrictEqual(yield* issues({ name: "" }), ["name"])
        assert.deepStrictEqual(yield* issues({ name: "x", timeout: "-1 second" }), ["timeout"])
        assert.deepStrictEqual(yield* issues({ name: "x", retry: { base: 0, times: -1 } }), [
          "retry.times",
          "retry.base"
        ])
        assert.deepStrictEqual(
          yield* issues({ name: "x", retry: { methods: ["FETCH" as "GET"], statuses: [503, 42] } }),
          ["retry.methods[0]", "retry.statuses[1]"]
        )
        assert.deepStrictEqual(yield* issues({ name: "x", retry: { base: "1 second", cap: "10 millis" } }), [
          "retry.cap"
        ])
        assert.deepStrictEqual(yield* issues({ name: "x", key: "host" as never }), ["key"])
        // The breaker's own options are checked by the breaker.
        const error = yield* Effect.flip(
          ResilientHttpClient.make({ name: "x", circuitBreaker: { trip: CircuitBreaker.consecutive(0) } })
        )
        assert.strictEqual(error.kind, "circuit breaker")
        assert.strictEqual(error.issues[0].path, "trip[0].failures")
      }).pipe(Effect.scoped))
  })

  describe("registry", () => {
    it.live("the breaker and the policy are listed in the registry, and the layer provides the client", () =>
      Effect.gen(function*() {
        const server = yield* flakyServer({ "/orders": [status(503), status(200)] })
        const client = yield* ResilientHttpClient.ResilientHttpClient
        assert.strictEqual((yield* client.get(server.url("/orders"))).status, 200)
        assert.strictEqual(server.hits("/orders"), 2)
        const breaker = yield* CircuitBreakerRegistry.get("orders")
        assert.strictEqual(breaker.name, "orders")
        const policies = (yield* CircuitBreakerRegistry.policySnapshots) as ReadonlyArray<{
          readonly name: string
          readonly order: ReadonlyArray<string>
        }>
        assert.deepStrictEqual(policies.map((policy) => [policy.name, policy.order]), [["orders", [
          "retry",
          "timeout"
        ]]])
      }).pipe(
        Effect.provide(ResilientHttpClient.layer({ name: "orders" })),
        Effect.provide([CircuitBreakerRegistry.layer, FetchHttpClient.layer])
      ))
  })
})
