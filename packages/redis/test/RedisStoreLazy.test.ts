import * as RedisServer from "@effect-resilience/testing/RedisServer"
import { assert, describe, it } from "@effect/vitest"
import { Clock, ConfigProvider, Effect, Exit, Fiber, Layer, Option, Result, Schedule, Scope, Stream } from "effect"
import * as Redis from "effect/persistence/Redis"
import * as RedisStore from "../src/RedisStore.ts"

/** Retries `self` every 50 ms for up to 5 s: the lazy client connects in the background. */
const eventually = <A, E, R>(self: Effect.Effect<A, E, R>) =>
  Effect.retry(self, Schedule.spaced("50 millis").pipe(Schedule.upTo({ duration: "5 seconds" })))

/** Runs `self` and returns its outcome with how long it took, in real milliseconds. */
const timed = <A, E, R>(self: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const startedAt = yield* Clock.currentTimeMillis
    const result = yield* Effect.result(self)
    return { result, millis: (yield* Clock.currentTimeMillis) - startedAt }
  })

const services = Effect.all({ store: RedisStore.RedisStore, redis: Redis.Redis })

/** Builds `layer` in the enclosing scope (`Effect.provide` would close it as soon as `services` returned). */
const servicesOf = <E>(layer: Layer.Layer<RedisStore.RedisStore | Redis.Redis, E>) =>
  Effect.flatMap(Layer.build(layer), (context) => Effect.provide(services, context))

