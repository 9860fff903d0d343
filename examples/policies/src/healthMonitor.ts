import { HealthCheck, HealthMonitor } from "@effect-resilience/core"
import { Data, Effect, Stream } from "effect"
import * as fs from "node:fs"

class DatabaseDown extends Data.TaggedError("DatabaseDown")<{ readonly message: string }> {}

// Stands in for `SELECT 1`: the database goes down 15 seconds in and comes back 40 seconds later.
const database = { up: true }
const ping = Effect.suspend(() =>
  database.up ? Effect.void : Effect.fail(new DatabaseDown({ message: "connection refused" }))
)

// Free space of a file system, from Node's statfs.
const statfs = (path: string) =>
  Effect.tryPromise(() => fs.promises.statfs(path)).pipe(
    Effect.map((s) => ({ free: s.bavail * s.bsize, total: s.blocks * s.bsize }))
  )

export const program = Effect.gen(function*() {
  const monitor = yield* HealthMonitor.HealthMonitor
  // What an alert sink would see: every change of the database's status. Started at once, so that it is
  // subscribed before the first check runs.
  const alerts: Array<string> = []
  yield* monitor.changes.pipe(
    Stream.filter((change) => change.service === "db"),
    Stream.runForEach((change) => Effect.sync(() => alerts.push(`${change.from} -> ${change.to}`))),
    Effect.forkScoped({ startImmediately: true })
  )

  // Every 10 seconds (no jitter, to keep the timeline easy to follow): Degraded after 2 failures in a row,
  // Unhealthy after 3, Healthy again after one success.
  yield* monitor.register({ name: "db", check: ping, interval: "10 seconds", timeout: "2 seconds", jitter: 0 })
  // Below 20% free the disk warns, below 10% it fails. Not critical: a full disk degrades the service but does
  // not make it Unhealthy.
  yield* monitor.register({
    name: "disk",
    check: HealthCheck.diskSpace({ path: "/", warningFreeShare: 0.2, criticalFreeShare: 0.1, usage: statfs }),
    interval: "1 minute",
    critical: false
  })

  yield* Effect.sleep("15 seconds")
  database.up = false // the checks at 20s, 30s, 40s and 50s fail
  yield* Effect.sleep("40 seconds")
  database.up = true // the check at 60s passes
  yield* Effect.sleep("10 seconds")

  const db = yield* monitor.state("db")
  return { alerts, lastError: db.lastError, detectionMillis: db.detectionMillis, recoveryMillis: db.recoveryMillis }
}).pipe(Effect.scoped, Effect.provide(HealthMonitor.layer()))

// Effect.runPromise(program).then(console.log) // { alerts: ["Unknown -> Healthy", "Healthy -> Degraded", "Degraded -> Unhealthy", "Unhealthy -> Healthy"], lastError: "connection refused", detectionMillis: 20000, recoveryMillis: 20000 }
