import * as RedisServer from "@effect-resilience/testing/RedisServer"
import { assert, describe, it } from "@effect/vitest"
import { Clock, Deferred, Effect, Fiber, Layer, Logger, Option, Schedule, Stream } from "effect"
import * as Redis from "effect/persistence/Redis"
import { createServer } from "node:net"
import * as RedisSentinel from "../src/RedisSentinel.ts"
import * as RedisStore from "../src/RedisStore.ts"
import { metricValue } from "./metrics.ts"
import { publishUntilReceived } from "./pubsub.ts"

const masterName = "mymaster"

const services = Effect.all({ store: RedisStore.RedisStore, redis: Redis.Redis, sentinel: RedisSentinel.RedisSentinel })

/** Builds `layer` in the enclosing scope (`Effect.provide` would close it as soon as `services` returned). */
const servicesOf = <E>(
  layer: Layer.Layer<RedisStore.RedisStore | Redis.Redis | RedisSentinel.RedisSentinel, E>
) => Effect.flatMap(Layer.build(layer), (context) => Effect.provide(services, context))

/** Retries `self` every 50 ms for up to 10 s. */
const eventually = <A, E, R>(self: Effect.Effect<A, E, R>) =>
  Effect.retry(self, Schedule.spaced("50 millis").pipe(Schedule.upTo({ duration: "10 seconds" })))

// Adds a logger that keeps each message's text in `logged`.
const capturingLog = (logged: Array<string>) =>
  Logger.layer([Logger.make(({ message }) => {
    logged.push((Array.isArray(message) ? message : [message]).map(String).join(" "))
  })], { mergeWithExisting: true })

/**
 * A store over a real sentinel watching `watchedPort` and an "announcer": a plain server on which the test publishes
 * `+switch-master` as a sentinel would, to move the store (a stale announcement, say). `received` collects the first
 * message on "events"; `moved(port)` waits for the store's log to say it moved there. Logs go to `logged`.
 */
const switchable = (watchedPort: number, logged: Array<string>) =>
  Effect.gen(function*() {
    const real = yield* RedisServer.makeSentinel({ masterName, masterPort: watchedPort, downAfterMillis: 60_000 })
    const announcer = yield* RedisServer.make()
    const { sentinel, store } = yield* servicesOf(RedisStore.layerSentinel({
      masterName,
      sentinels: [{ host: "127.0.0.1", port: real.port }, { host: "127.0.0.1", port: announcer.port }],
      timeout: "500 millis"
    }))
    const messages = yield* store.subscribe("events")
    const received = yield* messages.pipe(Stream.take(1), Stream.runCollect, Effect.forkScoped)
    yield* eventually(Effect.filterOrFail(
      RedisServer.command(announcer.port, ["PUBSUB", "NUMSUB", "+switch-master"]),
      (reply) => reply.endsWith(":1\r\n")
    ))
    const announce = (from: number, to: number) =>
      RedisServer.command(announcer.port, [
        "PUBLISH",
        "+switch-master",
        `${masterName} 127.0.0.1 ${from} 127.0.0.1 ${to}`
      ])
    const moved = (port: number) =>
      eventually(Effect.suspend(() =>
        logged.some((line) => line.includes("moved") && line.endsWith(`:${port}`))
          ? Effect.void
          : Effect.fail("not moved yet")
      ))
    return { sentinel, store, received, announce, moved }
  })