describe("RedisStore lazy", () => {
  it.live(
    "builds while Redis is down, fails operations at once, then succeeds once Redis is up; subscribe too",
    () =>
      Effect.gen(function*() {
        const port = yield* RedisServer.freePort
        const built = yield* timed(
          servicesOf(RedisStore.layer({ url: `redis://127.0.0.1:${port}`, lazy: true, timeout: "5 seconds" }))
        )
        assert(built.result._tag === "Success")
        // At once, not after the 5 s connect timeout (nor the 5 s command timeout below), however loaded the machine.
        assert.isBelow(built.millis, 2_000)
        const { store } = built.result.success

        // Nothing listens yet: every operation fails at once, naming itself.
        const down: ReadonlyArray<[string, Effect.Effect<unknown, RedisStore.RedisStoreError>]> = [
          ["get", store.get("k")],
          ["set", store.set("k", "v")],
          ["increment", store.increment("n")],
          ["publish", store.publish("events", "x")]
        ]
        for (const [operation, effect] of down) {
          const failed = yield* timed(Effect.flip(effect))
          assert(failed.result._tag === "Success")
          assert.strictEqual(failed.result.success._tag, "RedisStoreError")
          assert.strictEqual(failed.result.success.operation, operation)
          assert.include(failed.result.success.message, "offline")
          assert.isBelow(failed.millis, 2_000)
        }
        // A subscription made while Redis is down fails its stream.
        const early = yield* Effect.scoped(
          Effect.flatMap(store.subscribe("events"), (messages) => Effect.flip(Stream.runDrain(messages)))
        )
        assert.strictEqual(early.operation, "subscribe")

        yield* RedisServer.makeOnPort(port)
        const up = yield* timed(eventually(store.set("k", "v")))
        assert.strictEqual(up.result._tag, "Success")
        // The backoff is capped at about 2 seconds: the client is back within one step of it.
        assert.isBelow(up.millis, 3_000)
        assert.deepStrictEqual(yield* store.get("k"), Option.some("v"))
        assert.strictEqual(yield* store.increment("n", 2), 2)

        yield* Effect.scoped(Effect.gen(function*() {
          const messages = yield* store.subscribe("events")
          const received = yield* messages.pipe(Stream.take(2), Stream.runCollect, Effect.forkScoped)
          assert.strictEqual(yield* store.publish("events", "first"), 1)
          assert.strictEqual(yield* store.publish("events", "second"), 1)
          assert.deepStrictEqual(yield* Fiber.join(received), ["first", "second"])
        }))
      }).pipe(Effect.scoped),
    15_000
  )

  it.live(
    "with Redis up, operations sent as soon as it is built wait for the first connect instead of failing",
    () =>
      Effect.gen(function*() {
        const server = yield* RedisServer.make()
        const { store } = yield* servicesOf(RedisStore.layer({ url: server.url, lazy: true }))
        // Sent together, before the background connect can have finished: a script (loaded on first use) as well.
        const [set, incremented, counted] = yield* Effect.all([
          Effect.result(store.set("k", "v")),
          Effect.result(store.increment("n")),
          Effect.result(store.increment("m", 1, { ttl: "1 minute" }))
        ], { concurrency: "unbounded" })
        assert.strictEqual(set._tag, "Success")
        assert.deepStrictEqual(incremented, Result.succeed(1))
        assert.deepStrictEqual(counted, Result.succeed(1))
        assert.deepStrictEqual(yield* store.get("k"), Option.some("v"))
      }).pipe(Effect.scoped),
    15_000
  )

  it.live(
    "on a server that accepts connections but never answers, the first operations wait connectTimeout at most",
    () =>
      Effect.gen(function*() {
        const server = yield* RedisServer.make()
        const frozen = yield* Scope.make()
        yield* Scope.provide(server.freeze, frozen)
        const { store } = yield* servicesOf(
          RedisStore.layer({ url: server.url, lazy: true, connectTimeout: "1 second", timeout: "10 seconds" })
        )
        const first = yield* timed(Effect.flip(store.get("k")))
        assert(first.result._tag === "Success")
        assert.strictEqual(first.result.success.operation, "get")
        assert.isAtLeast(first.millis, 900)
        assert.isBelow(first.millis, 5_000)
        // Then at once, as while Redis is down.
        const next = yield* timed(Effect.flip(store.get("k")))
        assert.isBelow(next.millis, 500)
        // A subscription's connection is bounded by connectTimeout too: its stream fails rather than hang (and with
        // it, the scope that would close it).
        const subscribed = yield* timed(
          Effect.scoped(Effect.flatMap(store.subscribe("events"), (messages) => Effect.flip(Stream.runDrain(messages))))
        ).pipe(Effect.timeoutOrElse({ duration: "10 seconds", orElse: () => Effect.die("subscribe hung") }))
        assert(subscribed.result._tag === "Success")
        assert.strictEqual(subscribed.result.success.operation, "subscribe")
        assert.isBelow(subscribed.millis, 5_000)
        yield* Scope.close(frozen, Exit.void)
        yield* eventually(store.set("k", "v"))
        assert.deepStrictEqual(yield* store.get("k"), Option.some("v"))
      }).pipe(Effect.scoped),
    20_000
  )

  it.live(
    "closed while an operation waits for the first connect, the operation ends instead of waiting for ever",
    () =>
      Effect.gen(function*() {
        const server = yield* RedisServer.make()
        yield* server.freeze
        const scope = yield* Scope.make()
        const { store } = yield* Scope.provide(
          servicesOf(
            RedisStore.layer({ url: server.url, lazy: true, connectTimeout: "1 minute", timeout: "1 minute" })
          ),
          scope
        )
        const waiting = yield* Effect.forkChild(Effect.flip(store.get("k")), { startImmediately: true })
        yield* Scope.close(scope, Exit.void)
        const ended = yield* Fiber.await(waiting).pipe(
          Effect.timeoutOrElse({ duration: "5 seconds", orElse: () => Effect.die("still waiting") })
        )
        assert(Exit.isSuccess(ended))
        assert.strictEqual(ended.value.operation, "get")
      }).pipe(Effect.scoped),
    20_000
  )

  it.live("reconnects after the server is killed and restarted", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.make()
      const { store } = yield* servicesOf(RedisStore.layer({ url: server.url, lazy: true }))
      yield* eventually(store.set("k", "v"))
      yield* server.kill
      const failed = yield* Effect.flip(store.get("k"))
      assert.strictEqual(failed.operation, "get")
      yield* server.restart
      yield* eventually(store.set("k", "again"))
      assert.deepStrictEqual(yield* store.get("k"), Option.some("again"))
    }).pipe(Effect.scoped), 15_000)

  it.live("layerConfig reads REDIS_LAZY; an invalid lazy fails with PolicyConfigError", () =>
    Effect.gen(function*() {
      const port = yield* RedisServer.freePort
      const config = (lazy: string) =>
        RedisStore.layerConfig().pipe(
          Layer.provide(
            ConfigProvider.layer(
              ConfigProvider.fromUnknown({ REDIS_URL: `redis://127.0.0.1:${port}`, REDIS_LAZY: lazy })
            )
          )
        )
      // Lazy: the layer builds although nothing listens.
      const { store } = yield* servicesOf(config("true"))
      const offline = yield* Effect.flip(store.get("k"))
      assert.strictEqual(offline.operation, "get")
      assert.include(offline.message, "offline")
      // Not lazy: the connect fails the layer, as before.
      const eager = yield* Effect.flip(servicesOf(config("false")))
      assert(eager._tag === "RedisStoreError")
      assert.strictEqual(eager.operation, "connect")

      const invalid = yield* Effect.flip(
        servicesOf(RedisStore.layer({ lazy: "yes" as never }))
      )
      assert(invalid._tag === "PolicyConfigError")
      assert.deepStrictEqual(invalid.issues, [{ path: "lazy", message: "Expected true or false, got \"yes\"" }])
    }).pipe(Effect.scoped), 10_000)
})
