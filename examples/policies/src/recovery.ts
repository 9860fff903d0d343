import { type HealthMonitor, Recovery } from "@effect-resilience/core"
import { Clock, Effect, Queue, Stream } from "effect"

export const program = Effect.gen(function*() {
  // Status changes, as a health monitor publishes them.
  const changes = yield* Queue.unbounded<HealthMonitor.StatusChange>()
  const publish = (service: string, from: HealthMonitor.Status, to: HealthMonitor.Status) =>
    Effect.flatMap(Clock.currentTimeMillis, (at) =>
      Queue.offer(changes, {
        service,
        from,
        to,
        critical: true,
        error: to === "Healthy" ? null : "no heartbeat",
        at,
        consecutiveFailures: to === "Healthy" ? 0 : 3
      }))

  let restarts = 0
  const recovery = yield* Recovery.make({
    changes: Stream.fromQueue(changes),
    rules: [{
      service: "worker",
      // Restart when the worker becomes Unhealthy; again after 10s, then 20s, while it stays down.
      action: Recovery.restart(Effect.sync(() => restarts++)),
      maxAttempts: 3,
      backoff: { base: "10 seconds", factor: 2 },
      // Three restarts in vain: page someone, and stop restarting until the worker is back.
      escalation: Effect.logError("paging on-call: worker still down after 3 restarts"),
      // A worker that keeps dying is not restarted more than once every 15 minutes.
      cooldown: "15 minutes"
    }],
    onRecovered: (service, millis) => Effect.log(`${service} recovered in ${millis / 1000}s`)
  })

  // The worker hangs and is restarted at once. That does not help; the second restart, at 0:10, does:
  // the monitor sees it healthy at 0:25.
  yield* publish("worker", "Healthy", "Unhealthy")
  yield* Effect.sleep("25 seconds")
  yield* publish("worker", "Unhealthy", "Healthy")
  // It hangs again at 5:25, within the cooldown: the next restart waits until 15:25.
  yield* Effect.sleep("5 minutes")
  yield* publish("worker", "Healthy", "Unhealthy")
  yield* Effect.sleep("1 second")

  const { averageRecoveryMillis, services, successes } = yield* recovery.snapshot
  return { restarts, successes, averageRecoveryMillis, worker: services[0].phase }
}).pipe(Effect.scoped)

// Effect.runPromise(program).then(console.log) // { restarts: 2, successes: 1, averageRecoveryMillis: 25000, worker: "Deferred" }
