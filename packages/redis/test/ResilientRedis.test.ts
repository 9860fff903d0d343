import * as FallbackStore from "@effect-resilience/core/FallbackStore"
import * as RedisServer from "@effect-resilience/testing/RedisServer"
import { NodeServices } from "@effect/platform-node"
import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Layer, Metric, Option, Schedule, Stream } from "effect"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as RedisStore from "../src/RedisStore.ts"
import * as ResilientRedis from "../src/ResilientRedis.ts"
import { metricValue } from "./metrics.ts"

type Cache = ResilientRedis.ResilientRedis

const tempDirectory = Effect.acquireRelease(
  Effect.sync(() => mkdtempSync(join(tmpdir(), "resilient-redis-"))),
  (directory) => Effect.sync(() => rmSync(directory, { recursive: true, force: true }))
)

/** A ResilientRedis on a file FallbackStore in `directory`, for the scope: one "process". */
const open = (directory: string) =>
  Effect.map(
    Layer.build(
      ResilientRedis.layer({ pingInterval: "100 millis", openDuration: "300 millis" }).pipe(
        Layer.provide(FallbackStore.layer({ directory }).pipe(Layer.provide(NodeServices.layer)))
      )
    ),
    Context.get(ResilientRedis.ResilientRedis)
  )

/** Polls the health every 50 ms, for up to 8 s, until it is `state`. */
const waitFor = (cache: Cache, state: ResilientRedis.State) =>
  cache.health.pipe(
    Effect.flatMap((now) => now === state ? Effect.void : Effect.fail(now)),
    Effect.retry(Schedule.spaced("50 millis").pipe(Schedule.upTo({ duration: "8 seconds" })))
  )

/** Writes number `i` of a stream over ten keys (every seventh a remove) and records what Redis must end with. */
const write = (cache: Cache, expected: Map<string, string | null>, i: number) => {
  const key = `k${i % 10}`
  return i % 7 === 6
    ? Effect.map(cache.remove(key), () => expected.set(key, null))
    : Effect.map(cache.set(key, `v${i}`, { ttl: "1 hour" }), () => expected.set(key, `v${i}`))
}

const writeRange = (cache: Cache, expected: Map<string, string | null>, from: number, to: number) =>
  Effect.forEach(
    Array.from({ length: to - from }, (_, n) => from + n),
    (i) => Effect.andThen(write(cache, expected, i), Effect.sleep("5 millis")),
    { discard: true }
  )

/** Every acknowledged write is in Redis, read with a plain RedisStore. */
const assertInRedis = (expected: Map<string, string | null>) =>
  Effect.gen(function*() {
    const store = yield* RedisStore.RedisStore
    for (const [key, value] of expected) {
      assert.deepStrictEqual(yield* store.get(key), Option.fromNullishOr(value), key)
    }
  })

/** A metric of the service named "redis". */
const metric = (id: string, attributes: Record<string, string> = {}) =>
  metricValue(id, { name: "redis", ...attributes })

const withServer = <A, E>(
  f: (server: RedisServer.RedisServer, directory: string) => Effect.Effect<A, E, RedisStore.RedisStore>
) =>
  Effect.gen(function*() {
    const server = yield* RedisServer.make({ persistence: true })
    const directory = yield* tempDirectory
    return yield* f(server, directory).pipe(
      Effect.provide(RedisStore.layer({ url: server.url, timeout: "500 millis" }))
    )
  }).pipe(Effect.scoped)

