import * as FallbackStore from "@effect-resilience/core/FallbackStore"
import * as RedisServer from "@effect-resilience/testing/RedisServer"
import { NodeServices } from "@effect/platform-node"
import { assert, it } from "@effect/vitest"
import { Context, Effect, Fiber, Layer, Option, Schedule, Stream } from "effect"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as RedisStore from "../src/RedisStore.ts"
import * as ResilientRedis from "../src/ResilientRedis.ts"

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

const dataLost = (cache: ResilientRedis.ResilientRedis) =>
  cache.events.pipe(
    Stream.filter((event) => event._tag === "RedisDataLost"),
    Stream.runHead,
    Effect.timeout("8 seconds"),
    Effect.forkScoped
  )

// The docs promise "last write wins" and that a remove keeps its time in Redis so that an older write does not bring
// the key back. After Redis comes back empty, each instance re-seeds the values its own fallback holds. The instance
// that removed the key keeps nothing of the remove (its fallback copy is simply deleted), so another instance's older
// copy is written back: a value the application deleted (a revoked session, say) is served again.
it.live(
  "after Redis comes back empty, a key removed on B is not brought back by A's re-seed of its older copy",
  () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.make()
      const store = RedisStore.layer({ url: server.url, timeout: "500 millis" })
      yield* Effect.gen(function*() {
        const a = yield* open(yield* tempDirectory)
        const b = yield* open(yield* tempDirectory)
        yield* a.set("session:42", "alice", { ttl: "1 hour" })
        yield* Effect.sleep("5 millis")
        // B logs the session out: the newest write of the key is this remove.
        assert.isTrue(yield* b.remove("session:42"))
        assert.deepStrictEqual(yield* b.get("session:42"), Option.none())
        const lostOnA = yield* dataLost(a)
        const lostOnB = yield* dataLost(b)
        yield* server.restart
        yield* Fiber.join(lostOnA)
        yield* Fiber.join(lostOnB)
        const redis = yield* RedisStore.RedisStore
        const seen = yield* redis.get("session:42").pipe(
          Effect.retry(Schedule.spaced("50 millis").pipe(Schedule.upTo({ duration: "2 seconds" })))
        )
        assert.deepStrictEqual(seen, Option.none(), "a removed key came back after the re-seed")
        assert.deepStrictEqual(yield* b.get("session:42"), Option.none())
      }).pipe(Effect.provide(store))
    }).pipe(Effect.scoped),
  20_000
)
