/**
 * `ResilientRedis` interrupted at every point, and calls to Redis that end interrupted on their own, on an in-memory
 * `RedisStore` that runs the module's scripts: each interruption point is reached deterministically.
 */
import * as FallbackStore from "@effect-resilience/core/FallbackStore"
import { assert, describe, it } from "@effect/vitest"
import { Cause, Deferred, Effect, Exit, Fiber, Option, Schedule, Scheduler, type Scope, Stream } from "effect"
import * as internal from "../src/internal/resilientRedis.ts"
import * as RedisStore from "../src/RedisStore.ts"
import * as ResilientRedis from "../src/ResilientRedis.ts"

/** An effect that ends interrupted on its own: it joins a fiber something else interrupted. */
const selfInterrupted: Effect.Effect<never> = Effect.forkChild(Effect.never).pipe(
  Effect.tap(Fiber.interrupt),
  Effect.flatMap(Fiber.join)
)

type Mode = "up" | "down" | "self" | "hang"

/**
 * An in-memory RedisStore: "up" answers (emulating ResilientRedis' scripts), "down" fails with RedisStoreError,
 * "self" ends interrupted on its own, "hang" never answers.
 */
const makeFakeStore = (prefix = "t:") => {
  const data = new Map<string, string>()
  const state = { mode: "up" as Mode, calls: 0 }
  const gate = <A>(operation: string, key: string | undefined, f: () => A) =>
    Effect.suspend((): Effect.Effect<A, RedisStore.RedisStoreError> => {
      state.calls++
      switch (state.mode) {
        case "up":
          return Effect.sync(f)
        case "down":
          return Effect.fail(new RedisStore.RedisStoreError({ operation, key, message: "down" }))
        case "self":
          return selfInterrupted
        case "hang":
          return Effect.never
      }
    })
  const runScript = (script: unknown, params: ReadonlyArray<unknown>): unknown => {
    if (script === internal.marker) {
      const [key, candidate] = params as [string, string]
      if (!data.has(key)) data.set(key, candidate)
      return data.get(key)
    }
    if (script === internal.write) {
      const [keys, args] = params as [ReadonlyArray<string>, ReadonlyArray<string | number>]
      if (args[0] === "s") {
        data.set(keys[0]!, String(args[1]))
        data.set(keys[1]!, String(args[2]))
        return 0
      }
      const found = data.delete(keys[0]!)
      data.set(keys[1]!, String(args[2]))
      return found ? 1 : 0
    }
    if (script === internal.apply) {
      const [keys, args] = params as [ReadonlyArray<string>, ReadonlyArray<string | number>]
      let applied = 0
      let stale = 0
      for (let i = 0; i < keys.length / 2; i++) {
        const vk = keys[2 * i]!
        const ak = keys[2 * i + 1]!
        const op = args[4 * i + 1]
        const value = String(args[4 * i + 2])
        const at = Number(args[4 * i + 3])
        const current = data.get(ak)
        if (current !== undefined && Number(current) > at) {
          stale++
          continue
        }
        if (op === "s") data.set(vk, value)
        else data.delete(vk)
        data.set(ak, String(at))
        applied++
      }
      return [applied, stale]
    }
    throw new Error("unknown script")
  }
  const store: RedisStore.RedisStore = RedisStore.RedisStore.of({
    prefix,
    key: (k) => prefix + k,
    get: (k) => gate("get", k, () => Option.fromNullishOr(data.get(prefix + k))),
    set: (k, v) => gate("set", k, () => void data.set(prefix + k, v)),
    remove: (k) => gate("remove", k, () => data.delete(prefix + k)),
    increment: (k, by = 1) =>
      gate("increment", k, () => {
        const n = Number(data.get(prefix + k) ?? 0) + by
        data.set(prefix + k, String(n))
        return n
      }),
    publish: (c) => gate("publish", c, () => 0),
    subscribe: () => Effect.succeed(Stream.empty),
    eval: ((script: unknown) => (...params: ReadonlyArray<unknown>) =>
      gate("eval", undefined, () =>
        runScript(script, params))) as RedisStore.RedisStore["eval"]
  })
  return { store, data, state, prefix }
}

type Fake = ReturnType<typeof makeFakeStore>