describe("RedisSentinel", () => {
  it.live(
    "follows a failover: writes succeed again on the promoted replica, and the failover is reported",
    () =>
      Effect.gen(function*() {
        const master = yield* RedisServer.make()
        const replica = yield* RedisServer.makeReplica(master)
        const sentinels = yield* RedisServer.makeSentinels(3, { masterName, masterPort: master.port, quorum: 2 })
        const { redis, sentinel, store } = yield* servicesOf(RedisStore.layerSentinel({
          masterName,
          sentinels: sentinels.map((s) => ({ host: "127.0.0.1", port: s.port })),
          timeout: "500 millis",
          prefix: "app:"
        }))
        assert.deepStrictEqual(yield* sentinel.master, { host: "127.0.0.1", port: master.port })
        assert.deepStrictEqual(yield* sentinel.lastFailover, Option.none())

        const failovers = yield* sentinel.failovers.pipe(Stream.take(1), Stream.runCollect, Effect.forkScoped)
        const messages = yield* store.subscribe("events")
        const received = yield* messages.pipe(Stream.take(1), Stream.runCollect, Effect.forkScoped)

        yield* store.set("before", "kill")
        // Acknowledged by the replica: it survives the master.
        assert.strictEqual(yield* redis.send<number>("WAIT", "1", "0"), 1)

        const killedAt = yield* Clock.currentTimeMillis
        yield* master.kill
        // Keep writing, as an application would; writes fail until the replica is promoted and the client follows.
        let failed = 0
        let written = 0
        while (written === 0) {
          const result = yield* Effect.result(store.set(`during:${failed}`, "x"))
          if (result._tag === "Success") written++
          else {
            failed++
            assert.strictEqual(result.failure._tag, "RedisStoreError")
            yield* Effect.sleep("50 millis")
          }
          assert.isBelow((yield* Clock.currentTimeMillis) - killedAt, 20_000, "no failover within 20 s")
        }
        const backAfter = (yield* Clock.currentTimeMillis) - killedAt

        assert.isAbove(failed, 0)
        assert.deepStrictEqual(yield* sentinel.master, { host: "127.0.0.1", port: replica.port })
        const [failover] = yield* Fiber.join(failovers)
        assert(failover !== undefined)
        assert.deepStrictEqual(failover.from, { host: "127.0.0.1", port: master.port })
        assert.deepStrictEqual(failover.to, { host: "127.0.0.1", port: replica.port })
        assert.isAbove(failover.recoveryMillis, 0)
        assert.isAtMost(failover.recoveryMillis, backAfter)
        assert.isAtLeast(failover.at, killedAt)
        console.log(
          `RedisSentinel failover: recovery ${failover.recoveryMillis} ms (first failure to first success); ` +
            `kill to first successful write ${backAfter} ms; ${failed} writes failed meanwhile`
        )
        assert.deepStrictEqual(yield* sentinel.lastFailover, Option.some(failover))
        assert.strictEqual(yield* metricValue("redis_sentinel_failovers_total", { master: masterName }), 1)
        assert.strictEqual(
          yield* metricValue("redis_sentinel_last_recovery_seconds", { master: masterName }),
          failover.recoveryMillis / 1000
        )

        // The data written before the kill, and the store's scripts, work on the new master.
        assert.deepStrictEqual(yield* store.get("before"), Option.some("kill"))
        assert.strictEqual(yield* store.increment("n", 2), 2)
        // The subscription moved to the new master.
        assert.deepStrictEqual(yield* publishUntilReceived(store, "events", "after", received), ["after"])
      }).pipe(Effect.scoped),
    30_000
  )

  it.live(
    "a subscription follows the master back after a switch to a master that never answers",
    () => {
      const logged: Array<string> = []
      return Effect.gen(function*() {
        const master = yield* RedisServer.make()
        yield* RedisServer.makeReplica(master)
        // A switch to an address where nothing listens: a stale announcement, or a promoted replica gone before
        // anyone connected to it.
        const { announce, moved, received, sentinel, store } = yield* switchable(master.port, logged)
        const nowhere = yield* RedisServer.freePort
        yield* announce(master.port, nowhere)
        // The store switches there, fails to connect, asks the sentinels again and comes back, within milliseconds
        // (too fast to poll `sentinel.master` for): its log says both.
        yield* moved(nowhere)
        yield* eventually(Effect.filterOrFail(sentinel.master, (m) => m.port === master.port))
        // ...and so does the subscription: it does not wait for ever on the open that cannot connect.
        assert.deepStrictEqual([...yield* publishUntilReceived(store, "events", "back", received)], ["back"])
      }).pipe(
        Effect.scoped,
        Effect.provide(capturingLog(logged))
      )
    },
    40_000
  )

  it.live(
    "after a switch, a message the new subscriber reads with its subscribe reply is delivered, not dropped",
    () => {
      const logged: Array<string> = []
      return Effect.gen(function*() {
        const master = yield* RedisServer.make()
        yield* RedisServer.makeReplica(master)
        // The store reaches the master through `before`, then (switched by the announcer) through `after`.
        const before = yield* RedisServer.makeProxy(master)
        const after = yield* RedisServer.makeProxy(master)
        const { announce, moved, received } = yield* switchable(before.port, logged)
        // The new subscriber's subscribe reply, and the message published once the server has it, reach the store in
        // one read, as a busy process reads them. The store's channels carry its prefix.
        const channel = "resilience:events"
        yield* after.holdRepliesAfter(channel)
        yield* announce(before.port, after.port)
        yield* moved(after.port)
        // The old subscriber gone for good, the new one is the only one the server counts.
        yield* before.cut
        yield* eventually(Effect.filterOrFail(
          RedisServer.command(master.port, ["PUBSUB", "NUMSUB", channel]),
          (reply) => reply.endsWith(":1\r\n")
        ))
        assert.include(yield* RedisServer.command(master.port, ["PUBLISH", channel, "first"]), ":1")
        yield* after.release
        assert.deepStrictEqual([...yield* Fiber.join(received).pipe(Effect.timeout("5 seconds"))], ["first"])
      }).pipe(
        Effect.scoped,
        Effect.provide(capturingLog(logged))
      )
    },
    40_000
  )

  it.live(
    "a subscriber abandoned mid-handshake, by a switch away from a master that never answered, does not end the subscription",
    () => {
      const logged: Array<string> = []
      return Effect.gen(function*() {
        const master = yield* RedisServer.make()
        yield* RedisServer.makeReplica(master)
        // A master that takes connections and never answers: a subscriber opened there hangs in its handshake.
        const frozen = yield* RedisServer.make()
        yield* frozen.freeze
        const { announce, moved, received, store } = yield* switchable(master.port, logged)
        yield* announce(master.port, frozen.port)
        yield* moved(frozen.port)
        // Switched back while the subscriber opened for the frozen master still waits for its handshake: abandoned,
        // it fails as it is destroyed, which is no failure of the subscription.
        yield* announce(frozen.port, master.port)
        yield* moved(master.port)
        assert.deepStrictEqual([...yield* publishUntilReceived(store, "events", "back", received)], ["back"])
      }).pipe(
        Effect.scoped,
        Effect.provide(capturingLog(logged))
      )
    },
    40_000
  )

  it.live("closed while a subscriber is opening on a master not up yet, it stops trying to reach it", () => {
    const logged: Array<string> = []
    return Effect.gen(function*() {
      const master = yield* RedisServer.make()
      yield* RedisServer.makeReplica(master)
      const real = yield* RedisServer.makeSentinel({ masterName, masterPort: master.port, downAfterMillis: 60_000 })
      const announcer = yield* RedisServer.make()
      const nowhere = yield* RedisServer.freePort
      yield* Effect.scoped(Effect.gen(function*() {
        const { store } = yield* servicesOf(RedisStore.layerSentinel({
          masterName,
          sentinels: [{ host: "127.0.0.1", port: real.port }, { host: "127.0.0.1", port: announcer.port }],
          timeout: "500 millis"
        }))
        yield* store.subscribe("events")
        yield* eventually(Effect.filterOrFail(
          RedisServer.command(announcer.port, ["PUBSUB", "NUMSUB", "+switch-master"]),
          (reply) => reply.endsWith(":1\r\n")
        ))
        yield* RedisServer.command(announcer.port, [
          "PUBLISH",
          "+switch-master",
          `${masterName} 127.0.0.1 ${master.port} 127.0.0.1 ${nowhere}`
        ])
        yield* eventually(
          Effect.suspend(() =>
            logged.some((line) => line.includes("moved") && line.endsWith(`:${nowhere}`))
              ? Effect.void
              : Effect.fail("no")
          )
        )
      }))
      // The master comes up now: nothing of the closed store comes to it, within the longest reconnect delay (2.2 s).
      const reached = yield* Deferred.make<void>()
      yield* Effect.acquireRelease(
        Effect.callback<ReturnType<typeof createServer>>((resume) => {
          const server = createServer((socket) => {
            Deferred.doneUnsafe(reached, Effect.void)
            socket.destroy()
          })
          server.listen(nowhere, "127.0.0.1", () => resume(Effect.succeed(server)))
        }),
        (server) => Effect.sync(() => server.close())
      )
      assert.isTrue(Option.isNone(yield* Deferred.await(reached).pipe(Effect.timeoutOption("3 seconds"))))
    }).pipe(
      Effect.scoped,
      Effect.provide(capturingLog(logged))
    )
  }, 40_000)

  it.live("invalid options fail with PolicyConfigError naming each field", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(servicesOf(RedisStore.layerSentinel({
        masterName: "",
        sentinels: [{ host: "", port: 70000 }, null as never],
        timeout: "soon" as never
      })))
      assert(error._tag === "PolicyConfigError")
      // Every issue at once: the sentinel's and the store's.
      assert.deepStrictEqual(error.issues.map((issue) => issue.path), [
        "masterName",
        "sentinels[0].host",
        "sentinels[0].port",
        "sentinels[1]",
        "timeout"
      ])
      const sentinelError = yield* Effect.flip(
        Layer.build(RedisSentinel.layer({ masterName: "", sentinels: [{ host: "", port: 70000 }, null as never] }))
      )
      assert(sentinelError._tag === "PolicyConfigError")
      assert.deepStrictEqual(sentinelError.issues, [
        {
          path: "masterName",
          message: "Expected a non-empty string (the name in `sentinel monitor <name> ...`), got \"\""
        },
        { path: "sentinels[0].host", message: "Expected a non-empty host name or IP address, got \"\"" },
        { path: "sentinels[0].port", message: "Expected an integer from 1 to 65535, got 70000" },
        { path: "sentinels[1]", message: "Expected { host, port }, got null" }
      ])
      const empty = yield* Effect.flip(Layer.build(RedisSentinel.layer({ masterName, sentinels: [] })))
      assert(empty._tag === "PolicyConfigError")
      assert.deepStrictEqual(empty.issues, [
        { path: "sentinels", message: "Expected a non-empty array of { host, port }, got []" }
      ])
    }).pipe(Effect.scoped), 10_000)

  it.live(
    "no sentinel answering fails the store layer with RedisStoreError (connect), naming each sentinel",
    () =>
      Effect.gen(function*() {
        const ports = [yield* RedisServer.freePort, yield* RedisServer.freePort]
        const error = yield* Effect.flip(servicesOf(RedisStore.layerSentinel({
          masterName,
          sentinels: ports.map((port) => ({ host: "127.0.0.1", port }))
        })))
        assert(error._tag === "RedisStoreError")
        assert.strictEqual(error.operation, "connect")
        for (const port of ports) assert.include(error.message, `127.0.0.1:${port}: Error: connect ECONNREFUSED`)
      }).pipe(Effect.scoped),
    10_000
  )

  it.live(
    "a master that accepts connections but never answers fails the layer within connectTimeout",
    () =>
      Effect.gen(function*() {
        const master = yield* RedisServer.make()
        yield* RedisServer.makeReplica(master)
        // The sentinels would fail over to the replica after `downAfterMillis`: not within this test.
        const [sentinel] = yield* RedisServer.makeSentinels(1, {
          masterName,
          masterPort: master.port,
          downAfterMillis: 60_000
        })
        assert(sentinel !== undefined)
        yield* master.freeze
        const startedAt = Date.now()
        const error = yield* Effect.flip(Layer.build(RedisSentinel.layer({
          masterName,
          sentinels: [{ host: "127.0.0.1", port: sentinel.port }],
          connectTimeout: "1 second"
        }))).pipe(
          // A hang is the defect: give up well after the connect timeout rather than hang the suite.
          Effect.timeoutOrElse({ duration: "10 seconds", orElse: () => Effect.die("startup hung") })
        )
        assert(error._tag === "RedisSentinelError")
        assert.include(error.message, `at 127.0.0.1:${master.port} timed out after 1s`)
        assert.isBelow(Date.now() - startedAt, 5_000)
      }).pipe(Effect.scoped),
    30_000
  )

  it.live("a sentinel that does not know the master name is skipped for one that does", () =>
    Effect.gen(function*() {
      const master = yield* RedisServer.make()
      yield* RedisServer.makeReplica(master)
      const [sentinel] = yield* RedisServer.makeSentinels(1, { masterName, masterPort: master.port })
      assert(sentinel !== undefined)
      const unknown = yield* Effect.flip(Layer.build(RedisSentinel.layer({
        masterName: "other",
        sentinels: [{ host: "127.0.0.1", port: sentinel.port }]
      })))
      assert(unknown._tag === "RedisSentinelError")
      assert.include(unknown.message, `127.0.0.1:${sentinel.port}: does not know "other"`)

      const down = yield* RedisServer.freePort
      const { sentinel: service, store } = yield* servicesOf(RedisStore.layerSentinel({
        masterName,
        sentinels: [{ host: "127.0.0.1", port: down }, { host: "127.0.0.1", port: sentinel.port }]
      }))
      assert.deepStrictEqual(yield* service.master, { host: "127.0.0.1", port: master.port })
      yield* store.set("k", "v")
      assert.deepStrictEqual(yield* store.get("k"), Option.some("v"))
    }).pipe(Effect.scoped), 15_000)
})
