import { assert, describe, it } from "@effect/vitest"
import { Data, Effect, Schema } from "effect"
import { FetchHttpClient } from "effect/http"
import * as fs from "node:fs"
import * as http from "node:http"
import type { AddressInfo } from "node:net"
import * as os from "node:os"
import * as CircuitBreaker from "../src/CircuitBreaker.ts"
import * as HealthCheck from "../src/HealthCheck.ts"
import * as HealthMonitor from "../src/HealthMonitor.ts"

class StatfsError extends Data.TaggedError("StatfsError")<{ readonly cause: unknown }> {}

/**
 * A real HTTP server on 127.0.0.1 and a free port: `/health` answers with `status()`, `/slow` too but after
 * `slowMillis`, `/hang` never answers. Closed with the scope.
 */
const server = (status: () => number) =>
  Effect.acquireRelease(
    Effect.callback<http.Server>((resume) => {
      const s = http.createServer((request, response) => {
        if (request.url === "/hang") return
        const answer = () => {
          response.writeHead(status(), { "content-type": "text/plain" })
          response.end("ok")
        }
        if (request.url === "/slow") setTimeout(answer, slowMillis)
        else answer()
      })
      s.listen(0, "127.0.0.1", () => resume(Effect.succeed(s)))
    }),
    (s) =>
      Effect.callback<void>((resume) => {
        s.closeAllConnections()
        s.close(() => resume(Effect.void))
      })
  ).pipe(Effect.map((s) => `http://127.0.0.1:${(s.address() as AddressInfo).port}`))

/** A disk at 20% (warning) and 10% (critical) levels whose usage says `free` of `total`. */
const disk = (free: number, total = 100) =>
  HealthCheck.diskSpace({
    path: "/data",
    warningFreeShare: 0.2,
    criticalFreeShare: 0.1,
    usage: () => Effect.succeed({ free, total })
  })

const usage = (free: number) => () => Effect.succeed({ free, total: 1000 })

const slowMillis = 50

const failureOf = <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.flip(effect)

