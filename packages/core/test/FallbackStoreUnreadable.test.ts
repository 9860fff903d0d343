// An entry the store could not read when it started (a passing EMFILE or EIO) was left out of the index, so `keys`
// did not list it. A DeferredDelivery queue loading its journal then neither saw that message nor counted its
// sequence number, handed the same number to the next `send`, and that `set` replaced the file: an acknowledged
// message overwritten. The store now reads such an entry again, alone, before it opens.
import { NodeServices } from "@effect/platform-node"
import { assert, describe, it } from "@effect/vitest"
import { Effect, FileSystem, Layer, Metric, PlatformError, Schema } from "effect"
import * as CircuitBreaker from "../src/CircuitBreaker.ts"
import * as DeferredDelivery from "../src/DeferredDelivery.ts"
import * as FallbackStore from "../src/FallbackStore.ts"
import * as internal from "../src/internal/fallbackStore.ts"

/** The real file system, but the first read of the file `name` fails with EMFILE (too many open files). */
const oneTransientReadFailure = (name: string) => {
  let failed = false
  return Layer.effect(
    FileSystem.FileSystem,
    Effect.map(FileSystem.FileSystem, (fs) =>
      FileSystem.FileSystem.of({
        ...fs,
        readFile: (path) => {
          if (!failed && path.endsWith(`/${name}`)) {
            failed = true
            return Effect.fail(PlatformError.systemError({
              _tag: "Unknown",
              module: "FileSystem",
              method: "readFile",
              pathOrDescriptor: path,
              description: "EMFILE: too many open files",
              cause: Object.assign(new Error("EMFILE: too many open files"), { code: "EMFILE" })
            }))
          }
          return fs.readFile(path)
        }
      }))
  ).pipe(Layer.provide(NodeServices.layer))
}

describe("FallbackStore: an entry unreadable at start", () => {
  it.effect("a message acknowledged by one process is delivered by the next, after a transient read error", () =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const dir = yield* Effect.acquireRelease(
        fs.makeTempDirectory({ prefix: "fallback-unreadable-unreadable-" }),
        (made) => Effect.orDie(fs.remove(made, { recursive: true, force: true }))
      )
      const delivered: Array<string> = []
      const queueOn = (forceOpen: boolean) =>
        Effect.gen(function*() {
          const breaker = yield* CircuitBreaker.make({ name: "sink" })
          if (forceOpen) yield* breaker.forceOpen()
          const queue = yield* DeferredDelivery.make({
            name: "outbox",
            schema: Schema.String,
            sink: (message) => Effect.sync(() => void delivered.push(message)),
            breaker,
            store: yield* FallbackStore.make({ name: "journal", directory: dir }),
            retryInterval: "10 millis"
          })
          return { queue, breaker }
        })

      // Process 1: the sink is down; m1 and m2 are acknowledged as queued.
      yield* Effect.scoped(Effect.gen(function*() {
        const { queue } = yield* queueOn(true)
        assert.strictEqual((yield* queue.send("m1", { key: "m1" }))._tag, "Queued")
        assert.strictEqual((yield* queue.send("m2", { key: "m2" }))._tag, "Queued")
      }))

      // Process 2: m2's journal file cannot be read once as the store starts (EMFILE); the sink is still down and
      // m3 is sent.
      const m2File = internal.fileNameOf("outbox/q/0000000000000001")
      yield* Effect.scoped(Effect.gen(function*() {
        const { queue } = yield* queueOn(true)
        assert.strictEqual((yield* queue.send("m3", { key: "m3" }))._tag, "Queued")
      })).pipe(Effect.provide(oneTransientReadFailure(m2File)))

      // Process 3: everything readable, the sink up: every acknowledged message goes out, in order.
      yield* Effect.scoped(Effect.gen(function*() {
        const { queue } = yield* queueOn(false)
        yield* queue.awaitEmpty.pipe(Effect.timeout("5 seconds"))
      }))
      assert.deepStrictEqual(delivered, ["m1", "m2", "m3"])
    }).pipe(Effect.scoped, Effect.provideService(Metric.MetricRegistry, new Map()), Effect.provide(NodeServices.layer)))
})
