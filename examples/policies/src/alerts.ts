import { Alerts, type HealthMonitor } from "@effect-resilience/core"
import { Clock, Effect, Layer, Queue, Stream } from "effect"

// One chat message per alert: "[critical] db is Unhealthy (x3)".
const message = (alert: Alerts.Alert) =>
  `[${alert.severity}] ${alert.service} is ${alert.to}${alert.count > 1 ? ` (x${alert.count})` : ""}`

export const program = Effect.gen(function*() {
  // A chat channel as the alert sink.
  const channel: Array<string> = []
  const ChatSink = Layer.succeed(Alerts.AlertSink, {
    send: (alert) => Effect.sync(() => void channel.push(message(alert)))
  })

  // Status changes, as a health monitor publishes them.
  const changes = yield* Queue.unbounded<HealthMonitor.StatusChange>()
  const publish = (
    service: string,
    from: HealthMonitor.Status,
    to: HealthMonitor.Status,
    error: string | null = null
  ) =>
    Effect.flatMap(Clock.currentTimeMillis, (at) =>
      Queue.offer(changes, {
        service,
        from,
        to,
        critical: true,
        error,
        at,
        consecutiveFailures: error === null ? 0 : 3
      }))

  const alerts = yield* Alerts.make({
    changes: Stream.fromQueue(changes),
    dedupWindow: "10 minutes",
    // Search is being reindexed for the next hour: its alerts are recorded, not sent.
    maintenance: [{ service: "search", until: "1 hour" }]
  }).pipe(Effect.provide(ChatSink))

  // The database flaps three times in three minutes: one alert each way, the other four folded.
  for (let i = 0; i < 3; i++) {
    yield* publish("db", "Healthy", "Unhealthy", "connection refused")
    yield* Effect.sleep("30 seconds")
    yield* publish("db", "Unhealthy", "Healthy")
    yield* Effect.sleep("30 seconds")
  }
  yield* publish("search", "Healthy", "Degraded", "slow queries")
  // After the ten-minute window, the next failure goes out and reports the two folded before it.
  yield* Effect.sleep("10 minutes")
  yield* publish("db", "Healthy", "Unhealthy", "connection refused")
  yield* Effect.sleep("1 second")

  const { deduplicated, suppressed } = yield* alerts.snapshot
  return { channel, deduplicated, suppressed }
}).pipe(Effect.scoped)

// Effect.runPromise(program).then(console.log) // { channel: ["[critical] db is Unhealthy", "[info] db is Healthy", "[critical] db is Unhealthy (x3)"], deduplicated: 4, suppressed: 1 }