describe("ResilientRedis", () => {
  it.live(
    "every write acknowledged during an outage reaches Redis, in order, once it is back",
    () =>
      withServer((server) =>
        Effect.gen(function*() {
          const directory = yield* tempDirectory
          const cache = yield* open(directory)
          const expected = new Map<string, string | null>()
          yield* writeRange(cache, expected, 0, 30)
          assert.strictEqual(yield* cache.health, "Healthy")

          yield* server.kill
          yield* writeRange(cache, expected, 30, 80)
          const down = yield* cache.snapshot
          assert.strictEqual(down.state, "Fallback")
          assert.strictEqual(down.pending, 50)
          // Reads answer from the fallback, which holds the journaled writes.
          assert.deepStrictEqual(yield* cache.get("k9"), Option.some("v79"))

          yield* server.restart
          // Writes keep coming while the journal replays: they queue behind it.
          yield* writeRange(cache, expected, 80, 100)
          yield* waitFor(cache, "Healthy")
          const after = yield* cache.snapshot
          assert.strictEqual(after.pending, 0)
          assert.strictEqual(after.replayed, after.journaled)
          assert.isAtLeast(after.journaled, 50)
          yield* assertInRedis(expected)
        }).pipe(Effect.scoped)
      ),
    20_000
  )

  it.live(
    "a process restarted mid-outage (and started while Redis is down) replays the first one's journal, then its own",
    () =>
      withServer((server, directory) =>
        Effect.gen(function*() {
          const expected = new Map<string, string | null>()
          yield* Effect.gen(function*() {
            const first = yield* open(directory)
            yield* writeRange(first, expected, 0, 20)
            yield* server.kill
            yield* writeRange(first, expected, 20, 50)
            assert.strictEqual((yield* first.snapshot).pending, 30)
          }).pipe(Effect.scoped)

          // The second process starts while Redis is down: its own connection, lazily connecting.
          yield* Effect.gen(function*() {
            const second = yield* open(directory)
            const restarted = yield* second.snapshot
            assert.strictEqual(restarted.state, "Fallback")
            assert.strictEqual(restarted.pending, 30)
            // Its journal continues after the first one's (otherwise these would replay first and lose).
            yield* writeRange(second, expected, 50, 70)
            assert.deepStrictEqual(yield* second.get("k5"), Option.some("v65"))
            assert.strictEqual((yield* second.snapshot).pending, 50)

            yield* server.restart
            yield* waitFor(second, "Healthy")
            const after = yield* second.snapshot
            assert.strictEqual(after.pending, 0)
            assert.strictEqual(after.replayed, 50)
            yield* assertInRedis(expected)
          }).pipe(
            Effect.scoped,
            Effect.provide(RedisStore.layer({ url: server.url, timeout: "500 millis", lazy: true }))
          )
        })
      ),
    20_000
  )

  it.live(
    "its figures are Effect metrics: state, operations by who answered, journaled, replayed, pending",
    () =>
      withServer((server, directory) =>
        Effect.gen(function*() {
          const cache = yield* open(directory)
          yield* cache.set("a", "1")
          yield* server.kill
          yield* cache.set("b", "2")
          yield* cache.set("c", "3")
          yield* waitFor(cache, "Fallback")
          assert.strictEqual(yield* metric("resilient_redis_state"), 3)
          assert.strictEqual(yield* metric("resilient_redis_pending"), 2)
          assert.strictEqual(yield* metric("resilient_redis_journaled_total"), 2)
          const snapshot = yield* cache.snapshot
          assert.strictEqual(
            yield* metric("resilient_redis_operations_total", { answered_by: "redis" }),
            snapshot.redisOps
          )
          assert.strictEqual(
            yield* metric("resilient_redis_operations_total", { answered_by: "fallback" }),
            snapshot.fallbackOps
          )
          yield* server.restart
          yield* waitFor(cache, "Healthy")
          assert.strictEqual(yield* metric("resilient_redis_state"), 0)
          assert.strictEqual(yield* metric("resilient_redis_replayed_total"), 2)
          assert.strictEqual(yield* metric("resilient_redis_pending"), 0)
        }).pipe(Effect.scoped, Effect.provideService(Metric.MetricRegistry, new Map()))
      ),
    20_000
  )

  it.live(
    "health goes Healthy, Degraded, Failed, Fallback, Healthy; reads answer throughout",
    () =>
      withServer((server, directory) =>
        Effect.gen(function*() {
          const cache = yield* open(directory)
          const changes: Array<string> = []
          yield* cache.changes.pipe(
            Stream.runForEach((c) => Effect.sync(() => changes.push(`${c.from}->${c.to}`))),
            Effect.forkScoped
          )
          yield* Effect.sleep("20 millis")

          yield* cache.set("a", "1")
          assert.strictEqual(yield* cache.health, "Healthy")
          assert.deepStrictEqual(yield* cache.get("a"), Option.some("1"))

          yield* server.kill
          // No traffic: the pings notice the outage and open the breaker.
          yield* waitFor(cache, "Failed")
          assert.deepStrictEqual(yield* cache.get("a"), Option.some("1"))
          assert.deepStrictEqual(yield* cache.get("missing"), Option.none())
          assert.strictEqual(yield* cache.health, "Failed")

          yield* cache.set("b", "2")
          assert.strictEqual(yield* cache.health, "Fallback")
          assert.deepStrictEqual(yield* cache.get("b"), Option.some("2"))
          assert.isTrue(yield* cache.remove("a"))
          assert.deepStrictEqual(yield* cache.get("a"), Option.none())

          yield* server.restart
          yield* waitFor(cache, "Healthy")
          assert.deepStrictEqual(yield* cache.get("b"), Option.some("2"))
          assert.deepStrictEqual(yield* cache.get("a"), Option.none())
          const snapshot = yield* cache.snapshot
          assert.strictEqual(snapshot.breaker, "Closed")
          assert.strictEqual(snapshot.journaled, 2)
          assert.strictEqual(snapshot.replayed, 2)
          assert.isAtLeast(snapshot.fallbackOps, 5)
          yield* Effect.sleep("20 millis")
          assert.deepStrictEqual(changes, [
            "Healthy->Degraded",
            "Degraded->Failed",
            "Failed->Fallback",
            "Fallback->Healthy"
          ])
        }).pipe(Effect.scoped)
      ),
    20_000
  )

  it.live("invalid options fail the layer with PolicyConfigError naming each option", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(
        Layer.build(ResilientRedis.layer({ pingInterval: "soon" as never, failureThreshold: 0 })).pipe(
          Effect.scoped,
          Effect.provide(FallbackStore.layerMemory()),
          Effect.provideService(RedisStore.RedisStore, RedisStore.RedisStore.of({} as never))
        )
      )
      assert.strictEqual(error._tag, "PolicyConfigError")
      assert(error._tag === "PolicyConfigError")
      assert.deepStrictEqual(error.issues, [
        {
          path: "pingInterval",
          message:
            "Expected a duration (a Duration, a number of milliseconds, or a string like \"30 seconds\"), got \"soon\""
        },
        { path: "failureThreshold", message: "Expected a value greater than or equal to 1, got 0" }
      ])
    }), 5_000)
})
