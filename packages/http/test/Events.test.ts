import { Alerts, CircuitBreaker, CircuitBreakerRegistry, Degradation, HealthMonitor } from "@effect-resilience/core"
import { Events } from "@effect-resilience/http"
import { NodeHttpServer } from "@effect/platform-node"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, PubSub } from "effect"
import { HttpRouter, HttpServer } from "effect/http"
import { TestClock } from "effect/testing"
import * as Http from "node:http"
import * as Net from "node:net"
import { AdminEvents, layer as adminEventsLayer } from "../src/internal/adminEvents.ts"

const Server = (options: Events.Options) =>
  HttpRouter.serve(Events.layer(options), { disableLogger: true, disableListenLog: true }).pipe(
    Layer.provideMerge(NodeHttpServer.layerTest),
    Layer.provideMerge(CircuitBreakerRegistry.layer)
  )

const port = Effect.map(HttpServer.HttpServer, (server) => (server.address as { readonly port: number }).port)

// A real client on loopback: what it has received so far, and a way to hang up.
const connect = (headers: Record<string, string> = {}, query = "") =>
  Effect.flatMap(port, (p) =>
    Effect.acquireRelease(
      Effect.callback<{ text: () => string; status: number; request: Http.ClientRequest }>((resume) => {
        let text = ""
        const request = Http.get(
          { host: "127.0.0.1", port: p, path: `/api/v1/resilience/events${query}`, headers },
          (res) => {
            res.setEncoding("utf8")
            res.on("data", (chunk: string) => (text += chunk))
            resume(Effect.succeed({ text: () => text, status: res.statusCode ?? 0, request }))
          }
        )
      }),
      (client) => Effect.sync(() => client.request.destroy())
    ))

// Waits (on the real clock: the bytes cross a socket) until `f` holds, for at most about two seconds.
const eventually = (f: () => boolean) =>
  Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 10))).pipe(
    Effect.repeat({ until: f, times: 200 }),
    Effect.andThen(Effect.sync(() => assert.isTrue(f())))
  )

interface Frame {
  readonly id: string | undefined
  readonly event: string | undefined
  readonly data: Record<string, unknown>
}

const allFrames = (text: string): Array<Frame> =>
  text.split("\n\n").filter((block) => block.includes("data: ")).map((block) => {
    const field = (name: string) =>
      block.split("\n").find((line) => line.startsWith(`${name}: `))?.slice(name.length + 2)
    return { id: field("id"), event: field("event"), data: JSON.parse(field("data")!) }
  })

// The events, without the heartbeats between them.
const frames = (text: string): Array<Frame> => allFrames(text).filter((frame) => frame.event !== "heartbeat")

const heartbeats = (text: string): Array<Frame> => allFrames(text).filter((frame) => frame.event === "heartbeat")

// Every optional source in context: a breaker named in a degradation rule, a monitor with alerts, admin actions.
const WithSources = HttpRouter.serve(Events.layer({ alertPollInterval: "1 second" }), {
  disableLogger: true,
  disableListenLog: true
}).pipe(
  Layer.provideMerge(NodeHttpServer.layerTest),
  Layer.provideMerge(Layer.mergeAll(
    Degradation.layer({ rules: [{ level: 2, breakers: ["db"], description: "No database" }] }),
    Alerts.layer(),
    adminEventsLayer
  )),
  Layer.provideMerge(HealthMonitor.layer()),
  Layer.provideMerge(Layer.effectDiscard(CircuitBreaker.make({ name: "db" }))),
  Layer.provideMerge(CircuitBreakerRegistry.layer)
)

