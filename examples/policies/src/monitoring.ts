import { Alerts, HealthMonitor, Recovery } from "@effect-resilience/core"
import { Effect, Layer } from "effect"

// A worker that stops answering until it is restarted.
const worker = { up: true, restarts: 0 }
const heartbeat = Effect.suspend(() => worker.up ? Effect.void : Effect.fail("no heartbeat"))
const restartWorker = Effect.sync(() => {
  worker.restarts++
  worker.up = true
})

// A monitor, alerts on its changes (to the log, the default sink) and recovery on them: one layer each.
export const Monitoring = Layer.mergeAll(
  Alerts.layer({ dedupWindow: "10 minutes" }),
  Recovery.layer({ rules: [{ service: "worker", action: Recovery.restart(restartWorker) }] })
).pipe(Layer.provideMerge(HealthMonitor.layer()))

export const program = Effect.gen(function*() {
  const monitor = yield* HealthMonitor.HealthMonitor
  yield* monitor.register({
    name: "worker",
    check: heartbeat,
    interval: "10 seconds",
    jitter: 0,
    warningThreshold: 1,
    failureThreshold: 1
  })
  worker.up = false
  // The check at 10s fails: an alert goes out and the worker is restarted. The check at 20s passes.
  yield* Effect.sleep("25 seconds")

  const history = yield* Alerts.Alerts.use((alerts) => alerts.history)
  const { recovered } = yield* Recovery.Recovery.use((recovery) => recovery.snapshot)
  return { alerts: history.map((a) => `${a.severity}: ${a.service} is ${a.to}`), restarts: worker.restarts, recovered }
}).pipe(Effect.provide(Monitoring))

// Effect.runPromise(program).then(console.log) // { alerts: ["critical: worker is Unhealthy", "info: worker is Healthy"], restarts: 1, recovered: 1 }
