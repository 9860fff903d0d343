import { assert, describe, it } from "@effect/vitest"
import { Clock, Deferred, Effect, Exit, Layer, Logger, Metric, Queue, References, Schema, Scope, Stream } from "effect"
import { FetchHttpClient } from "effect/http"
import { TestClock } from "effect/testing"
import { createServer, type IncomingHttpHeaders } from "node:http"
import * as Alerts from "../src/Alerts.ts"
import * as CircuitBreaker from "../src/CircuitBreaker.ts"
import * as HealthMonitor from "../src/HealthMonitor.ts"
import type { Status, StatusChange } from "../src/HealthMonitor.ts"
import * as Retry from "../src/Retry.ts"
import { interruptedAfter } from "./interruption.ts"

/** A sink that keeps what it is sent; `failing` makes it fail with an `AlertSinkError`. */
const recordingSink = (name = "recorder") => {
  const sent: Array<Alerts.Alert> = []
  const state = { failing: false }
  const sink: Alerts.Sink = {
    send: (alert) =>
      Effect.suspend(() => {
        if (state.failing) return Effect.fail(new Alerts.AlertSinkError({ sink: name, reason: "down" }))
        sent.push(alert)
        return Effect.void
      })
  }
  return { sink, sent, state }
}

/**
 * An alerter on a hand-made stream of changes. `emit` publishes a change stamped with the TestClock's time and
 * lets the alerter handle it.
 */
const setup = (options: Omit<Alerts.Options, "changes"> = {}, sink?: Alerts.Sink) =>
  Effect.gen(function*() {
    const changes = yield* Queue.unbounded<StatusChange>()
    const recorder = recordingSink()
    const alerts = yield* Alerts.make({ changes: Stream.fromQueue(changes), ...options }).pipe(
      Effect.provideService(Alerts.AlertSink, sink ?? recorder.sink)
    )
    const emit = (service: string, from: Status, to: Status, error: string | null = null) =>
      Effect.gen(function*() {
        const at = yield* Clock.currentTimeMillis
        yield* Queue.offer(changes, { service, from, to, critical: true, error, at, consecutiveFailures: 0 })
        yield* TestClock.adjust(0)
      })
    return { alerts, emit, sent: recorder.sent, recorder }
  })

/** An alert, as a sink is sent it. */
const dbDown: Alerts.Alert = {
  service: "db",
  from: "Healthy",
  to: "Unhealthy",
  severity: "critical",
  error: null,
  at: 0,
  count: 1,
  suppressed: false
}

const brief = (alert: Alerts.Alert) => `${alert.service} ${alert.from}->${alert.to} ${alert.severity} x${alert.count}`

const metricValue = (id: string, attributes: Record<string, string>) =>
  Metric.snapshot.pipe(Effect.map((all) => {
    const found = all.find((m) => m.id === id && Object.entries(attributes).every(([k, v]) => m.attributes?.[k] === v))
    return (found?.state as { readonly count?: number } | undefined)?.count
  }))

/** Runs `effect` with a logger that keeps level, message and annotations. */
const captureLogs = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const lines: Array<{ level: string; message: string; annotations: Record<string, unknown> }> = []
    const logger = Logger.make(({ fiber, logLevel, message }) => {
      lines.push({
        level: logLevel,
        message: (Array.isArray(message) ? message : [message]).map(String).join(" "),
        annotations: { ...fiber.getRef(References.CurrentLogAnnotations) }
      })
    })
    const result = yield* effect.pipe(Effect.provide(Logger.layer([logger])))
    return { result, lines }
  })