describe("Events", () => {
  it.effect("delivers breaker transitions with reason and key, and heartbeats on an idle stream", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ name: "db", trip: CircuitBreaker.consecutive(1) })
      const client = yield* connect()
      assert.strictEqual(client.status, 200)
      yield* eventually(() => client.text().includes(": connected"))
      yield* Effect.ignore(breaker.protectKey(Effect.fail("boom"), "eu-1"))
      yield* eventually(() => frames(client.text()).length === 1)
      const [opened] = frames(client.text())
      assert.strictEqual(opened.event, "transition")
      assert.strictEqual(opened.id, "1")
      assert.deepStrictEqual(
        { ...opened.data, at: undefined },
        {
          breaker: "db",
          key: "eu-1",
          from: "closed",
          to: "open",
          reason: "ConsecutiveFailures",
          description: "1 consecutive failures",
          shadow: false,
          at: undefined
        }
      )
      // One heartbeat as the stream opened, announcing the interval; with no id, so that Last-Event-ID stays put.
      const opening = { id: undefined, event: "heartbeat", data: { interval_ms: 5000 } }
      assert.deepStrictEqual(heartbeats(client.text()), [opening])
      yield* TestClock.adjust("5 seconds")
      yield* eventually(() => heartbeats(client.text()).length === 2)
      assert.deepStrictEqual(heartbeats(client.text()), [opening, opening])
    }).pipe(Effect.scoped, Effect.provide(Server({ heartbeat: "5 seconds" }))))

  it.effect("Last-Event-ID resumes from the buffer; an id it no longer holds gets a reset", () =>
    Effect.gen(function*() {
      const hub = yield* Events.EventHub
      for (let i = 1; i <= 5; i++) yield* hub.publish("deploy", { n: i })
      const resumed = yield* connect({ "last-event-id": "3" })
      yield* hub.publish("deploy", { n: 6 })
      yield* eventually(() => frames(resumed.text()).length === 3)
      assert.deepStrictEqual(frames(resumed.text()).map((f) => [f.id, f.data.n]), [["4", 4], ["5", 5], ["6", 6]])
      for (const [lastId, reason] of [["1", "expired"], ["99", "unknown"], ["x", "invalid"]] as const) {
        const stale = yield* connect({ "last-event-id": lastId })
        yield* eventually(() => frames(stale.text()).length === 1)
        const [reset] = frames(stale.text())
        assert.deepStrictEqual([reset.event, reset.id, reset.data.reason], ["reset", "6", reason])
      }
    }).pipe(Effect.scoped, Effect.provide(Server({ bufferSize: 3 }))))

  it.effect("a last_event_id query parameter resumes as the header does; the header wins if both are sent", () =>
    Effect.gen(function*() {
      const hub = yield* Events.EventHub
      for (let i = 1; i <= 5; i++) yield* hub.publish("deploy", { n: i })
      const resumed = yield* connect({}, "?last_event_id=4")
      const both = yield* connect({ "last-event-id": "3" }, "?last_event_id=1")
      yield* eventually(() => frames(resumed.text()).length === 1 && frames(both.text()).length === 2)
      assert.deepStrictEqual(frames(resumed.text()).map((f) => f.data.n), [5])
      assert.deepStrictEqual(frames(both.text()).map((f) => f.data.n), [4, 5])
    }).pipe(Effect.scoped, Effect.provide(Server({ bufferSize: 3 }))))

  it.effect("ids keep increasing across restarts, so an id from an earlier process reads as expired", () =>
    Effect.gen(function*() {
      const before = yield* Events.make()
      for (let i = 0; i < 3; i++) yield* before.publish("deploy", { n: i })
      const lastBefore = (yield* before.stats).lastEventId
      yield* TestClock.adjust("1 second")
      const after = yield* Events.make({ bufferSize: 2 })
      yield* after.publish("deploy", { n: 0 })
      assert.strictEqual(lastBefore, 3)
      assert.strictEqual((yield* after.stats).lastEventId, 1_000_001)
    }).pipe(Effect.scoped, Effect.provide(CircuitBreakerRegistry.layer)))

  it.effect("a client that stops reading is disconnected instead of growing the server's memory", () =>
    Effect.gen(function*() {
      const hub = yield* Events.EventHub
      const p = yield* port
      const closed = { value: false }
      const socket = yield* Effect.acquireRelease(
        Effect.sync(() => {
          const raw = Net.connect(p, "127.0.0.1")
          raw.on("error", () => {})
          raw.on("close", () => (closed.value = true))
          raw.write("GET /api/v1/resilience/events HTTP/1.1\r\nHost: localhost\r\n\r\n")
          raw.pause() // never reads: the socket's buffers fill, then the server's queue for it
          return raw
        }),
        (raw) => Effect.sync(() => raw.destroy())
      )
      yield* eventually(() => socket.bytesWritten > 0)
      const payload = "x".repeat(16 * 1024)
      let published = 0
      while ((yield* hub.stats).slowDisconnects === 0 && published < 4000) {
        yield* hub.publish("bulk", { payload })
        published++
        // The server's writer runs between publishes: a client that read would keep up.
        yield* Effect.promise(() => new Promise((resolve) => setImmediate(resolve)))
      }
      const stats = yield* hub.stats
      assert.strictEqual(stats.slowDisconnects, 1)
      // Well past the queue: the socket's buffers filled first, and the writer waited for them to drain.
      assert.isAbove(published, 20)
      assert.strictEqual(stats.clients, 0)
      // The server closed its end: a client reading again gets what was in flight, then the end of the stream.
      socket.resume()
      yield* eventually(() => closed.value)
    }).pipe(Effect.scoped, Effect.provide(Server({ clientBuffer: 8 }))))

  it.effect("follows health changes, alerts, degradation levels and admin actions when they are in context", () =>
    Effect.gen(function*() {
      const client = yield* connect()
      yield* eventually(() => client.text().includes(": connected"))
      const monitor = yield* HealthMonitor.HealthMonitor
      yield* monitor.register({
        name: "postgres",
        check: Effect.fail("down"),
        interval: "10 seconds",
        failureThreshold: 1,
        warningThreshold: 1,
        jitter: 0
      })
      yield* TestClock.adjust("1 second")
      yield* CircuitBreakerRegistry.forceOpen("db")
      const admin = yield* AdminEvents
      yield* PubSub.publish(admin, { action: "force_open", breaker: "db", key: null, result: "applied", at: 0 })
      yield* TestClock.adjust("1 second")
      const kinds = ["transition", "health", "alert", "degradation", "admin"]
      yield* eventually(() => kinds.every((kind) => frames(client.text()).some((f) => f.event === kind)))
      const byKind = (kind: string) => frames(client.text()).find((f) => f.event === kind)!.data
      assert.deepStrictEqual([byKind("health").service, byKind("health").to], ["postgres", "unhealthy"])
      assert.strictEqual(byKind("alert").service, "postgres")
      assert.deepStrictEqual([byKind("degradation").level, byKind("degradation").down], [2, ["db"]])
      assert.deepStrictEqual(byKind("admin"), {
        action: "force_open",
        breaker: "db",
        key: null,
        result: "applied",
        at: "1970-01-01T00:00:00.000Z"
      })
      const ids = frames(client.text()).map((f) => Number(f.id))
      assert.deepStrictEqual(ids, ids.map((_, i) => i + 1))
    }).pipe(Effect.scoped, Effect.provide(WithSources)))
})
