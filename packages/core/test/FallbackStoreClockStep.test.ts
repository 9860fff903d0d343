// "Past maxEntries or maxBytes, a set evicts the entries closest to expiry, then the least recently written"
// (docs/stores.md). That order was read from each entry's wall-clock `writtenAt`, so after the clock stepped back (an
// NTP correction, a VM restored) the entries written since counted as the oldest and went first.
import { NodeServices } from "@effect/platform-node"
import { assert, describe, it } from "@effect/vitest"
import { Effect, FileSystem, Metric } from "effect"
import { TestClock } from "effect/testing"
import * as FallbackStore from "../src/FallbackStore.ts"

const HOUR = 60 * 60 * 1000

const stores = [
  {
    kind: "file",
    make: (maxEntries: number) =>
      Effect.gen(function*() {
        const fs = yield* FileSystem.FileSystem
        const dir = yield* Effect.acquireRelease(
          fs.makeTempDirectory({ prefix: "fallback-clock-clock-" }),
          (made) => Effect.orDie(fs.remove(made, { recursive: true, force: true }))
        )
        return yield* FallbackStore.make({ name: "test", directory: dir, maxEntries })
      })
  },
  { kind: "memory", make: (maxEntries: number) => FallbackStore.makeMemory({ name: "test", maxEntries }) }
] as const

describe("FallbackStore: eviction across a clock step", () => {
  for (const { kind, make } of stores) {
    it.effect(`${kind}: after the clock steps back, a set evicts the least recently written, not the newest`, () =>
      Effect.gen(function*() {
        const store = yield* make(2)
        yield* TestClock.setTime(10 * HOUR)
        yield* store.set("a", "1") // written first
        yield* TestClock.adjust("1 second")
        yield* store.set("b", "2") // written second
        // The clock is stepped back an hour (NTP correction).
        yield* TestClock.setTime(9 * HOUR)
        yield* store.set("c", "3") // written third: evicts "a", the least recently written
        assert.deepStrictEqual([...(yield* store.keys)].sort(), ["b", "c"])
        yield* TestClock.adjust("1 second")
        yield* store.set("d", "4") // written fourth: must evict "b", written before "c"
        assert.deepStrictEqual([...(yield* store.keys)].sort(), ["c", "d"])
      }).pipe(
        Effect.scoped,
        Effect.provideService(Metric.MetricRegistry, new Map()),
        Effect.provide(NodeServices.layer)
      ))
  }
})
