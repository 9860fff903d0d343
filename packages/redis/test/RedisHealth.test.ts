import * as Alerts from "@effect-resilience/core/Alerts"
import * as HealthMonitor from "@effect-resilience/core/HealthMonitor"
import * as RedisServer from "@effect-resilience/testing/RedisServer"
import { assert, describe, it } from "@effect/vitest"
import { Clock, Context, Effect, Exit, Fiber, Layer, Schedule, Scope } from "effect"
import * as Redis from "effect/persistence/Redis"
import { TestClock } from "effect/testing"
import * as RedisHealth from "../src/RedisHealth.ts"
import * as RedisStore from "../src/RedisStore.ts"

/** Runs `self` and returns its outcome with how long it took, in real milliseconds. */
const timed = <A, E, R>(self: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const startedAt = yield* Clock.currentTimeMillis
    const result = yield* Effect.result(self)
    return { result, millis: (yield* Clock.currentTimeMillis) - startedAt }
  })

/** Retries `self` every 50 ms for up to 5 s: node-redis reconnects in the background after a restart. */
const eventually = <A, E, R>(self: Effect.Effect<A, E, R>) =>
  Effect.retry(self, Schedule.spaced("50 millis").pipe(Schedule.upTo({ duration: "5 seconds" })))

// A long timeout: a check that fails "at once" fails well under it, however loaded the machine.
const clientOf = (server: RedisServer.RedisServer) => RedisStore.layer({ url: server.url, timeout: "5 seconds" })

/** A Redis that answers `PING` with `reply` after 40 ms. */
const slowRedis = (reply: Effect.Effect<unknown, Redis.RedisError>) =>
  Redis.Redis.of({
    send: () => Effect.andThen(Effect.sleep("40 millis"), reply) as never,
    subscribe: () => Effect.die("unused"),
    eval: () => () => Effect.die("unused"),
    reserve: Effect.die("unused")
  })