describe("Alerts", () => {
  describe("severity", () => {
    it("maps every transition", () => {
      const statuses: ReadonlyArray<Status> = ["Unknown", "Healthy", "Degraded", "Unhealthy"]
      const table = statuses.flatMap((from) =>
        statuses.filter((to) => to !== from).map((to) => `${from}->${to}: ${Alerts.severityOf(from, to)}`)
      )
      assert.deepStrictEqual(table, [
        "Unknown->Healthy: null",
        "Unknown->Degraded: warning",
        "Unknown->Unhealthy: critical",
        "Healthy->Unknown: info",
        "Healthy->Degraded: warning",
        "Healthy->Unhealthy: critical",
        "Degraded->Unknown: info",
        "Degraded->Healthy: info",
        "Degraded->Unhealthy: critical",
        "Unhealthy->Unknown: info",
        "Unhealthy->Healthy: info",
        "Unhealthy->Degraded: warning"
      ])
    })

    it.effect("alerts carry the change, its severity and a count of 1", () =>
      Effect.gen(function*() {
        const { emit, sent } = yield* setup()
        yield* emit("db", "Unknown", "Healthy")
        yield* TestClock.adjust("1 second")
        yield* emit("db", "Healthy", "Degraded", "timeout")
        yield* emit("db", "Degraded", "Unhealthy", "timeout")
        yield* emit("db", "Unhealthy", "Healthy")
        yield* emit("db", "Healthy", "Unknown")
        // The first good check is no alert.
        assert.deepStrictEqual(sent.map(brief), [
          "db Healthy->Degraded warning x1",
          "db Degraded->Unhealthy critical x1",
          "db Unhealthy->Healthy info x1",
          "db Healthy->Unknown info x1"
        ])
        assert.deepStrictEqual(sent[1], {
          service: "db",
          from: "Degraded",
          to: "Unhealthy",
          severity: "critical",
          error: "timeout",
          at: 1000,
          count: 1,
          suppressed: false
        })
      }))
  })

  describe("deduplication", () => {
    it.effect("occurrences folded into a window outlive 1,000 other alert kinds: the next alert reports them", () =>
      Effect.gen(function*() {
        const changes = yield* Queue.unbounded<StatusChange>()
        const sent: Array<Alerts.Alert> = []
        const alerts = yield* Alerts.make({ changes: Stream.fromQueue(changes), dedupWindow: "10 minutes" }).pipe(
          Effect.provideService(Alerts.AlertSink, { send: (alert) => Effect.sync(() => void sent.push(alert)) })
        )
        const emit = (service: string, from: Status, to: Status, error: string | null) =>
          Effect.gen(function*() {
            const at = yield* Clock.currentTimeMillis
            yield* Queue.offer(changes, { service, from, to, critical: true, error, at, consecutiveFailures: 3 })
          })

        // db goes down: alerted. It goes down again 1 minute later: folded into the window, not reported yet.
        yield* emit("db", "Healthy", "Unhealthy", "connection refused")
        yield* TestClock.adjust("1 minute")
        yield* emit("db", "Healthy", "Unhealthy", "connection refused")
        yield* TestClock.adjust(0)
        const before = yield* alerts.snapshot
        assert.deepStrictEqual(before.unreported.map((u) => [u.service, u.count]), [["db", 1]])

        // Meanwhile a busy fleet raises 1,000 other alerts (other services), each delivered.
        for (let i = 0; i < 1000; i++) yield* emit(`worker-${i}`, "Healthy", "Degraded", "slow")
        yield* TestClock.adjust(0)

        // The db occurrence folded at 1 minute is still unreported: the snapshot must list it ...
        const after = yield* alerts.snapshot
        assert.strictEqual(after.deduplicated, 1)
        assert.deepStrictEqual(
          after.unreported.filter((u) => u.service === "db").map((u) => [u.service, u.count]),
          [["db", 1]],
          "the folded db occurrence vanished from the snapshot's unreported list"
        )

        // ... and the next db alert, after the window, must report it: count = itself + the one folded.
        yield* TestClock.adjust("10 minutes")
        yield* emit("db", "Healthy", "Unhealthy", "connection refused")
        yield* TestClock.adjust(0)
        const db = sent.filter((a) => a.service === "db")
        assert.deepStrictEqual(db.map((a) => a.count), [1, 2], "the folded occurrence was never reported")
      }).pipe(Effect.scoped))

    it.effect("the same alert within the window is sent once; the next one after it reports the folded ones", () =>
      Effect.gen(function*() {
        const { alerts, emit, sent } = yield* setup({ dedupWindow: "5 minutes" })
        // A flapping service: the same two alerts, every minute.
        for (let i = 0; i < 4; i++) {
          yield* emit("db", "Healthy", "Unhealthy", "refused")
          yield* TestClock.adjust("30 seconds")
          yield* emit("db", "Unhealthy", "Healthy")
          yield* TestClock.adjust("30 seconds")
        }
        assert.deepStrictEqual(sent.map(brief), ["db Healthy->Unhealthy critical x1", "db Unhealthy->Healthy info x1"])
        const snapshot = yield* alerts.snapshot
        assert.strictEqual(snapshot.deduplicated, 6)
        assert.deepStrictEqual(snapshot.unreported, [
          { service: "db", from: "Healthy", to: "Unhealthy", error: "refused", count: 3, windowEndsAt: 300_000 },
          { service: "db", from: "Unhealthy", to: "Healthy", error: null, count: 3, windowEndsAt: 330_000 }
        ])
        // Now at 4:00. At exactly 5:00 the first window is closed: the alert goes out with the 3 folded ones.
        yield* TestClock.adjust("59 seconds")
        yield* emit("db", "Healthy", "Unhealthy", "refused")
        assert.strictEqual(sent.length, 2)
        yield* TestClock.adjust("1 second")
        yield* emit("db", "Healthy", "Unhealthy", "refused")
        assert.deepStrictEqual(sent.map(brief).slice(2), ["db Healthy->Unhealthy critical x5"])
        assert.strictEqual(sent[2].at, 300_000)
        const after = yield* alerts.snapshot
        assert.deepStrictEqual(after.unreported.map((u) => u.count), [3])
        assert.deepStrictEqual(
          { raised: after.raised, sent: after.sent, deduplicated: after.deduplicated },
          { raised: 10, sent: 3, deduplicated: 7 }
        )
        // Folded alerts are not in the history; sent ones are, as sent.
        assert.deepStrictEqual((yield* alerts.history).map((a) => a.count), [1, 1, 5])
      }))

    it.effect("alerts differing in service, transition or error are not the same", () =>
      Effect.gen(function*() {
        const { alerts, emit, sent } = yield* setup()
        yield* emit("db", "Healthy", "Unhealthy", "refused")
        yield* emit("db", "Healthy", "Unhealthy", "timeout")
        yield* emit("cache", "Healthy", "Unhealthy", "refused")
        yield* emit("db", "Degraded", "Unhealthy", "refused")
        yield* emit("db", "Healthy", "Unhealthy", "refused")
        assert.strictEqual(sent.length, 4)
        assert.strictEqual((yield* alerts.snapshot).deduplicated, 1)
      }))

    it.effect("a zero window sends every alert", () =>
      Effect.gen(function*() {
        const { emit, sent } = yield* setup({ dedupWindow: 0 })
        yield* emit("db", "Healthy", "Unhealthy", "refused")
        yield* emit("db", "Healthy", "Unhealthy", "refused")
        assert.deepStrictEqual(sent.map((a) => a.count), [1, 1])
      }))
  })

  describe("suppression", () => {
    it.effect("maintenance windows record alerts as suppressed, and alerting resumes after them", () =>
      Effect.gen(function*() {
        yield* TestClock.adjust("1 hour")
        const { alerts, emit, sent } = yield* setup({
          maintenance: [
            // Relative to now (1:00): 1:10 to 1:30.
            { service: "search", from: "10 minutes", until: "30 minutes" },
            // Epoch milliseconds: 2:00 to 3:00.
            { service: "db", from: 7_200_000, until: 10_800_000 }
          ]
        })
        yield* emit("search", "Healthy", "Degraded")
        yield* TestClock.adjust("10 minutes")
        yield* emit("search", "Degraded", "Unhealthy", "reindexing")
        yield* emit("search", "Degraded", "Unhealthy", "reindexing")
        yield* emit("db", "Healthy", "Unhealthy", "refused")
        yield* TestClock.adjust("20 minutes")
        // 1:30: the window is over (it ends before `until`).
        yield* emit("search", "Degraded", "Unhealthy", "reindexing")
        assert.deepStrictEqual(sent.map(brief), [
          "search Healthy->Degraded warning x1",
          "db Healthy->Unhealthy critical x1",
          // Suppressed alerts open no dedup window: the first one after maintenance is sent.
          "search Degraded->Unhealthy critical x1"
        ])
        const history = yield* alerts.history
        assert.deepStrictEqual(history.map((a) => `${a.service} ${a.suppressed}`), [
          "search false",
          "search true",
          "search true",
          "db false",
          "search false"
        ])
        const snapshot = yield* alerts.snapshot
        assert.strictEqual(snapshot.suppressed, 2)
        assert.deepStrictEqual(snapshot.maintenance, [{ service: "db", from: 7_200_000, until: 10_800_000 }])
        yield* TestClock.adjust("30 minutes")
        yield* emit("db", "Unhealthy", "Healthy")
        assert.strictEqual(sent.length, 3)
      }))

    it.effect("suppress and unsuppress at run time", () =>
      Effect.gen(function*() {
        const { alerts, emit, sent } = yield* setup()
        yield* alerts.suppress("api", "15 minutes")
        yield* emit("api", "Healthy", "Unhealthy", "deploying")
        yield* TestClock.adjust("15 minutes")
        yield* emit("api", "Unhealthy", "Healthy")
        yield* alerts.suppress("api", "1 hour")
        yield* emit("api", "Healthy", "Degraded")
        yield* alerts.unsuppress("api")
        yield* emit("api", "Degraded", "Healthy")
        assert.deepStrictEqual(sent.map(brief), ["api Unhealthy->Healthy info x1", "api Degraded->Healthy info x1"])
        const snapshot = yield* alerts.snapshot
        assert.deepStrictEqual([snapshot.suppressed, snapshot.maintenance.length], [2, 0])
      }))
    it.effect("a change made during maintenance but queued behind a slow sink is suppressed, whatever is read meanwhile", () =>
      Effect.gen(function*() {
        // The db alert takes 30 minutes to send; the search change waits behind it.
        const slow = recordingSink()
        const sink: Alerts.Sink = {
          send: (alert) =>
            Effect.andThen(alert.service === "db" ? Effect.sleep("30 minutes") : Effect.void, slow.sink.send(alert))
        }
        const { alerts, emit } = yield* setup({ maintenance: [{ service: "search", until: "10 minutes" }] }, sink)
        yield* emit("db", "Healthy", "Unhealthy")
        yield* TestClock.adjust("1 minute")
        yield* emit("search", "Healthy", "Unhealthy")
        // 0:15: the window is over, and a dashboard reads the snapshot, an operator opens a window elsewhere.
        yield* TestClock.adjust("14 minutes")
        assert.deepStrictEqual((yield* alerts.snapshot).maintenance, [])
        yield* alerts.suppress("api", "5 minutes")
        yield* TestClock.adjust("20 minutes")
        // The search change happened at 0:01, inside its window: judged by when it happened, not by when it was read.
        assert.deepStrictEqual((yield* alerts.history).map((a) => `${a.service} ${a.suppressed}`), [
          "db false",
          "search true"
        ])
        assert.deepStrictEqual(slow.sent.map(brief), ["db Healthy->Unhealthy critical x1"])
      }))
  })

  describe("failing sinks", () => {
    it.effect("a failing sink does not stop alerting, and its alerts are carried into the next count", () =>
      Effect.gen(function*() {
        const broken = recordingSink("pager")
        const chat = recordingSink("chat")
        const { alerts, emit } = yield* setup({}, Alerts.many([broken.sink, chat.sink]))
        broken.state.failing = true
        yield* emit("db", "Healthy", "Unhealthy", "refused")
        yield* emit("cache", "Healthy", "Degraded")
        // The second sink got everything the first could not take.
        assert.deepStrictEqual(chat.sent.map(brief), [
          "db Healthy->Unhealthy critical x1",
          "cache Healthy->Degraded warning x1"
        ])
        broken.state.failing = false
        // A failed delivery opens no window: the same alert is sent again, reporting both occurrences.
        yield* emit("db", "Healthy", "Unhealthy", "refused")
        assert.deepStrictEqual(broken.sent.map(brief), ["db Healthy->Unhealthy critical x2"])
        const snapshot = yield* alerts.snapshot
        assert.deepStrictEqual(
          { raised: snapshot.raised, sent: snapshot.sent, failed: snapshot.failed },
          { raised: 3, sent: 1, failed: 2 }
        )
      }))

    // A sink whose first send dies, or throws instead of returning an effect.
    const brokenOnce: ReadonlyArray<readonly [string, (first: boolean) => Effect.Effect<void>]> = [
      ["dies", (first) => first ? Effect.die("boom") : Effect.void],
      ["throws instead of returning an effect", (first) => {
        if (first) throw new Error("bad webhook URL")
        return Effect.void
      }]
    ]
    for (const [how, send] of brokenOnce) {
      it.effect(`a sink that ${how} is counted and logged, and alerting goes on`, () =>
        Effect.gen(function*() {
          let calls = 0
          const sink: Alerts.Sink = { send: () => send(calls++ === 0) }
          const { lines, result } = yield* captureLogs(Effect.gen(function*() {
            const { alerts, emit } = yield* setup({}, sink)
            yield* emit("db", "Healthy", "Unhealthy", "refused")
            yield* emit("db", "Unhealthy", "Healthy")
            return yield* alerts.snapshot
          }))
          assert.deepStrictEqual([result.failed, result.sent, calls], [1, 1, 2])
          assert.isTrue(lines.some((l) => l.level === "Warn" && l.message.includes("Alert not delivered: db")))
        }))
    }

    it.effect("many collects the failures of every failed sink", () =>
      Effect.gen(function*() {
        const a = recordingSink("a")
        const b = recordingSink("b")
        const c = recordingSink("c")
        a.state.failing = true
        c.state.failing = true
        const exit = yield* Effect.exit(
          Alerts.many([a.sink, b.sink, c.sink]).send(dbDown)
        )
        assert.strictEqual(b.sent.length, 1)
        assert.deepStrictEqual(
          exit,
          Exit.fail(new Alerts.AlertSinkError({ sink: "a, c", reason: "a: down; c: down" }))
        )
      }))

    it.effect("many: a sink that throws keeps no other sink from the alert", () =>
      Effect.gen(function*() {
        const thrower: Alerts.Sink = {
          send: () => {
            throw new Error("bad webhook URL")
          }
        }
        const b = recordingSink("b")
        const error = yield* Effect.flip(Alerts.many([thrower, b.sink]).send(dbDown))
        assert.deepStrictEqual(b.sent, [dbDown])
        assert.strictEqual(error.sink, "unknown")
        assert.include(error.reason, "bad webhook URL")
      }))

    it.effect("layerMany builds every layer and sends to each", () =>
      Effect.gen(function*() {
        // The combined layer needs what its layers need.
        // @ts-expect-error: the webhook sink needs an HttpClient
        const _unprovided: Layer.Layer<Alerts.AlertSink, unknown, never> = Alerts.layerMany([
          Alerts.layerLog,
          Alerts.layerWebhook({ url: "https://hooks.example.com" })
        ])
        const first = recordingSink("first")
        const second = recordingSink("second")
        first.state.failing = true
        const changes = yield* Queue.unbounded<StatusChange>()
        const alerts = yield* Alerts.make({ changes: Stream.fromQueue(changes) }).pipe(
          Effect.provide(Alerts.layerMany([
            Layer.succeed(Alerts.AlertSink, first.sink),
            Layer.succeed(Alerts.AlertSink, second.sink)
          ]))
        )
        yield* Queue.offer(changes, {
          service: "db",
          from: "Healthy",
          to: "Degraded",
          critical: false,
          error: "slow",
          at: 0,
          consecutiveFailures: 2
        })
        yield* TestClock.adjust(0)
        assert.deepStrictEqual(second.sent.map(brief), ["db Healthy->Degraded warning x1"])
        assert.strictEqual((yield* alerts.snapshot).failed, 1)
      }))
  })

  describe("interruption", () => {
    it.effect("alerting stopped while a send is under way: a failed send, its occurrence carried, every raise counted", () =>
      Effect.gen(function*() {
        const sending = Deferred.makeUnsafe<void>()
        const scope = yield* Scope.make()
        const { alerts, emit } = yield* setup({}, {
          send: () => Effect.andThen(Deferred.succeed(sending, undefined), Effect.never)
        }).pipe(Scope.provide(scope))
        yield* emit("db", "Healthy", "Unhealthy")
        yield* Deferred.await(sending)
        yield* Scope.close(scope, Exit.void)
        const after = yield* alerts.snapshot
        assert.deepStrictEqual(
          [after.raised, after.sent, after.failed, after.deduplicated, after.suppressed],
          [1, 0, 1, 0, 0]
        )
        assert.deepStrictEqual(after.unreported.map((u) => [u.service, u.count]), [["db", 1]])
      }))

    it.effect("alerting whose making is interrupted at any point leaves no metric series behind", () =>
      Effect.gen(function*() {
        for (let turns = 0; turns < 60; turns++) {
          const registry = new Map()
          const changes = yield* Queue.unbounded<StatusChange>()
          yield* interruptedAfter(
            Effect.scoped(Effect.andThen(Alerts.make({ changes: Stream.fromQueue(changes) }), Effect.never)).pipe(
              Effect.provideService(Alerts.AlertSink, recordingSink().sink),
              Effect.provideService(Metric.MetricRegistry, registry)
            ),
            turns
          )
          assert.strictEqual(registry.size, 0, `interrupted after ${turns} turns: its series outlived its scope`)
        }
      }))
  })

  describe("log sink", () => {
    it.effect("is the default, logs by severity, and annotates with the alert", () =>
      Effect.gen(function*() {
        const { lines } = yield* captureLogs(Effect.gen(function*() {
          const changes = yield* Queue.unbounded<StatusChange>()
          yield* Alerts.make({ changes: Stream.fromQueue(changes) })
          const change = { critical: true, at: 0, consecutiveFailures: 3, service: "db" }
          yield* Queue.offerAll(changes, [
            { ...change, from: "Healthy", to: "Degraded", error: "slow" },
            { ...change, from: "Degraded", to: "Unhealthy", error: "refused" },
            { ...change, from: "Unhealthy", to: "Healthy", error: null }
          ])
          yield* TestClock.adjust(0)
        }))
        assert.deepStrictEqual(lines.map((l) => `${l.level} ${l.message}`), [
          "Warn Alert: db: Healthy -> Degraded (slow)",
          "Error Alert: db: Degraded -> Unhealthy (refused)",
          "Info Alert: db: Unhealthy -> Healthy"
        ])
        assert.deepStrictEqual(lines[1].annotations, {
          service: "db",
          from: "Degraded",
          to: "Unhealthy",
          severity: "critical",
          error: "refused",
          at: 0,
          count: 1,
          suppressed: false
        })
      }))
  })

  describe("webhook sink", () => {
    const alert: Alerts.Alert = {
      service: "db",
      from: "Healthy",
      to: "Unhealthy",
      severity: "critical",
      error: "connection refused",
      at: 1_700_000_000_000,
      count: 2,
      suppressed: false
    }

    interface Received {
      readonly headers: IncomingHttpHeaders
      readonly body: unknown
    }

    /**
     * A real HTTP server on 127.0.0.1 that answers `state.status` (with `state.stall`, half a body and then nothing;
     * with `state.hang`, nothing), keeps every request, and counts the answers whose connection closed before they
     * were finished.
     */
    const webhookServer = Effect.gen(function*() {
      const arrived = yield* Queue.unbounded<Received>()
      return yield* Effect.acquireRelease(
        Effect.callback<{
          readonly url: string
          readonly requests: Array<Received>
          readonly arrived: Queue.Queue<Received>
          readonly state: { status: number; stall: boolean; hang: boolean }
          readonly cutOff: () => number
          readonly close: () => void
        }>((resume) => {
          const requests: Array<Received> = []
          const state = { status: 200, stall: false, hang: false }
          let open = true
          let cutOff = 0
          const server = createServer((request, response) => {
            let body = ""
            request.on("data", (chunk) => body += chunk)
            request.on("end", () => {
              const received = { headers: request.headers, body: JSON.parse(body) }
              requests.push(received)
              Queue.offerUnsafe(arrived, received)
              if (state.hang) return
              response.on("close", () => {
                if (!response.writableFinished) cutOff++
              })
              response.writeHead(state.status, { "content-type": "text/plain", "content-length": "100" })
              // `stall`: half a body, then nothing.
              if (state.stall) response.write("the first half of a body")
              else response.end("ok".padEnd(100))
            })
          })
          server.listen(0, "127.0.0.1", () => {
            const address = server.address() as { readonly port: number }
            resume(Effect.succeed({
              url: `http://127.0.0.1:${address.port}/hooks/alerts`,
              requests,
              arrived,
              state,
              cutOff: () => cutOff,
              close: () => {
                if (!open) return
                open = false
                server.closeAllConnections()
                server.close()
              }
            }))
          })
        }),
        (server) => Effect.sync(() => server.close())
      )
    })

    it.live("posts the alert as JSON with the given headers", () =>
      Effect.gen(function*() {
        const server = yield* webhookServer
        const sink = yield* Alerts.webhook({ url: server.url, headers: { authorization: "Bearer s3cret" } })
        yield* sink.send(alert)
        assert.strictEqual(server.requests.length, 1)
        assert.deepStrictEqual(server.requests[0].body, alert)
        assert.strictEqual(server.requests[0].headers["authorization"], "Bearer s3cret")
        assert.strictEqual(server.requests[0].headers["content-type"], "application/json")
      }).pipe(Effect.provide(FetchHttpClient.layer)))

    it.live("retries 5xx, not other 4xx, and its breaker opens when the server keeps failing", () =>
      Effect.gen(function*() {
        const server = yield* webhookServer
        const sink = yield* Alerts.webhook({
          url: server.url,
          breaker: { trip: CircuitBreaker.consecutive(2), openDuration: "1 minute" },
          retry: Retry.exponential({ base: "1 millis", times: 1 })
        })
        server.state.status = 400
        const badRequest = yield* Effect.flip(sink.send(alert))
        assert.deepStrictEqual([badRequest.reason, server.requests.length], ["HTTP 400", 1])
        server.state.status = 200
        yield* sink.send(alert)
        server.state.status = 500
        // Each alert is tried twice, then fails; after two failed alerts the breaker is open.
        const first = yield* Effect.flip(sink.send(alert))
        const second = yield* Effect.flip(sink.send(alert))
        assert.deepStrictEqual([first.sink, first.reason, second.reason], ["alerts-webhook", "HTTP 500", "HTTP 500"])
        assert.strictEqual(server.requests.length, 6)
        server.state.status = 200
        const open = yield* Effect.flip(sink.send(alert))
        assert.match(open.reason, /Circuit breaker "alerts-webhook" .* is open/)
        // Failed at once: the server saw nothing more.
        assert.strictEqual(server.requests.length, 6)
      }).pipe(Effect.provide(FetchHttpClient.layer)))

    it.live("a failed answer is discarded unread: a 503 whose body stalls does not keep its connection", () =>
      Effect.gen(function*() {
        const server = yield* webhookServer
        server.state.status = 503
        server.state.stall = true
        const sink = yield* Alerts.webhook({
          url: server.url,
          retry: Retry.exponential({ base: "1 millis", times: 1 })
        })
        assert.strictEqual((yield* Effect.flip(sink.send(alert))).reason, "HTTP 503")
        // Both attempts' connections close at once, not when the garbage collector gets to them.
        for (let i = 0; i < 200 && server.cutOff() < 2; i++) yield* Effect.sleep("10 millis")
        assert.deepStrictEqual([server.requests.length, server.cutOff()], [2, 2])
      }).pipe(Effect.provide(FetchHttpClient.layer)))

    it.effect("a webhook that hangs under a long timeout: a half-open probe that fails reopens the breaker", () =>
      Effect.gen(function*() {
        const server = yield* webhookServer
        server.state.hang = true
        // Four attempts of 20 seconds and 3.5 seconds of backoff: each alert takes 83.5 seconds.
        const sink = yield* Alerts.webhook({
          url: server.url,
          timeout: "20 seconds",
          breaker: { trip: CircuitBreaker.consecutive(1), openDuration: "30 seconds" }
        })
        // Each step lets a request reach the server before the clock moves on.
        const settle = Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 5)))
        const sendFor = Effect.fnUntraced(function*(seconds: number) {
          const fiber = yield* Effect.forkChild(Effect.flip(sink.send(alert)))
          for (let i = 0; i < seconds * 2; i++) yield* Effect.andThen(settle, TestClock.adjust("500 millis"))
          yield* settle
          return fiber.pollUnsafe()
        })
        // The first alert fails and opens the breaker; 30 seconds on, the next alert is the half-open probe.
        assert.isDefined(yield* sendFor(84))
        yield* TestClock.adjust("30 seconds")
        const probe = yield* sendFor(84)
        assert.isTrue(probe !== undefined && Exit.isSuccess(probe))
        // The probe failed: the breaker is open again, and the next alert fails at once.
        const rejected = yield* sendFor(0)
        assert.deepStrictEqual([rejected?._tag, server.requests.length], ["Success", 8])
        assert.isTrue(rejected !== undefined && Exit.isSuccess(rejected) && /is open/.test(rejected.value.reason))
      }).pipe(Effect.provide(FetchHttpClient.layer)))

    it.live("an unreachable webhook fails with AlertSinkError", () =>
      Effect.gen(function*() {
        const server = yield* webhookServer
        const url = server.url
        server.close()
        const sink = yield* Alerts.webhook({ url, retry: Retry.exponential({ base: "1 millis", times: 1 }) })
        const error = yield* Effect.flip(sink.send(alert))
        assert.strictEqual(error._tag, "AlertSinkError")
        assert.strictEqual(error.sink, "alerts-webhook")
      }).pipe(Effect.provide(FetchHttpClient.layer)))

    it.live("an unreachable webhook's error names its origin and what went wrong, never its secret path or query", () =>
      Effect.gen(function*() {
        const server = yield* webhookServer
        server.close()
        const origin = new URL(server.url).origin
        // Slack's and Discord's webhooks keep their secret in the path; others take a token in the query.
        const url = `${origin}/services/T0/B0/s3cret?token=s3cret`
        const sink = yield* Alerts.webhook({ url, retry: Retry.exponential({ base: "1 millis", times: 1 }) })
        const error = yield* Effect.flip(sink.send(alert))
        assert.notInclude(error.message, "s3cret")
        assert.include(error.message, `(POST ${origin})`)
        assert.include(error.message, "ECONNREFUSED")
      }).pipe(Effect.provide(FetchHttpClient.layer)))

    it.live("alerts reach the webhook through layerWebhook", () =>
      Effect.gen(function*() {
        const server = yield* webhookServer
        const received = yield* Queue.unbounded<Alerts.Alert>()
        const changes = yield* Queue.unbounded<StatusChange>()
        const observer: Alerts.Sink = { send: (a) => Queue.offer(received, a) }
        yield* Alerts.make({ changes: Stream.fromQueue(changes) }).pipe(
          Effect.provide(Alerts.layerMany([
            Alerts.layerWebhook({ url: server.url }).pipe(Layer.provide(FetchHttpClient.layer)),
            Layer.succeed(Alerts.AlertSink, observer)
          ]))
        )
        yield* Queue.offer(changes, {
          service: "api",
          from: "Healthy",
          to: "Unhealthy",
          critical: true,
          error: "HTTP 503",
          at: 42,
          consecutiveFailures: 3
        })
        yield* Queue.take(received)
        const request = yield* Queue.take(server.arrived)
        assert.deepStrictEqual(request.body, {
          service: "api",
          from: "Healthy",
          to: "Unhealthy",
          severity: "critical",
          error: "HTTP 503",
          at: 42,
          count: 1,
          suppressed: false
        })
      }))
  })

  describe("options", () => {
    it.effect("bad options fail with PolicyConfigError naming the option", () =>
      Effect.gen(function*() {
        const changes = Stream.empty
        const bad = yield* Effect.flip(Alerts.make({
          changes,
          dedupWindow: -1,
          maintenance: [{ service: "db", from: "1 hour", until: "30 minutes" }]
        }))
        assert.deepStrictEqual(bad.issues.map((i) => i.path), ["dedupWindow"])
        const backwards = yield* Effect.flip(Alerts.make({
          changes,
          maintenance: [{ service: "db", from: "1 hour", until: "30 minutes" }]
        }))
        assert.deepStrictEqual(backwards.issues.map((i) => i.path), ["maintenance[0].until"])
        const url = yield* Effect.flip(
          Alerts.webhook({ url: "hooks.example.com", timeout: 0 }).pipe(Effect.provide(FetchHttpClient.layer))
        )
        assert.deepStrictEqual(url.issues.map((i) => i.path), ["url", "timeout"])
      }))
  })

  it.effect("metrics count sent alerts by severity, folds, suppressions and failures", () =>
    Effect.gen(function*() {
      const { alerts, emit, recorder } = yield* setup({ name: "alerts-metrics" })
      yield* alerts.suppress("search", "1 hour")
      yield* emit("db", "Healthy", "Unhealthy", "refused")
      yield* emit("db", "Healthy", "Unhealthy", "refused")
      yield* emit("search", "Healthy", "Unhealthy", "reindex")
      recorder.state.failing = true
      yield* emit("db", "Unhealthy", "Healthy")
      const by = { policy: "alerts-metrics" }
      assert.deepStrictEqual(
        [
          yield* metricValue("alerts_sent_total", { ...by, severity: "critical" }),
          yield* metricValue("alerts_sent_total", { ...by, severity: "info" }),
          yield* metricValue("alerts_deduplicated_total", by),
          yield* metricValue("alerts_suppressed_total", by),
          yield* metricValue("alerts_sink_failures_total", by)
        ],
        [1, 0, 1, 1, 1]
      )
    }))

  it.effect.prop(
    "every occurrence is reported once: in a delivered count, or still unreported",
    [Schema.Array(Schema.Struct({
      service: Schema.Literals(["a", "b"]),
      to: Schema.Literals(["Healthy", "Degraded", "Unhealthy"]),
      wait: Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 120 })),
      fails: Schema.Boolean
    }))],
    ([steps]) =>
      Effect.gen(function*() {
        const { alerts, emit, recorder, sent } = yield* setup({ dedupWindow: "1 minute" })
        let suppressed = 0
        for (const step of steps) {
          recorder.state.failing = step.fails
          yield* TestClock.adjust(`${step.wait} seconds`)
          if (step.service === "b" && step.wait > 100) {
            yield* alerts.suppress("b", "30 seconds")
          }
          const before = (yield* alerts.snapshot).suppressed
          yield* emit(step.service, step.to === "Healthy" ? "Unhealthy" : "Healthy", step.to, null)
          suppressed += (yield* alerts.snapshot).suppressed - before
        }
        const snapshot = yield* alerts.snapshot
        const raised = steps.length
        assert.strictEqual(snapshot.raised, raised)
        assert.strictEqual(snapshot.suppressed, suppressed)
        assert.strictEqual(
          snapshot.raised,
          snapshot.sent + snapshot.failed + snapshot.deduplicated + snapshot.suppressed
        )
        const delivered = sent.reduce((n, a) => n + a.count, 0)
        const unreported = snapshot.unreported.reduce((n, u) => n + u.count, 0)
        assert.strictEqual(delivered + unreported, raised - suppressed)
      }),
    { arbitrary: { runs: 100 } }
  )

  describe("layer", () => {
    it.effect("alerts on the status changes of the HealthMonitor in context, through the AlertSink in context", () => {
      const recorder = recordingSink()
      const Monitoring = Alerts.layer({ name: "ops" }).pipe(
        Layer.provideMerge(HealthMonitor.layer()),
        Layer.provide(Layer.succeed(Alerts.AlertSink, recorder.sink))
      )
      return Effect.gen(function*() {
        const monitor = yield* HealthMonitor.HealthMonitor
        const health = { up: true }
        yield* monitor.register({
          name: "db",
          check: Effect.suspend(() => health.up ? Effect.void : Effect.fail("refused")),
          interval: "1 second",
          jitter: 0,
          warningThreshold: 1,
          failureThreshold: 1
        })
        health.up = false
        yield* TestClock.adjust("1 second")
        health.up = true
        yield* TestClock.adjust("1 second")
        // The first good check is no alert; the failure and the recovery are.
        assert.deepStrictEqual(recorder.sent.map(brief), [
          "db Healthy->Unhealthy critical x1",
          "db Unhealthy->Healthy info x1"
        ])
        const snapshot = yield* Alerts.Alerts.use((alerts) => alerts.snapshot)
        assert.deepStrictEqual([snapshot.name, snapshot.sent], ["ops", 2])
      }).pipe(Effect.provide(Monitoring))
    })

    it.effect("subscribes before it returns: a change published right after is not missed", () =>
      Effect.gen(function*() {
        const recorder = recordingSink()
        const monitor = yield* HealthMonitor.make()
        yield* Alerts.make({ changes: monitor.changes }).pipe(Effect.provideService(Alerts.AlertSink, recorder.sink))
        // With no jitter the first run happens within `register`, with no chance for another fiber to run first.
        yield* monitor.register({
          name: "db",
          check: Effect.fail("refused"),
          jitter: 0,
          warningThreshold: 1,
          failureThreshold: 1
        })
        yield* TestClock.adjust(0)
        assert.deepStrictEqual(recorder.sent.map(brief), ["db Unknown->Unhealthy critical x1"])
      }))

    it.effect("validates its options when built", () =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(
          Layer.build(Alerts.layer({ dedupWindow: -1 }).pipe(Layer.provide(HealthMonitor.layer())))
        )
        assert.deepStrictEqual(error.issues.map((issue) => issue.path), ["dedupWindow"])
      }))
  })
})