/** A ResilientRedis on `fake` and a memory fallback, for the scope. */
const openCache = (fake: Fake, options: ResilientRedis.Options = {}) =>
  Effect.gen(function*() {
    const fallback = yield* FallbackStore.makeMemory()
    const cache = yield* ResilientRedis.make({ pingInterval: "1 hour", ...options }).pipe(
      Effect.provideService(RedisStore.RedisStore, fake.store),
      Effect.provideService(FallbackStore.FallbackStore, fallback)
    )
    // The first ping (forked as the layer starts) has run.
    yield* Effect.sleep("5 millis")
    return { cache, fallback }
  })

const copyOf = (fallback: FallbackStore.FallbackStore, key: string) =>
  Effect.map(
    fallback.get(`resilient-redis:value:${key}`),
    Option.map((stored) => internal.decodeCopy(stored).copy)
  )

const journalEntries = (fallback: FallbackStore.FallbackStore) =>
  Effect.map(fallback.keys, (keys) => keys.filter((k) => k.startsWith("resilient-redis:journal:")).sort())

/** Runs `effect` yielding between every two instructions, and interrupts it after `k` yields of the test fiber. */
const interruptAfter = <A, E>(effect: Effect.Effect<A, E>, k: number) =>
  Effect.gen(function*() {
    const fiber = yield* Effect.forkChild(effect.pipe(Effect.provideService(Scheduler.MaxOpsBeforeYield, 1)))
    for (let i = 0; i < k; i++) yield* Effect.yieldNow
    yield* Fiber.interrupt(fiber)
    return yield* Fiber.await(fiber)
  })

const within = <A, E, R>(effect: Effect.Effect<A, E, R>, what: string) =>
  effect.pipe(Effect.timeoutOrElse({ duration: "2 seconds", orElse: () => Effect.die(`${what}: hung`) }))

/**
 * For each of 120 interruption points: `check` runs a fresh cache with Redis up and "k" set to "old", interrupts an
 * operation at that point and says what is wrong, if anything. Every point must leave nothing wrong.
 */
const sweep = (
  check: (
    setup: {
      readonly fake: Fake
      readonly cache: ResilientRedis.ResilientRedis
      readonly fallback: FallbackStore.FallbackStore
    },
    k: number
  ) => Effect.Effect<string | undefined, unknown, Scope.Scope>
) =>
  Effect.gen(function*() {
    const wrong: Array<string> = []
    for (let k = 0; k < 120; k++) {
      const found = yield* Effect.scoped(Effect.gen(function*() {
        const fake = makeFakeStore()
        const { cache, fallback } = yield* openCache(fake)
        yield* cache.set("k", "old")
        const what = yield* check({ fake, cache, fallback }, k)
        // Whatever the point, the writers' lock is free.
        yield* within(cache.set("other", "x"), "a later set")
        return what
      }))
      if (found !== undefined) wrong.push(`interrupted after ${k} turns: ${found}`)
    }
    assert.deepStrictEqual(wrong, [])
  })