describe("HealthCheck", () => {
  describe("http", () => {
    it.live("passes with the status and latency of a 2xx answer, fails with HealthCheckFailed on a 503", () =>
      Effect.gen(function*() {
        let status = 200
        const base = yield* server(() => status)
        const check = HealthCheck.http({ url: `${base}/slow` })
        const ok = yield* check
        assert.strictEqual(ok.status, 200)
        // The server answers after 50ms: the latency covers the wait, and is no wild figure.
        assert.isAtLeast(ok.latencyMillis, slowMillis)
        assert.isBelow(ok.latencyMillis, 5_000)

        status = 503
        const error = yield* failureOf(check)
        assert.instanceOf(error, HealthCheck.HealthCheckFailed)
        assert.strictEqual(error._tag, "HealthCheckFailed")
        if (error._tag !== "HealthCheckFailed") return
        assert.strictEqual(error.check, `GET ${base}/slow`)
        assert.strictEqual(error.message, `GET ${base}/slow returned 503, expected 2xx`)
        assert.isAtLeast(error.latencyMillis ?? -1, slowMillis)
        assert.isBelow(error.latencyMillis ?? Infinity, 5_000)
      }).pipe(Effect.provide(FetchHttpClient.layer)))

    it.live("expectStatus takes a status or a predicate", () =>
      Effect.gen(function*() {
        const base = yield* server(() => 204)
        const url = `${base}/health`
        assert.strictEqual((yield* HealthCheck.http({ url, expectStatus: 204 })).status, 204)
        assert.strictEqual((yield* HealthCheck.http({ url, expectStatus: (s) => s < 300 })).status, 204)
        const wrong = yield* failureOf(HealthCheck.http({ url, expectStatus: 200 }))
        assert.strictEqual(wrong.message, `GET ${url} returned 204, expected 200`)
        const rejected = yield* failureOf(HealthCheck.http({ url, expectStatus: (s) => s === 200 }))
        assert.strictEqual(rejected.message, `GET ${url} returned 204, expected a status accepted by expectStatus`)
      }).pipe(Effect.provide(FetchHttpClient.layer)))

    it.live("a refused connection and a timeout fail with HealthCheckFailed", () =>
      Effect.gen(function*() {
        const base = yield* server(() => 200)
        const slow = yield* failureOf(HealthCheck.http({ url: `${base}/hang`, timeout: "100 millis" }))
        assert.strictEqual(slow._tag, "HealthCheckFailed")
        assert.strictEqual(slow.message, `GET ${base}/hang timed out after 100ms`)
        if (slow._tag === "HealthCheckFailed") assert.isAtLeast(slow.latencyMillis ?? 0, 100)

        // A port nobody listens on: bind one, then close it.
        const closed = yield* Effect.scoped(server(() => 200))
        const refused = yield* failureOf(HealthCheck.http({ url: `${closed}/health` }))
        assert.strictEqual(refused._tag, "HealthCheckFailed")
        assert.match(refused.message, /^GET http:\/\/127\.0\.0\.1:\d+\/health failed: TransportError: .*ECONNREFUSED/)
      }).pipe(Effect.provide(FetchHttpClient.layer)))

    it.live("a monitor follows a real endpoint: Healthy on 200, Degraded then Unhealthy on 503", () =>
      Effect.gen(function*() {
        let status = 200
        const base = yield* server(() => status)
        const monitor = yield* HealthMonitor.make()
        yield* monitor.register({
          name: "api",
          check: HealthCheck.http({ url: `${base}/slow` }),
          interval: "1 hour",
          jitter: 0
        })
        assert.strictEqual((yield* monitor.runNow("api")).status, "Healthy")
        status = 503
        yield* monitor.runNow("api")
        assert.strictEqual((yield* monitor.runNow("api")).status, "Degraded")
        const state = yield* monitor.runNow("api")
        assert.strictEqual(state.status, "Unhealthy")
        assert.strictEqual(state.lastError, `GET ${base}/slow returned 503, expected 2xx`)
        assert.isAtLeast(state.responseTimeMillis ?? -1, slowMillis)
      }).pipe(Effect.provide(FetchHttpClient.layer)))

    it.effect("invalid options fail the check with PolicyConfigError", () =>
      Effect.gen(function*() {
        const error = yield* failureOf(HealthCheck.http({ url: "", expectStatus: 42, timeout: -1 }))
        assert.strictEqual(error._tag, "PolicyConfigError")
        if (error._tag !== "PolicyConfigError") return
        assert.deepStrictEqual(error.issues.map((issue) => issue.path), ["url", "expectStatus", "timeout"])
      }).pipe(Effect.provide(FetchHttpClient.layer)))
  })

  describe("circuitBreaker", () => {
    it.effect("fails while Open or ForcedOpen, warns while HalfOpen, passes otherwise", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({ name: "payments" })
        const check = HealthCheck.circuitBreaker(breaker)
        assert.strictEqual(yield* check, "Closed")

        yield* CircuitBreaker.setState(breaker, "Open")
        const open = yield* failureOf(check)
        assert.strictEqual(open._tag, "HealthCheckFailed")
        assert.strictEqual(open.message, "circuit breaker \"payments\" is open")

        yield* CircuitBreaker.setState(breaker, "HalfOpen")
        const half = yield* failureOf(check)
        assert.instanceOf(half, HealthCheck.Warning)
        assert.strictEqual(half.message, "circuit breaker \"payments\" is half-open")

        yield* breaker.forceOpen()
        assert.strictEqual((yield* failureOf(check)).message, "circuit breaker \"payments\" is forced open")
        yield* breaker.disable()
        assert.strictEqual(yield* check, "Disabled")

        yield* breaker.reset()
        yield* CircuitBreaker.setState(breaker, "Open", { key: "eu" })
        assert.strictEqual(yield* check, "Closed")
        const keyed = yield* failureOf(HealthCheck.circuitBreaker(breaker, "eu"))
        assert.strictEqual(keyed.message, "circuit breaker \"payments\" (key \"eu\") is open")
      }))

    it.effect("in a monitor: Open makes the check Unhealthy, HalfOpen keeps it so, Closed brings it back", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({ name: "payments" })
        const monitor = yield* HealthMonitor.make()
        yield* monitor.register({
          name: "payments",
          check: HealthCheck.circuitBreaker(breaker),
          interval: "1 hour",
          jitter: 0,
          warningThreshold: 1,
          failureThreshold: 1
        })
        assert.strictEqual((yield* monitor.state("payments")).status, "Healthy")
        yield* CircuitBreaker.setState(breaker, "Open")
        assert.strictEqual((yield* monitor.runNow("payments")).status, "Unhealthy")
        yield* CircuitBreaker.setState(breaker, "HalfOpen")
        assert.strictEqual((yield* monitor.runNow("payments")).status, "Unhealthy")
        yield* breaker.reset()
        assert.strictEqual((yield* monitor.runNow("payments")).status, "Healthy")
        // HalfOpen from Healthy: Degraded, with no failure counted.
        yield* CircuitBreaker.setState(breaker, "HalfOpen")
        const state = yield* monitor.runNow("payments")
        assert.strictEqual(state.status, "Degraded")
        assert.strictEqual(state.totalFailures, 1)
      }))
  })

  describe("diskSpace", () => {
    it.effect("passes at or above the warning level, warns below it, fails below the critical level", () =>
      Effect.gen(function*() {
        assert.deepStrictEqual(yield* disk(50), { path: "/data", free: 50, total: 100, freeShare: 0.5 })
        assert.strictEqual((yield* disk(20)).freeShare, 0.2)
        const warning = yield* failureOf(disk(15))
        assert.instanceOf(warning, HealthCheck.Warning)
        assert.strictEqual(warning.message, "disk /data: 15% free, below 20%")
        assert.instanceOf(yield* failureOf(disk(10)), HealthCheck.Warning)
        const critical = yield* failureOf(disk(5))
        assert.instanceOf(critical, HealthCheck.HealthCheckFailed)
        assert.strictEqual(critical.message, "disk /data: 5% free, below the critical 10%")
        assert.strictEqual((yield* failureOf(disk(0, 0))).message, "disk /data: usage reported 0 free of 0")
      }))

    it.effect("defaults to 20% and 10%; a failure of usage fails the check as it is; options are validated", () =>
      Effect.gen(function*() {
        assert.instanceOf(
          yield* failureOf(HealthCheck.diskSpace({ path: "/", usage: usage(199) })),
          HealthCheck.Warning
        )
        assert.instanceOf(
          yield* failureOf(HealthCheck.diskSpace({ path: "/", usage: usage(99) })),
          HealthCheck.HealthCheckFailed
        )
        const broken = yield* failureOf(HealthCheck.diskSpace({
          path: "/",
          usage: () => Effect.fail(new StatfsError({ cause: "EACCES" }))
        }))
        assert.strictEqual(broken._tag, "StatfsError")
        const invalid = yield* failureOf(HealthCheck.diskSpace({
          path: "/",
          warningFreeShare: 0.1,
          criticalFreeShare: 0.3,
          usage: usage(500)
        }))
        assert.strictEqual(invalid._tag, "PolicyConfigError")
        if (invalid._tag !== "PolicyConfigError") return
        assert.deepStrictEqual(invalid.issues, [{
          path: "criticalFreeShare",
          message: "Expected at most warningFreeShare (0.1), got 0.3"
        }])
      }))

    it.live("reads a real file system with the Node one-liner", () =>
      Effect.gen(function*() {
        const result = yield* HealthCheck.diskSpace({
          path: os.tmpdir(),
          warningFreeShare: 0,
          criticalFreeShare: 0,
          usage: (path) =>
            Effect.tryPromise({
              try: () => fs.promises.statfs(path),
              catch: (cause) => new StatfsError({ cause })
            }).pipe(Effect.map((s) => ({ free: s.bavail * s.bsize, total: s.blocks * s.bsize })))
        })
        assert.isAbove(result.total, 0)
        assert.isAtLeast(result.freeShare, 0)
        assert.isAtMost(result.freeShare, 1)
      }))
  })

  describe("errors", () => {
    it.effect("HealthCheckFailed and Warning round-trip through their Schemas", () =>
      Effect.gen(function*() {
        const failed = new HealthCheck.HealthCheckFailed({ check: "GET /", message: "down", latencyMillis: 12 })
        const encoded = yield* Schema.encodeEffect(HealthCheck.HealthCheckFailed)(failed)
        assert.deepStrictEqual(encoded, {
          _tag: "HealthCheckFailed",
          check: "GET /",
          message: "down",
          latencyMillis: 12
        })
        const decoded = yield* Schema.decodeUnknownEffect(HealthCheck.HealthCheckFailed)(encoded)
        assert.strictEqual(decoded.message, "down")
        const warning = yield* Schema.decodeUnknownEffect(HealthCheck.Warning)({ _tag: "Warning", message: "slow" })
        assert.strictEqual(warning.message, "slow")
      }))
  })
})
