import * as HealthMonitor from "@effect-resilience/core/HealthMonitor"
import { NodeServices } from "@effect/platform-node"
import { PgClient } from "@effect/sql-pg"
import { assert, describe, it } from "@effect/vitest"
import { Clock, Effect, Layer } from "effect"
import { isSqlError } from "effect/sql/SqlError"
import * as PgHealth from "../src/PgHealth.ts"
import * as PgServer from "./PgServer.ts"

// The machine's PostgreSQL: trust auth, database `test`.
const local = PgClient.layer({
  host: "127.0.0.1",
  port: 5432,
  username: "postgres",
  database: "test",
  connectTimeout: "2 seconds"
})

const clientOf = (port: number) =>
  PgClient.layer({
    host: "127.0.0.1",
    port,
    username: "postgres",
    database: "postgres",
    connectTimeout: "1 second"
  })

/** Runs `self` and returns its outcome with how long it took, in real milliseconds. */
const timed = <A, E, R>(self: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const startedAt = yield* Clock.currentTimeMillis
    const result = yield* Effect.result(self)
    return { result, millis: (yield* Clock.currentTimeMillis) - startedAt }
  })

describe("PgHealth", () => {
  describe("against the local server (127.0.0.1:5432)", () => {
    it.live(
      "passes with its latency: the time the server took, and no more than the whole call",
      () =>
        Effect.gen(function*() {
          const first = yield* timed(PgHealth.check())
          assert(first.result._tag === "Success")
          assert.isAbove(first.result.success.latencyMillis, 0)
          assert.isAtMost(first.result.success.latencyMillis, first.millis + 1)
          // A query that takes 50 ms on the server: the latency covers it.
          const slow = yield* timed(PgHealth.check({ query: "SELECT pg_sleep(0.05)" }))
          assert(slow.result._tag === "Success")
          assert.isAtLeast(slow.result.success.latencyMillis, 50)
          assert.isAtMost(slow.result.success.latencyMillis, slow.millis + 1)
        }).pipe(Effect.provide(local)),
      10_000
    )

    it.live(
      "a broken query fails with PgHealthCheckFailed, its SQLSTATE and the SqlError",
      () =>
        Effect.gen(function*() {
          const error = yield* Effect.flip(PgHealth.check({ query: "SELECT * FROM health_pg_no_such_table" }))
          assert.strictEqual(error._tag, "PgHealthCheckFailed")
          assert(error._tag === "PgHealthCheckFailed")
          assert.strictEqual(error.code, "42P01")
          assert.strictEqual(
            error.message,
            "PostgreSQL health check (SELECT * FROM health_pg_no_such_table) failed: " +
              "SqlSyntaxError: relation \"health_pg_no_such_table\" does not exist (42P01)"
          )
          assert.isAbove(error.latencyMillis, 0)
          assert.isTrue(isSqlError(error.cause))
        }).pipe(Effect.provide(local)),
      10_000
    )

    it.live("an empty query fails every run with PolicyConfigError", () =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(PgHealth.check({ query: "  " }))
        assert(error._tag === "PolicyConfigError")
        assert.deepStrictEqual(error.issues, [{
          path: "query",
          message: "Expected a non-empty SQL statement, got \"  \""
        }])
        // The layer checks it before it registers anything, under the check's name.
        const layerError = yield* Effect.flip(
          Layer.build(PgHealth.layer({ name: "orders-db", query: 3 as never })).pipe(
            Effect.scoped,
            Effect.provideService(HealthMonitor.HealthMonitor, HealthMonitor.HealthMonitor.of({} as never))
          )
        )
        assert.strictEqual(layerError.policy, "orders-db")
        assert.deepStrictEqual(layerError.issues, [{ path: "query", message: "Expected string, got 3" }])
      }).pipe(Effect.provide(local)), 10_000)
  })

  it.live("a refused connection fails at once with ECONNREFUSED", () =>
    Effect.gen(function*() {
      const port = yield* PgServer.freePort
      const { millis, result } = yield* timed(PgHealth.check().pipe(Effect.provide(clientOf(port))))
      assert(result._tag === "Failure" && result.failure._tag === "PgHealthCheckFailed")
      assert.strictEqual(result.failure.code, "ECONNREFUSED")
      assert.include(result.failure.message, `ConnectionError: connect ECONNREFUSED 127.0.0.1:${port}`)
      assert.isBelow(millis, 1_000)
    }), 10_000)

  describe("against a server of our own", () => {
    it.live(
      "fails while the server is killed and passes again once it is back, on the same client",
      () =>
        Effect.gen(function*() {
          const server = yield* PgServer.make
          yield* Effect.gen(function*() {
            assert.isAbove((yield* PgHealth.check()).latencyMillis, 0)

            yield* server.kill
            // The pooled connection's socket closed with the server: the pool retires it and tries a fresh one.
            const down = yield* timed(PgHealth.check())
            assert(down.result._tag === "Failure" && down.result.failure._tag === "PgHealthCheckFailed")
            assert.strictEqual(down.result.failure.code, "ECONNREFUSED")
            assert.isBelow(down.millis, 1_000)

            yield* server.start
            const up = yield* timed(PgHealth.check())
            assert.strictEqual(up.result._tag, "Success")
            assert.isBelow(up.millis, 1_000)
          }).pipe(Effect.provide(clientOf(server.port)))
        }).pipe(Effect.provide(NodeServices.layer)),
      20_000
    )

    it.live(
      "through HealthMonitor: Healthy, Unhealthy while killed, Healthy again; unregistered with the layer",
      () =>
        Effect.gen(function*() {
          const server = yield* PgServer.make
          const monitor = yield* HealthMonitor.make()
          yield* Effect.gen(function*() {
            // A long interval: the runs below are the ones that count.
            const checks = PgHealth.layer({ interval: "1 minute", jitter: 0, warningThreshold: 1, failureThreshold: 1 })
            yield* Layer.build(checks)
            assert.strictEqual((yield* monitor.runNow("postgres")).status, "Healthy")

            yield* server.kill
            const down = yield* monitor.runNow("postgres")
            assert.strictEqual(down.status, "Unhealthy")
            assert.include(down.lastError, "PostgreSQL health check (SELECT 1) failed: ConnectionError")

            yield* server.start
            assert.strictEqual((yield* monitor.runNow("postgres")).status, "Healthy")
          }).pipe(
            Effect.scoped,
            Effect.provide(clientOf(server.port)),
            Effect.provideService(HealthMonitor.HealthMonitor, monitor)
          )
          const gone = yield* Effect.flip(monitor.state("postgres"))
          assert.strictEqual(gone._tag, "CheckNotFound")
        }).pipe(Effect.provide(NodeServices.layer)),
      20_000
    )

    it.live(
      "a hung server fails the check at the monitor's timeout, not 5 s later, and recovers when it answers",
      () =>
        Effect.gen(function*() {
          const server = yield* PgServer.make
          const monitor = yield* HealthMonitor.make()
          yield* Effect.gen(function*() {
            yield* monitor.register({
              name: "postgres",
              check: PgHealth.check(),
              interval: "1 minute",
              jitter: 0,
              timeout: "500 millis",
              warningThreshold: 1,
              failureThreshold: 1
            })
            assert.strictEqual((yield* monitor.runNow("postgres")).status, "Healthy")

            const hung = yield* Effect.scoped(Effect.gen(function*() {
              yield* server.freeze
              return yield* timed(monitor.runNow("postgres"))
            }))
            assert(hung.result._tag === "Success")
            assert.strictEqual(hung.result.success.status, "Unhealthy")
            assert.strictEqual(hung.result.success.lastError, "timed out after 500ms")
            // `@effect/sql-pg` alone would hold an interrupted query for its drain (a cancel, then up to 5 s).
            assert.isBelow(hung.millis, 1_500)

            const back = yield* timed(monitor.runNow("postgres"))
            assert(back.result._tag === "Success")
            assert.strictEqual(back.result.success.status, "Healthy")
          }).pipe(Effect.provide(clientOf(server.port)))
        }).pipe(Effect.provide(NodeServices.layer)),
      20_000
    )
  })
})