describe("ResilientRedis, interrupted", () => {
  it.live(
    "a set interrupted at any point leaves the fallback's copy as Redis has it, or none",
    () =>
      sweep(({ cache, fake, fallback }, k) =>
        Effect.gen(function*() {
          yield* interruptAfter(cache.set("k", "new"), k)
          const inRedis = fake.data.get("t:k")
          const copy = yield* copyOf(fallback, "k")
          // Interrupted while its command was in flight, it cannot know whether Redis took it: the copy goes.
          return Option.isSome(copy) && inRedis !== copy.value
            ? `Redis ${inRedis}, fallback copy ${copy.value}`
            : undefined
        })
      ),
    60_000
  )

  it.live(
    "a remove interrupted at any point leaves no fallback copy of a key Redis deleted",
    () =>
      sweep(({ cache, fake, fallback }, k) =>
        Effect.gen(function*() {
          yield* interruptAfter(cache.remove("k"), k)
          const copy = yield* copyOf(fallback, "k")
          // During the next outage, the removed key would read as "old" again.
          return !fake.data.has("t:k") && Option.isSome(copy)
            ? `Redis removed it, the copy holds ${copy.value}`
            : undefined
        })
      ),
    60_000
  )

  it.live(
    "a set on the fallback path interrupted at any point: a stored journal entry is pending and readable",
    () =>
      sweep(({ cache, fake, fallback }, k) =>
        Effect.gen(function*() {
          fake.state.mode = "down"
          yield* interruptAfter(cache.set("k", "new"), k)
          const entries = yield* journalEntries(fallback)
          const { pending } = yield* cache.snapshot
          if (entries.length !== pending) return `${entries.length} journal entries stored, pending ${pending}`
          const read = yield* cache.get("k")
          if (entries.length > 0 && !(Option.isSome(read) && read.value === "new")) {
            return `journaled (pending ${pending}) but a read gives ${read}`
          }
          // A later write takes the next seq.
          yield* within(cache.set("k2", "x"), "a later set")
          const after = yield* journalEntries(fallback)
          const seqs = new Set(after.map((name) => name.slice("resilient-redis:journal:".length).split(":")[0]))
          return seqs.size === after.length ? undefined : `two journal entries share a seq: ${after.join(", ")}`
        })
      ),
    60_000
  )

  it.live("a read whose Redis command ends interrupted on its own answers from the fallback", () =>
    Effect.gen(function*() {
      const fake = makeFakeStore()
      const { cache } = yield* openCache(fake)
      yield* cache.set("k", "v")
      fake.state.mode = "self"
      const exit = yield* Effect.exit(within(cache.get("k"), "get"))
      assert.deepStrictEqual(exit, Exit.succeed(Option.some("v")))
    }).pipe(Effect.scoped))

  it.live("a write whose Redis command ends interrupted on its own is journaled, not turned into an interruption", () =>
    Effect.gen(function*() {
      const fake = makeFakeStore()
      const { cache } = yield* openCache(fake)
      fake.state.mode = "self"
      const exit = yield* Effect.exit(within(cache.set("k", "v"), "set"))
      assert.isTrue(Exit.isSuccess(exit), `set ended ${Exit.isFailure(exit) ? Cause.pretty(exit.cause) : "ok"}`)
      assert.strictEqual((yield* cache.snapshot).pending, 1)
    }).pipe(Effect.scoped))
})

describe("ResilientRedis, health during a replay", () => {
  it.live("stays Fallback until the replay has ended, while a write is still being journaled", () =>
    Effect.gen(function*() {
      const fake = makeFakeStore()
      const memory = yield* FallbackStore.makeMemory()
      // A slow disk, when armed: writing a journal entry waits for `released`.
      const released = yield* Deferred.make<void>()
      let armed = false
      const fallback: FallbackStore.FallbackStore = {
        ...memory,
        set: (key, value, options) =>
          armed && key.startsWith("resilient-redis:journal:")
            ? Effect.andThen(Deferred.await(released), memory.set(key, value, options))
            : memory.set(key, value, options)
      }
      const cache = yield* ResilientRedis.make({ pingInterval: "20 millis" }).pipe(
        Effect.provideService(RedisStore.RedisStore, fake.store),
        Effect.provideService(FallbackStore.FallbackStore, fallback)
      )
      fake.state.mode = "down"
      yield* cache.set("a", "1")
      assert.strictEqual(yield* cache.health, "Fallback")
      // A second write goes to the journal (it is not empty) and is held on the slow disk, holding the writers' lock.
      armed = true
      const writer = yield* Effect.forkChild(cache.set("b", "2"))
      yield* Effect.sleep("10 millis")
      // Redis is back: the replay takes "a" and waits for the writer before it hands over.
      fake.state.mode = "up"
      yield* Effect.sleep("200 millis")
      assert.strictEqual(fake.data.get("t:a"), "1")
      assert.strictEqual(yield* cache.health, "Fallback")
      assert.strictEqual((yield* cache.snapshot).state, "Fallback")
      yield* Deferred.succeed(released, undefined)
      yield* Fiber.join(writer)
      yield* within(
        Effect.repeat(cache.health, { schedule: Schedule.spaced("10 millis"), until: (s) => s === "Healthy" }),
        "the replay's end"
      )
      assert.strictEqual(fake.data.get("t:b"), "2")
    }).pipe(Effect.scoped))
})
