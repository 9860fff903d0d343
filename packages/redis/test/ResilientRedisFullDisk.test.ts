// A write Redis accepted is copied to the fallback. When the fallback could not take the new copy (its disk full), the
// previous copy stayed, and the next outage served that older value as the current one: the copy goes now.
import * as FallbackStore from "@effect-resilience/core/FallbackStore"
import * as RedisServer from "@effect-resilience/testing/RedisServer"
import { NodeServices } from "@effect/platform-node"
import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Layer, Option } from "effect"
import { execFileSync } from "node:child_process"
import { closeSync, mkdtempSync, openSync, rmSync, writeSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as RedisStore from "../src/RedisStore.ts"
import * as ResilientRedis from "../src/ResilientRedis.ts"

/** A directory with a 64 KiB tmpfs on it, unmounted and removed with the scope. */
const smallDisk = Effect.acquireRelease(
  Effect.sync(() => {
    const dir = mkdtempSync(join(tmpdir(), "resilient-redis-stale-"))
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=64k", "tmpfs", dir])
    return dir
  }),
  (dir) =>
    Effect.sync(() => {
      try {
        execFileSync("umount", ["-l", dir])
      } catch {
        // already gone
      }
      rmSync(dir, { recursive: true, force: true })
    })
)

/** Another program fills the disk. */
const fillDisk = (dir: string) =>
  Effect.sync(() => {
    const fd = openSync(join(dir, "filler"), "w")
    try {
      const chunk = Buffer.alloc(512, 1)
      for (;;) writeSync(fd, chunk)
    } catch {
      // ENOSPC
    } finally {
      closeSync(fd)
    }
  })

const open = (directory: string) =>
  Effect.map(
    Layer.build(
      ResilientRedis.layer({ pingInterval: "100 millis", openDuration: "300 millis" }).pipe(
        Layer.provide(FallbackStore.layer({ directory }).pipe(Layer.provide(NodeServices.layer)))
      )
    ),
    Context.get(ResilientRedis.ResilientRedis)
  )

describe("ResilientRedis: the fallback's copy when it cannot be updated", () => {
  it.live("an outage never serves a value older than the last one Redis accepted", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.make({ persistence: false })
      const directory = yield* smallDisk
      yield* Effect.gen(function*() {
        const cache = yield* open(directory)
        const redis = yield* RedisStore.RedisStore
        yield* cache.set("price", "19.99")
        yield* fillDisk(directory)
        // Redis takes the new price (acknowledged); the fallback cannot store its copy.
        yield* cache.set("price", "24.99")
        assert.deepStrictEqual(yield* redis.get("price"), Option.some("24.99"))

        yield* server.kill
        const during = yield* cache.get("price")
        assert.notDeepEqual(during, Option.some("19.99"), "the outage served the overwritten price 19.99 as current")
      }).pipe(Effect.provide(RedisStore.layer({ url: server.url, timeout: "500 millis" })))
    }).pipe(Effect.scoped), 20_000)
})
