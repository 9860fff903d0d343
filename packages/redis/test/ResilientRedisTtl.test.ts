// A write Redis refuses for good (here a TTL longer than Redis can store, which FallbackStore takes as "no expiry")
// was acknowledged, journaled, then failed its replay on every ping: the journal never drained, and every later write
// stayed in the fallback. Such a TTL is refused up front now.
import * as FallbackStore from "@effect-resilience/core/FallbackStore"
import * as RedisServer from "@effect-resilience/testing/RedisServer"
import { NodeServices } from "@effect/platform-node"
import { assert, describe, it } from "@effect/vitest"
import { Context, Duration, Effect, Exit, Layer, Option, Schedule } from "effect"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as RedisStore from "../src/RedisStore.ts"
import * as ResilientRedis from "../src/ResilientRedis.ts"

const tempDirectory = Effect.acquireRelease(
  Effect.sync(() => mkdtempSync(join(tmpdir(), "resilient-redis-resilient-"))),
  (directory) => Effect.sync(() => rmSync(directory, { recursive: true, force: true }))
)

const open = (directory: string) =>
  Effect.map(
    Layer.build(
      ResilientRedis.layer({ pingInterval: "100 millis", openDuration: "300 millis" }).pipe(
        Layer.provide(FallbackStore.layer({ directory }).pipe(Layer.provide(NodeServices.layer)))
      )
    ),
    Context.get(ResilientRedis.ResilientRedis)
  )

describe("ResilientRedis: a write Redis refuses", () => {
  it.live(
    "does not hold every later write out of Redis for good",
    () =>
      Effect.gen(function*() {
        const server = yield* RedisServer.make({ persistence: false })
        const directory = yield* tempDirectory
        yield* Effect.gen(function*() {
          const cache = yield* open(directory)
          const redis = yield* RedisStore.RedisStore
          yield* cache.set("warm", "up")
          assert.deepStrictEqual(yield* redis.get("warm"), Option.some("up"))

          // A very long TTL (FallbackStore stores it as no expiry): either refused, or kept; not a poison.
          const long = yield* Effect.exit(cache.set("forever", "x", { ttl: Duration.millis(1e19) }))
          // Then ordinary writes, while Redis is up the whole time.
          yield* cache.set("a", "1")
          yield* cache.set("b", "2")

          // Give the ping fiber (every 100 ms) three seconds to replay whatever was journaled.
          const reached = yield* redis.get("b").pipe(
            Effect.flatMap((b) => Option.isSome(b) ? Effect.succeed(b) : Effect.fail("not yet")),
            Effect.retry(Schedule.spaced("100 millis").pipe(Schedule.upTo({ duration: "3 seconds" }))),
            Effect.option,
            Effect.map(Option.flatten)
          )
          const snapshot = yield* cache.snapshot
          assert.deepStrictEqual(
            { b: reached, state: snapshot.state, pending: snapshot.pending },
            {
              b: Option.some("2"),
              state: snapshot.state === "Fallback" ? "(not Fallback)" : snapshot.state,
              pending: 0
            },
            `the long-TTL set ended ${Exit.isSuccess(long) ? "acknowledged" : "refused"}; then: ${
              JSON.stringify(snapshot)
            }`
          )
        }).pipe(Effect.provide(RedisStore.layer({ url: server.url, timeout: "500 millis" })))
      }).pipe(Effect.scoped),
    20_000
  )
})
