import * as RedisServer from "@effect-resilience/testing/RedisServer"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Logger, Option, Schedule, Stream } from "effect"
import * as Redis from "effect/persistence/Redis"
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

/** Retries `self` every 50 ms for up to 10 s: the master is looked for, and connected to, in the background. */
const eventually = <A, E, R>(self: Effect.Effect<A, E, R>) =>
  Effect.retry(self, Schedule.spaced("50 millis").pipe(Schedule.upTo({ duration: "10 seconds" })))

describe("RedisSentinel lazy", () => {
  it.live(
    "builds while no sentinel answers, fails commands at once, then joins the master once a sentinel names it",
    () => {
      const lines: Array<{ readonly level: string; readonly message: string }> = []
      const capture = Logger.layer([
        Logger.make(({ logLevel, message }) => {
          lines.push({ level: logLevel, message: (Array.isArray(message) ? message : [message]).map(String).join(" ") })
        })
      ])
      return Effect.gen(function*() {
        const sentinelPort = yield* RedisServer.freePort
        // Nothing listens on the sentinel's port: the layer builds all the same, and at once.
        const { redis, sentinel, store } = yield* servicesOf(RedisStore.layerSentinel({
          masterName,
          sentinels: [{ host: "127.0.0.1", port: sentinelPort }],
          lazy: true,
          timeout: "5 seconds",
          prefix: "app:"
        })).pipe(Effect.timeout("2 seconds"))

        // Every command fails at once (well before the 5 s command timeout), naming why.
        const failed = yield* Effect.flip(store.set("k", "v")).pipe(Effect.timeout("1 second"))
        assert.strictEqual(failed._tag, "RedisStoreError")
        assert.include(failed.message, `offline: the master "${masterName}" has not been found yet`)
        const raw = yield* Effect.flip(redis.send("PING")).pipe(Effect.timeout("1 second"))
        assert.strictEqual(raw._tag, "RedisError")
        // The master is not known yet: `master` waits for it.
        assert.isTrue(Option.isNone(yield* Effect.timeoutOption(sentinel.master, "100 millis")))

        // A subscriber made before the master is found.
        const messages = yield* store.subscribe("events")
        const received = yield* messages.pipe(Stream.take(1), Stream.runCollect, Effect.forkScoped)
        // A few attempts (backoff from about 50 ms): one warning all the same.
        yield* Effect.sleep("1 second")

        const master = yield* RedisServer.make()
        yield* RedisServer.makeReplica(master)
        yield* RedisServer.makeSentinel({ masterName, masterPort: master.port, port: sentinelPort })

        yield* eventually(store.set("k", "v"))
        assert.deepStrictEqual(yield* sentinel.master, { host: "127.0.0.1", port: master.port })
        assert.include(yield* RedisServer.command(master.port, ["GET", "app:k"]), "v")
        assert.deepStrictEqual(yield* store.get("k"), Option.some("v"))
        assert.strictEqual(yield* store.increment("n", 2), 2)

        // The early subscriber follows the master: once it is subscribed there, it receives what is published.
        assert.deepStrictEqual(yield* publishUntilReceived(store, "events", "after", received), ["after"])

        // Finding the master is not a failover.
        assert.deepStrictEqual(yield* sentinel.lastFailover, Option.none())
        assert.strictEqual(yield* metricValue("redis_sentinel_failovers_total", { master: masterName }), undefined)
        const own = lines.filter((line) => line.message.startsWith("RedisSentinel:"))
        assert.deepStrictEqual(own.map((line) => line.level), ["Warn", "Info"])
        assert.strictEqual(
          own[0]?.message,
          `RedisSentinel: cannot find master "${masterName}" yet (No sentinel named the master "${masterName}": ` +
            `127.0.0.1:${sentinelPort}: Error: connect ECONNREFUSED 127.0.0.1:${sentinelPort}), looking in the background`
        )
        assert.strictEqual(own[1]?.message, `RedisSentinel: master "${masterName}" found at 127.0.0.1:${master.port}`)
      }).pipe(Effect.scoped, Effect.provide(capture))
    },
    30_000
  )

  it.live(
    "with a sentinel and its master up, commands sent as soon as it is built wait for the first search",
    () =>
      Effect.gen(function*() {
        const master = yield* RedisServer.make()
        yield* RedisServer.makeReplica(master)
        const sentinel = yield* RedisServer.makeSentinel({ masterName, masterPort: master.port })
        const { store } = yield* servicesOf(RedisStore.layerSentinel({
          masterName,
          sentinels: [{ host: "127.0.0.1", port: sentinel.port }],
          lazy: true
        }))
        const [set, incremented] = yield* Effect.all([Effect.result(store.set("k", "v")), store.increment("n")], {
          concurrency: "unbounded"
        })
        assert.strictEqual(set._tag, "Success")
        assert.strictEqual(incremented, 1)
        assert.include(yield* RedisServer.command(master.port, ["GET", store.key("k")]), "v")
      }).pipe(Effect.scoped),
    30_000
  )

  it.live(
    "a named master that does not answer is looked for again: found where the sentinel promotes, not a failover",
    () =>
      Effect.gen(function*() {
        const master = yield* RedisServer.make()
        const replica = yield* RedisServer.makeReplica(master)
        const sentinel = yield* RedisServer.makeSentinel({ masterName, masterPort: master.port })
        yield* master.kill
        // The sentinel still names the dead master until it has promoted the replica.
        const { sentinel: service, store } = yield* servicesOf(RedisStore.layerSentinel({
          masterName,
          sentinels: [{ host: "127.0.0.1", port: sentinel.port }],
          lazy: true
        })).pipe(Effect.timeout("2 seconds"))
        yield* eventually(store.set("k", "v"))
        assert.deepStrictEqual(yield* service.master, { host: "127.0.0.1", port: replica.port })
        assert.deepStrictEqual(yield* service.lastFailover, Option.none())
      }).pipe(Effect.scoped),
    30_000
  )

  it.live("an invalid lazy fails with PolicyConfigError, once", () =>
    Effect.gen(function*() {
      const sentinels = [{ host: "127.0.0.1", port: 26379 }]
      // With the store's own options, every issue at once; `lazy` once, although both the store and the sentinel read it.
      const store = yield* Effect.flip(servicesOf(RedisStore.layerSentinel({
        masterName,
        sentinels,
        lazy: "yes" as never,
        timeout: "soon" as never
      })))
      assert(store._tag === "PolicyConfigError")
      assert.deepStrictEqual(store.issues.map((issue) => issue.path), ["timeout", "lazy"])
      assert.deepStrictEqual(store.issues[1], { path: "lazy", message: "Expected true or false, got \"yes\"" })
      const sentinel = yield* Effect.flip(Layer.build(RedisSentinel.layer({ masterName, sentinels, lazy: 1 as never })))
      assert(sentinel._tag === "PolicyConfigError")
      assert.deepStrictEqual(sentinel.issues, [{ path: "lazy", message: "Expected true or false, got 1" }])
    }).pipe(Effect.scoped), 10_000)
})