describe("RedisHealth", () => {
  it.effect("its check leaves quietly when its layer is released (the process stopping): no alert", () =>
    Effect.gen(function*() {
      const sent: Array<Alerts.Alert> = []
      const sink = Layer.succeed(Alerts.AlertSink, { send: (alert) => Effect.sync(() => void sent.push(alert)) })
      const pong = Layer.succeed(
        Redis.Redis,
        Redis.Redis.of({
          send: () => Effect.succeed("PONG") as never,
          subscribe: () => Effect.die("unused"),
          eval: () => () => Effect.die("unused"),
          reserve: Effect.die("unused")
        })
      )
      // As the agent service composes them: the app's layers on top of alerting, on top of the monitor.
      const monitoring = RedisHealth.layer({ interval: "10 seconds", jitter: 0 }).pipe(
        Layer.provideMerge(Alerts.layer().pipe(Layer.provide(sink))),
        Layer.provideMerge(HealthMonitor.layer()),
        Layer.provide(pong)
      )
      const scope = yield* Scope.make()
      const context = yield* Layer.buildWithScope(monitoring, scope)
      yield* TestClock.adjust("1 second")
      assert.strictEqual((yield* Context.get(context, HealthMonitor.HealthMonitor).report).status, "Healthy")
      yield* Scope.close(scope, Exit.void)
      yield* TestClock.adjust("1 second")
      assert.deepStrictEqual(sent, [])
    }))

  it.live(
    "passes with its latency, fails at once while the server is killed, passes after a restart",
    () =>
      Effect.gen(function*() {
        const server = yield* RedisServer.make()
        yield* Effect.gen(function*() {
          const passed = yield* timed(RedisHealth.check)
          assert(passed.result._tag === "Success")
          // A real round trip takes some time, and no more than the whole call did.
          assert.isAbove(passed.result.success.latencyMillis, 0)
          assert.isAtMost(passed.result.success.latencyMillis, passed.millis + 1)

          yield* server.kill
          const down = yield* timed(RedisHealth.check)
          assert(down.result._tag === "Failure")
          assert.strictEqual(down.result.failure._tag, "RedisHealthCheckFailed")
          assert.match(
            down.result.failure.message,
            /^Redis health check \(PING\) failed: (ClientOfflineError: The client is offline|SocketClosedUnexpectedlyError)/
          )
          assert.instanceOf(down.result.failure.cause, Redis.RedisError)
          assert.isBelow(down.millis, 2_000)

          yield* server.restart
          const up = yield* timed(eventually(RedisHealth.check))
          assert.strictEqual(up.result._tag, "Success")
          assert.isBelow(up.millis, 5_000)
        }).pipe(Effect.provide(clientOf(server)))
      }).pipe(Effect.scoped),
    15_000
  )

  it.effect("the latency is the time Redis took to answer, passing or failing", () =>
    Effect.gen(function*() {
      const passing = yield* Effect.forkChild(
        Effect.provideService(RedisHealth.check, Redis.Redis, slowRedis(Effect.succeed("PONG")))
      )
      yield* TestClock.adjust("40 millis")
      assert.deepStrictEqual(yield* Fiber.join(passing), { latencyMillis: 40 })

      const failing = yield* Effect.forkChild(Effect.flip(
        Effect.provideService(
          RedisHealth.check,
          Redis.Redis,
          slowRedis(Effect.fail(new Redis.RedisError({ cause: "down" })))
        )
      ))
      yield* TestClock.adjust("40 millis")
      assert.strictEqual((yield* Fiber.join(failing)).latencyMillis, 40)
    }))

  // node-redis' command timeout only covers the wait to be written: once Redis had taken the PING and never answered
  // (a stopped or overloaded server), the check waited for ever.
  it.live(
    "a server that takes the PING and never answers fails the check after the store's timeout",
    () =>
      Effect.gen(function*() {
        const server = yield* RedisServer.make()
        const proxy = yield* RedisServer.makeProxy(server)
        const context = yield* Layer.build(RedisStore.layer({ url: proxy.url, timeout: "300 millis" }))
        yield* proxy.holdRepliesAfter("PING")
        const silent = yield* timed(Effect.provide(RedisHealth.check, context).pipe(Effect.timeout("5 seconds")))
        assert(silent.result._tag === "Failure")
        assert.strictEqual(silent.result.failure._tag, "RedisHealthCheckFailed")
        assert.strictEqual(
          silent.result.failure.message,
          "Redis health check (PING) failed: ReplyTimeoutError: PING got no reply within 300 ms"
        )
        assert.isBelow(silent.millis, 2_000)
        yield* proxy.release
      }).pipe(Effect.scoped),
    10_000
  )

  it.live("a reply other than PONG fails the check", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(RedisHealth.check)
      assert.strictEqual(error.message, "Redis health check (PING) failed: expected PONG, got \"LOADING\"")
      assert.isUndefined(error.cause)
    }).pipe(
      Effect.provideService(
        Redis.Redis,
        Redis.Redis.of({
          send: () => Effect.succeed("LOADING" as never),
          subscribe: () => Effect.die("unused"),
          eval: () => () => Effect.die("unused"),
          reserve: Effect.die("unused")
        })
      )
    ), 10_000)

  it.live(
    "through HealthMonitor: Healthy, Unhealthy while killed, Healthy again; unregistered with the layer",
    () =>
      Effect.gen(function*() {
        const server = yield* RedisServer.make()
        const monitor = yield* HealthMonitor.make()
        yield* Effect.gen(function*() {
          // A long interval: the runs below are the ones that count.
          yield* Layer.build(
            RedisHealth.layer({
              name: "cache",
              interval: "1 minute",
              jitter: 0,
              warningThreshold: 1,
              failureThreshold: 1
            })
          )
          const healthy = yield* monitor.runNow("cache")
          assert.strictEqual(healthy.status, "Healthy")
          assert.isNotNull(healthy.responseTimeMillis)

          yield* server.kill
          const down = yield* timed(monitor.runNow("cache"))
          assert(down.result._tag === "Success")
          assert.strictEqual(down.result.success.status, "Unhealthy")
          assert.include(down.result.success.lastError, "Redis health check (PING) failed")
          assert.isBelow(down.millis, 2_000)

          yield* server.restart
          const back = yield* eventually(
            Effect.flatMap(
              monitor.runNow("cache"),
              (state) => state.status === "Healthy" ? Effect.succeed(state) : Effect.fail(state)
            )
          )
          assert.strictEqual(back.status, "Healthy")
        }).pipe(
          Effect.scoped,
          Effect.provide(clientOf(server)),
          Effect.provideService(HealthMonitor.HealthMonitor, monitor)
        )
        const gone = yield* Effect.flip(monitor.state("cache"))
        assert.strictEqual(gone._tag, "CheckNotFound")
      }).pipe(Effect.scoped),
    15_000
  )

  it.live("invalid monitor options fail the layer with PolicyConfigError", () =>
    Effect.gen(function*() {
      const monitor = yield* HealthMonitor.make()
      const error = yield* Effect.flip(
        Layer.build(RedisHealth.layer({ interval: "never ever" as never })).pipe(
          Effect.scoped,
          Effect.provideService(HealthMonitor.HealthMonitor, monitor),
          Effect.provideService(Redis.Redis, Redis.Redis.of({} as never))
        )
      )
      assert.strictEqual(error._tag, "PolicyConfigError")
    }).pipe(Effect.scoped), 10_000)
})
