// Storage trouble the store reports itself (issue 17, disk trouble): callers of a cache often drop a failed write
// (a slow or full disk must not fail the request), so without a log of the store's own a full disk goes unseen.
import { NodeServices } from "@effect/platform-node"
import { assert, describe, it } from "@effect/vitest"
import { Effect, FileSystem, Logger, Metric, Option, References } from "effect"
import { TestClock } from "effect/testing"
import { execFileSync } from "node:child_process"
import * as FallbackStore from "../src/FallbackStore.ts"

const sh = (command: string, ...args: ReadonlyArray<string>) =>
  Effect.try({ try: () => execFileSync(command, args, { stdio: "pipe" }).toString(), catch: (error) => error })

/** A fresh directory with a tmpfs of `options` on it (mount needs CAP_SYS_ADMIN: the tests run as root here). */
const tmpfsDir = (options: string) =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const dir = yield* Effect.acquireRelease(
      fs.makeTempDirectory({ prefix: "fallback-store-trouble-" }),
      (made) => Effect.orDie(fs.remove(made, { recursive: true, force: true }))
    )
    yield* Effect.acquireRelease(
      sh("mount", "-t", "tmpfs", "-o", options, "tmpfs", dir),
      () => Effect.ignore(sh("umount", "-l", dir))
    )
    return dir
  })

/** Runs `f` with a list that collects the warnings it logs (and their annotations). */
const withWarnings = <A, E, R>(
  f: (warnings: Array<{ readonly message: string; readonly reason: unknown }>) => Effect.Effect<A, E, R>
) => {
  const warnings: Array<{ readonly message: string; readonly reason: unknown }> = []
  const logger = Logger.make((options) => {
    if (options.logLevel !== "Warn") return
    const annotations = options.fiber.getRef(References.CurrentLogAnnotations)
    warnings.push({ message: String(options.message), reason: annotations["reason"] })
  })
  return f(warnings).pipe(Effect.provideService(Logger.CurrentLoggers, new Set([logger])))
}

const live = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  effect.pipe(Effect.provideService(Metric.MetricRegistry, new Map()), Effect.provide(NodeServices.layer))

describe("FallbackStore: storage trouble is logged by the store", () => {
  it.effect("a full disk: the failed write is typed DiskFull and logged, once a minute at most, with a count", () =>
    live(withWarnings((warnings) =>
      Effect.gen(function*() {
        const dir = yield* tmpfsDir("size=64k")
        const store = yield* FallbackStore.make({ name: "cache", directory: dir })
        yield* store.set("a", "old")
        const big = "x".repeat(200_000)
        const error = yield* Effect.flip(store.set("a", big))
        assert.strictEqual(error.reason, "DiskFull")
        assert.strictEqual(warnings.length, 1)
        assert.include(warnings[0].message, `Fallback store "cache"`)
        assert.include(warnings[0].message, "the disk is full (ENOSPC)")
        assert.include(warnings[0].message, "DiskFull")
        assert.strictEqual(warnings[0].reason, "DiskFull")
        // Under load every write fails the same way: the log says it once a minute, not once a write.
        for (let i = 0; i < 5; i++) yield* Effect.flip(store.set(`b${i}`, big))
        assert.strictEqual(warnings.length, 1)
        yield* TestClock.adjust("1 minute")
        assert.strictEqual((yield* Effect.flip(store.set("c", big))).reason, "DiskFull")
        assert.strictEqual(warnings.length, 2)
        assert.include(warnings[1].message, "5 more")
        // The old value is intact, and a write that fits succeeds, unlogged.
        assert.deepStrictEqual(yield* store.get("a"), Option.some("old"))
        yield* store.set("a", "new")
        assert.strictEqual(warnings.length, 2)
      }).pipe(Effect.scoped)
    )))

  it.effect("a caller's mistake (TooLarge, a bad ttl) is not the operator's: it is not logged", () =>
    live(withWarnings((warnings) =>
      Effect.gen(function*() {
        const fs = yield* FileSystem.FileSystem
        const dir = yield* Effect.acquireRelease(
          fs.makeTempDirectory({ prefix: "fallback-store-trouble-" }),
          (made) => Effect.orDie(fs.remove(made, { recursive: true, force: true }))
        )
        const store = yield* FallbackStore.make({ name: "cache", directory: dir, maxBytes: 1000 })
        assert.strictEqual((yield* Effect.flip(store.set("a", "x".repeat(2000)))).reason, "TooLarge")
        assert.strictEqual((yield* Effect.flip(store.set("a", "x", { ttl: 0 }))).reason, "BadArgument")
        assert.deepStrictEqual(warnings, [])
      }).pipe(Effect.scoped)
    )))
})
