import { NodeServices } from "@effect/platform-node"
import { assert, describe, it } from "@effect/vitest"
import {
  ConfigProvider,
  Duration,
  Effect,
  Exit,
  Fiber,
  FileSystem,
  Latch,
  Layer,
  Logger,
  Metric,
  Option,
  Path,
  pipe,
  Schema
} from "effect"
import { TestClock } from "effect/testing"
import { execFileSync, spawn, spawnSync } from "node:child_process"
import { join } from "node:path"
import * as FallbackStore from "../src/FallbackStore.ts"
import * as internal from "../src/internal/fallbackStore.ts"
import { interruptedAfter } from "./interruption.ts"

// -----------------------------------------------------------------------------
// helpers
// -----------------------------------------------------------------------------

/** A fresh directory under the system's temp directory, removed with the test's scope. */
const tempDir = Effect.gen(function*() {
  const fs = yield* FileSystem.FileSystem
  return yield* Effect.acquireRelease(
    fs.makeTempDirectory({ prefix: "fallback-store-" }),
    (dir) => Effect.orDie(fs.remove(dir, { recursive: true, force: true }))
  )
})

const sorted = (xs: ReadonlyArray<string>) => [...xs].sort()

const utf8 = (s: string) => new TextEncoder().encode(s)

const sizeOf = (key: string, value: string) => internal.entryLength({ key, value, expiresAt: Infinity, writtenAt: 0 })

const withEnv = (vars: Record<string, string>) =>
  FallbackStore.layerConfig().pipe(
    Layer.provide(ConfigProvider.layer(ConfigProvider.fromEnv({ env: vars }))),
    Layer.provide(NodeServices.layer)
  )

/** The files in `dir`, but the lock of an open store. */
const list = (dir: string) =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    return sorted((yield* fs.readDirectory(dir)).filter((name) => name !== internal.LOCK_NAME))
  })

const fileOf = (dir: string, key: string) =>
  Effect.gen(function*() {
    const path = yield* Path.Path
    return path.join(dir, internal.fileNameOf(key))
  })

const readRaw = (dir: string, key: string) =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    return yield* fs.readFile(yield* fileOf(dir, key))
  })

const writeRaw = (dir: string, key: string, bytes: Uint8Array) =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    return yield* fs.writeFile(yield* fileOf(dir, key), bytes)
  })

const exists = (dir: string, key: string) =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    return yield* fs.exists(yield* fileOf(dir, key))
  })

/** One turn of the event loop, so that real file I/O started by another fiber can finish (no timer involved). */
const tick = Effect.promise(() => new Promise<void>((resolve) => setImmediate(resolve)))

/** The real file system, but every `remove` waits for `gate` to open: a disk slower than any time bound. */
const gatedRemovals = (gate: Latch.Latch) =>
  Layer.effect(
    FileSystem.FileSystem,
    Effect.map(FileSystem.FileSystem, (fs) =>
      FileSystem.FileSystem.of({
        ...fs,
        // Entries only: the lock's files are written and removed when the store opens and closes.
        remove: (path, options) =>
          internal.isEntryName(path.slice(path.lastIndexOf("/") + 1))
            ? gate.whenOpen(fs.remove(path, options))
            : fs.remove(path, options)
      }))
  )

const metricValue = (id: string, attributes: Record<string, string> = {}) =>
  Metric.snapshot.pipe(Effect.map((all) => {
    const found = all.find((m) =>
      m.id === id && m.attributes?.["policy"] === "test" &&
      Object.entries(attributes).every(([k, v]) => m.attributes?.[k] === v)
    )
    const state = found?.state as { readonly count?: number; readonly value?: number } | undefined
    return state?.count ?? state?.value
  }))

/** Runs `f` with a list that collects the warnings it logs. */
const withWarnings = <A, E, R>(f: (warnings: Array<string>) => Effect.Effect<A, E, R>) => {
  const warnings: Array<string> = []
  const logger = Logger.make((options) => {
    if (options.logLevel === "Warn") warnings.push(String(options.message))
  })
  return f(warnings).pipe(Effect.provideService(Logger.CurrentLoggers, new Set([logger])))
}

/** A real file system and a fresh metric registry. */
const live = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  effect.pipe(Effect.provideService(Metric.MetricRegistry, new Map()), Effect.provide(NodeServices.layer))

const fileStore = (dir: string, options: FallbackStore.MemoryOptions = {}) =>
  FallbackStore.make({ name: "test", ...options, directory: dir })

/** Opens a store in its own scope, runs `f` and closes it: a restart in one test. */
const session = <A, E, R>(
  dir: string,
  options: FallbackStore.MemoryOptions,
  f: (store: FallbackStore.FallbackStore) => Effect.Effect<A, E, R>
) => Effect.scoped(Effect.flatMap(fileStore(dir, options), f))

const sh = (command: string, ...args: ReadonlyArray<string>) =>
  Effect.try({ try: () => execFileSync(command, args, { stdio: "pipe" }).toString(), catch: (error) => error })

/** A tmpfs of its own at `dir` (mount needs CAP_SYS_ADMIN: the tests run as root here), unmounted at scope end. */
const tmpfs = (dir: string, options: string) =>
  Effect.acquireRelease(
    sh("mount", "-t", "tmpfs", "-o", options, "tmpfs", dir),
    () => Effect.ignore(sh("umount", "-l", dir))
  )

/**
 * An entry as 0.1.0 wrote it. Entries on disk must keep reading whatever computes the checksum and the hash: the
 * CRC-32 and the SHA-256 here were checked against `node:zlib` and `node:crypto` when they were pinned.
 */
const GOLDEN = {
  entry: {
    key: `price:${"sku-".repeat(30)}`, // 126 bytes: its file name is hashed
    value: "19.99 €",
    expiresAt: 1_767_225_600_000,
    writtenAt: 1_767_139_200_000
  },
  file: "h8786373ee0f683f1c02df78b6eb12ebeae4e5f91fc86271a504a1a28da7e6309",
  content: `FBS1 cd716cca 1767225600000 1767139200000 126 9\nprice:${"sku-".repeat(30)}\n19.99 €`
} as const

// -----------------------------------------------------------------------------
// semantics shared by the file and the memory store
// -----------------------------------------------------------------------------

const kinds = [
  {
    kind: "file",
    make: (options: FallbackStore.MemoryOptions = {}) => Effect.flatMap(tempDir, (dir) => fileStore(dir, options))
  },
  {
    kind: "memory",
    make: (options: FallbackStore.MemoryOptions = {}) => FallbackStore.makeMemory({ name: "test", ...options })
  }
] as const

for (const { kind, make } of kinds) {
  describe(`FallbackStore (${kind})`, () => {
    it.effect("round trip: set, get, has, keys, size, remove, clear", () =>
      live(Effect.gen(function*() {
        const store = yield* make()
        assert.deepStrictEqual(yield* store.get("a"), Option.none())
        yield* store.set("a", "1")
        yield* store.set("b", "")
        yield* store.set("", "empty key")
        yield* store.set("a", "2")
        assert.deepStrictEqual(yield* store.get("a"), Option.some("2"))
        assert.deepStrictEqual(yield* store.get("b"), Option.some(""))
        assert.deepStrictEqual(yield* store.get(""), Option.some("empty key"))
        assert.isTrue(yield* store.has("a"))
        assert.isFalse(yield* store.has("zz"))
        assert.deepStrictEqual(sorted(yield* store.keys), ["", "a", "b"])
        assert.strictEqual(yield* store.size, 3)
        yield* store.remove("a")
        yield* store.remove("never there")
        assert.deepStrictEqual(yield* store.get("a"), Option.none())
        assert.strictEqual(yield* store.size, 2)
        yield* store.clear
        assert.deepStrictEqual(yield* store.keys, [])
        assert.deepStrictEqual(yield* store.get("b"), Option.none())
      })))

    it.effect("values come back exactly: unicode, lone surrogates, NUL, newlines, a megabyte", () =>
      live(Effect.gen(function*() {
        const store = yield* make()
        const values = [
          "héllo wörld ✓ 日本語 🎉",
          "\uD800 lone \uDC00 halves \uDBFF",
          "a\0b\nc\r\n",
          "x".repeat(1 << 20)
        ]
        for (const [i, value] of values.entries()) yield* store.set(`v${i}`, value)
        for (const [i, value] of values.entries()) {
          assert.strictEqual(Option.getOrThrow(yield* store.get(`v${i}`)), value)
        }
      })))

    it.effect("TTL: served until expiry, not served from expiry on (inclusive), swept by the fiber", () =>
      live(Effect.gen(function*() {
        const store = yield* make({ sweepInterval: "1 minute" })
        yield* store.set("short", "s", { ttl: "10 seconds" })
        yield* store.set("long", "l", { ttl: "1 hour" })
        yield* store.set("forever", "f")
        yield* TestClock.adjust("9999 millis")
        assert.deepStrictEqual(yield* store.get("short"), Option.some("s"))
        yield* TestClock.adjust("1 millis")
        assert.deepStrictEqual(yield* store.get("short"), Option.none())
        assert.isFalse(yield* store.has("short"))
        assert.deepStrictEqual(sorted(yield* store.keys), ["forever", "long"])
        assert.strictEqual(yield* store.size, 2)
        // Not served, but held until the sweeper passes.
        assert.strictEqual(yield* metricValue("fallback_store_entries"), 3)
        // `adjust` returns once the woken sweeper is done or waits on the disk, holding the store's lock: `sweep`
        // takes the lock after it, so it returns when the sweeper is done, however slow the disk, and finds nothing.
        yield* TestClock.adjust("50 seconds") // the first sweep, at 1 minute
        assert.strictEqual(yield* store.sweep, 0)
        assert.strictEqual(yield* metricValue("fallback_store_entries"), 2)
        assert.strictEqual(yield* metricValue("fallback_store_evictions_total", { reason: "Expired" }), 1)
        yield* TestClock.adjust("1 hour")
        assert.strictEqual(yield* store.sweep, 0)
        assert.strictEqual(yield* metricValue("fallback_store_entries"), 1)
        assert.deepStrictEqual(yield* store.keys, ["forever"])
        assert.deepStrictEqual(yield* store.get("forever"), Option.some("f"))
      })))

    it.effect("sweep removes expired entries at once and says how many", () =>
      live(Effect.gen(function*() {
        const store = yield* make()
        yield* store.set("a", "1", { ttl: "1 second" })
        yield* store.set("b", "2", { ttl: "2 seconds" })
        yield* store.set("c", "3")
        yield* TestClock.adjust("1 second")
        assert.strictEqual(yield* store.sweep, 1)
        assert.strictEqual(yield* store.sweep, 0)
        yield* TestClock.adjust("1 second")
        assert.strictEqual(yield* store.sweep, 1)
        assert.deepStrictEqual(yield* store.keys, ["c"])
      })))

    it.effect("a rewrite replaces the TTL: with one, without one", () =>
      live(Effect.gen(function*() {
        const store = yield* make()
        yield* store.set("k", "1", { ttl: "1 second" })
        yield* store.set("k", "2")
        yield* TestClock.adjust("1 hour")
        assert.deepStrictEqual(yield* store.get("k"), Option.some("2"))
        yield* store.set("k", "3", { ttl: "1 second" })
        yield* TestClock.adjust("1 second")
        assert.deepStrictEqual(yield* store.get("k"), Option.none())
      })))

    it.effect("a ttl that is not a positive duration fails with BadArgument and writes nothing", () =>
      live(Effect.gen(function*() {
        const store = yield* make({ sweepInterval: "365 days" })
        for (const ttl of [0, -5, "0 seconds", Number.NaN] as ReadonlyArray<Duration.Input>) {
          const error = yield* Effect.flip(store.set("k", "v", { ttl }))
          assert.strictEqual(error.reason, "BadArgument")
          assert.strictEqual(error.key, "k")
        }
        assert.deepStrictEqual(yield* store.keys, [])
        // A TTL too long to store means no expiry.
        yield* store.set("k", "v", { ttl: Number.MAX_VALUE })
        yield* TestClock.adjust("3650 days")
        assert.deepStrictEqual(yield* store.get("k"), Option.some("v"))
      })))

    it.effect("maxEntries: evicts the entry closest to expiry, entries without a TTL last, oldest first", () =>
      live(Effect.gen(function*() {
        const store = yield* make({ maxEntries: 3 })
        yield* store.set("old", "1")
        yield* TestClock.adjust("1 second")
        yield* store.set("newer", "2")
        yield* store.set("minute", "3", { ttl: "1 minute" })
        yield* store.set("hour", "4", { ttl: "1 hour" }) // over the cap: "minute" expires first
        assert.deepStrictEqual(sorted(yield* store.keys), ["hour", "newer", "old"])
        yield* store.set("x", "5") // "hour" still expires before entries without a TTL
        assert.deepStrictEqual(sorted(yield* store.keys), ["newer", "old", "x"])
        yield* store.set("y", "6") // all without a TTL: the least recently written goes
        assert.deepStrictEqual(sorted(yield* store.keys), ["newer", "x", "y"])
        assert.strictEqual(yield* metricValue("fallback_store_evictions_total", { reason: "Capacity" }), 3)
      })))

    it.effect("maxEntries: an expired entry goes before any live one, and the entry written never goes", () =>
      live(Effect.gen(function*() {
        const store = yield* make({ maxEntries: 2 })
        yield* store.set("a", "1")
        yield* store.set("b", "2", { ttl: "1 second" })
        yield* TestClock.adjust("1 second")
        yield* store.set("c", "3", { ttl: "1 millis" }) // the closest to expiry, but the one being written
        assert.deepStrictEqual(sorted(yield* store.keys), ["a", "c"])
        assert.strictEqual(yield* metricValue("fallback_store_evictions_total", { reason: "Expired" }), 1)
        assert.strictEqual(yield* metricValue("fallback_store_evictions_total", { reason: "Capacity" }), 0)
      })))

    it.effect("maxEntries: the entry written is kept even when it is the closest to expiry", () =>
      live(Effect.gen(function*() {
        const store = yield* make({ maxEntries: 1 })
        yield* store.set("a", "1")
        yield* store.set("b", "2", { ttl: "1 minute" })
        assert.deepStrictEqual(yield* store.keys, ["b"])
        assert.deepStrictEqual(yield* store.get("b"), Option.some("2"))
      })))

    it.effect("a TTL under a millisecond is rounded up: the entry is served for a millisecond", () =>
      live(Effect.gen(function*() {
        const store = yield* make()
        yield* store.set("a", "1", { ttl: Duration.nanos(500_000n) })
        assert.deepStrictEqual(yield* store.get("a"), Option.some("1"))
        yield* TestClock.adjust("1 millis")
        assert.deepStrictEqual(yield* store.get("a"), Option.none())
      })))

    it.effect("maxBytes: evicts until the entries fit, rejects an entry larger than the cap as TooLarge", () =>
      live(Effect.gen(function*() {
        const one = sizeOf("a", "x".repeat(100))
        const store = yield* make({ maxBytes: one * 3 })
        yield* store.set("a", "x".repeat(100))
        yield* store.set("b", "x".repeat(100))
        yield* store.set("c", "x".repeat(100))
        assert.strictEqual(yield* metricValue("fallback_store_bytes"), one * 3)
        yield* store.set("d", "x".repeat(150)) // needs the room of two
        assert.deepStrictEqual(sorted(yield* store.keys), ["c", "d"])
        const error = yield* Effect.flip(store.set("e", "x".repeat(one * 3)))
        assert.strictEqual(error.reason, "TooLarge")
        assert.deepStrictEqual(sorted(yield* store.keys), ["c", "d"])
      })))

    it.effect.prop(
      "two distinct keys never collide (short keys, and the same keys made long enough to be hashed)",
      [Schema.String, Schema.String, Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 60 }))],
      ([a, b, n]) =>
        live(Effect.gen(function*() {
          if (a === b) return
          const store = yield* make()
          // Repeating both n times keeps them distinct; the padded pair is past 100 bytes, so its names are hashed.
          const pad = "-".repeat(120)
          const pairs = [[a, b], [a.repeat(n), b.repeat(n)], [`${a}${pad}`, `${b}${pad}`]]
          for (const [x, y] of pairs) {
            yield* store.set(x, `value of ${x}`)
            yield* store.set(y, `value of ${y}`)
            assert.strictEqual(Option.getOrThrow(yield* store.get(x)), `value of ${x}`)
            assert.strictEqual(Option.getOrThrow(yield* store.get(y)), `value of ${y}`)
          }
          const keys = new Set(pairs.flat())
          for (const key of keys) assert.strictEqual(Option.getOrThrow(yield* store.get(key)), `value of ${key}`)
          assert.strictEqual(yield* store.size, keys.size)
        })),
      // 150 stores opened and synced to disk: seconds on a loaded machine.
      { arbitrary: { runs: 150, size: 40 }, timeout: 30_000 }
    )

    it.effect("the sweeper stops with the store's scope", () =>
      live(Effect.gen(function*() {
        const closed = yield* Effect.scoped(Effect.gen(function*() {
          const store = yield* make({ sweepInterval: "1 second" })
          yield* store.set("a", "1", { ttl: "1 millis" })
          return store
        }))
        yield* TestClock.adjust("10 seconds")
        for (let i = 0; i < 20; i++) yield* tick
        // Nobody swept: the entry is still held (not served).
        assert.strictEqual(yield* closed.sweep, 1)
      })))

    it.effect("options are validated into PolicyConfigError", () =>
      live(
        Effect.gen(function*() {
          const error = yield* Effect.flip(make({ maxEntries: 0, maxBytes: 1.5, sweepInterval: "0 seconds" }))
          assert.strictEqual(error._tag, "PolicyConfigError")
          if (error._tag !== "PolicyConfigError") return
          assert.deepStrictEqual(error.issues.map((issue) => issue.path), ["maxEntries", "maxBytes", "sweepInterval"])
        }).pipe(Effect.scoped)
      ))
  })
}

// -----------------------------------------------------------------------------
// the file store
// -----------------------------------------------------------------------------

describe("FallbackStore (file) on disk", () => {
  it.effect("entries survive a restart; the file holds header, key and value", () =>
    live(Effect.gen(function*() {
      const dir = yield* tempDir
      yield* session(dir, {}, (store) =>
        Effect.all([store.set("greeting", "hello\nworld"), store.set("t", "x", { ttl: "1 minute" })]))
      const raw = new TextDecoder().decode(yield* readRaw(dir, "greeting"))
      assert.match(raw, /^FBS1 [0-9a-f]{8} - 0 8 11\ngreeting\nhello\nworld$/)
      assert.deepStrictEqual(yield* list(dir), sorted([internal.fileNameOf("greeting"), internal.fileNameOf("t")]))
      const back = yield* session(dir, {}, (store) =>
        Effect.all([store.get("greeting"), store.get("t"), store.keys]))
      assert.deepStrictEqual(back[0], Option.some("hello\nworld"))
      assert.deepStrictEqual(back[1], Option.some("x"))
      assert.deepStrictEqual(sorted(back[2]), ["greeting", "t"])
      // Expiry is in the entry: after the clock passes it, the next start removes it.
      yield* TestClock.adjust("1 minute")
      const keys = yield* session(dir, {}, (store) =>
        store.keys)
      assert.deepStrictEqual(keys, ["greeting"])
      assert.isFalse(yield* exists(dir, "t"))
    })))

  it.effect("an entry written by 0.1.0, under its hashed name, is read", () =>
    live(Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const path = yield* Path.Path
      const dir = yield* tempDir
      yield* fs.writeFile(path.join(dir, GOLDEN.file), utf8(GOLDEN.content))
      const read = yield* session(dir, {}, (store) => Effect.all([store.get(GOLDEN.entry.key), store.keys]))
      assert.deepStrictEqual(read, [Option.some(GOLDEN.entry.value), [GOLDEN.entry.key]])
      assert.deepStrictEqual(yield* list(dir), [GOLDEN.file])
    })))

  it.effect("a slow sweep: expired entries are not served meanwhile, and sweep waits for it", () =>
    live(Effect.gen(function*() {
      const dir = yield* tempDir
      const gate = yield* Latch.make()
      yield* Effect.gen(function*() {
        const store = yield* fileStore(dir, { sweepInterval: "1 minute" })
        yield* store.set("short", "s", { ttl: "10 seconds" })
        yield* store.set("forever", "f")
        yield* TestClock.adjust("1 minute") // the sweeper wakes; its removal of "short" hangs
        const manual = yield* Effect.forkChild(store.sweep)
        assert.deepStrictEqual(yield* store.get("short"), Option.none())
        assert.deepStrictEqual(yield* store.keys, ["forever"])
        assert.strictEqual(yield* metricValue("fallback_store_entries"), 2) // held until removed
        assert.isTrue(yield* exists(dir, "short"))
        yield* gate.open
        // Had `sweep` not waited for the sweeper, it would have removed "short" itself and said 1.
        assert.strictEqual(yield* Fiber.join(manual), 0)
        assert.strictEqual(yield* metricValue("fallback_store_entries"), 1)
        assert.strictEqual(yield* metricValue("fallback_store_evictions_total", { reason: "Expired" }), 1)
        assert.isFalse(yield* exists(dir, "short"))
      }).pipe(
        Effect.ensuring(gate.open), // a failed assertion must not leave the sweeper hanging, nor the test
        Effect.provide(gatedRemovals(gate))
      )
    })))

  it.effect("the directory is created if missing; other files in it are left alone, even by clear", () =>
    live(Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const dir = `${yield* tempDir}/nested/store`
      yield* session(dir, {}, (store) => store.set("a", "1"))
      yield* fs.writeFileString(`${dir}/README`, "mine")
      yield* session(dir, {}, (store) => Effect.andThen(store.clear, store.keys))
      assert.deepStrictEqual(yield* list(dir), ["README"])
    })))

  it.effect("hostile keys stay inside the directory, one entry file each, and come back", () =>
    live(Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const root = yield* tempDir
      const dir = `${root}/store`
      const keys = [
        "../../etc/passwd",
        "..",
        ".",
        "a/b",
        "a\\b",
        "/abs/path",
        "nul\0byte",
        "\0",
        "x".repeat(10_000),
        "x".repeat(10_001),
        "日本語/キー",
        "🎉".repeat(30),
        "CON",
        "Key",
        "key",
        ""
      ]
      yield* session(dir, {}, (store) =>
        Effect.gen(function*() {
          for (const key of keys) yield* store.set(key, `v:${key}`)
          for (const key of keys) assert.strictEqual(Option.getOrThrow(yield* store.get(key)), `v:${key}`)
        }))
      const names = yield* list(dir)
      assert.strictEqual(names.length, keys.length)
      for (const name of names) {
        assert.isTrue(internal.isEntryName(name), name)
        assert.isAtMost(name.length, 201)
      }
      // Nothing was written next to the directory or anywhere up the tree.
      assert.deepStrictEqual(yield* list(root), ["store"])
      assert.isFalse(yield* fs.exists(`${root}/etc`))
      // And they come back after a restart, with the full keys.
      const back = yield* session(dir, {}, (store) => store.keys)
      assert.deepStrictEqual(sorted(back), sorted(keys))
    })))

  describe("corruption", () => {
    const corruptions: ReadonlyArray<[string, (bytes: Uint8Array, other: Uint8Array) => Uint8Array]> = [
      ["a flipped bit in the value", (bytes) => bytes.map((b, i) => i === bytes.length - 2 ? b ^ 0x01 : b)],
      ["a flipped bit in the header", (bytes) => bytes.map((b, i) => i === 16 ? b ^ 0x04 : b)],
      ["a flipped checksum digit", (bytes) => bytes.map((b, i) => i === 5 ? (b === 0x30 ? 0x31 : 0x30) : b)],
      ["truncation", (bytes) => bytes.slice(0, bytes.length - 3)],
      ["truncation inside the header", (bytes) => bytes.slice(0, 10)],
      ["an empty file", () => new Uint8Array(0)],
      ["trailing bytes", (bytes) => new Uint8Array([...bytes, 0x0a])],
      ["garbage", () => new TextEncoder().encode("{\"not\": \"an entry\"}\n")],
      ["an entry of another key", (_, other) => other]
    ]

    for (const [what, corrupt] of corruptions) {
      it.effect(`${what}: not served, removed, logged and counted`, () =>
        live(withWarnings((warnings) =>
          Effect.gen(function*() {
            const dir = yield* tempDir
            const store = yield* fileStore(dir)
            yield* store.set("victim", "the value of the victim key")
            yield* store.set("other", "the value of the other key")
            yield* writeRaw(dir, "victim", corrupt(yield* readRaw(dir, "victim"), yield* readRaw(dir, "other")))
            assert.deepStrictEqual(yield* store.get("victim"), Option.none())
            assert.isFalse(yield* exists(dir, "victim"))
            assert.strictEqual(yield* metricValue("fallback_store_corrupt_total"), 1)
            assert.strictEqual(warnings.length, 1)
            assert.include(warnings[0], "corrupt entry for \"victim\"")
            // Gone for good, counted once, and the other key is untouched.
            assert.deepStrictEqual(yield* store.get("victim"), Option.none())
            assert.strictEqual(yield* metricValue("fallback_store_corrupt_total"), 1)
            assert.deepStrictEqual(yield* store.keys, ["other"])
            assert.deepStrictEqual(yield* store.get("other"), Option.some("the value of the other key"))
          })
        )))
    }

    it.effect("corrupt entries found at start are removed and counted; stray temporary files go too", () =>
      live(withWarnings((warnings) =>
        Effect.gen(function*() {
          const fs = yield* FileSystem.FileSystem
          const dir = yield* tempDir
          yield* session(dir, {}, (store) => Effect.all([store.set("good", "1"), store.set("bad", "2")]))
          const bytes = yield* readRaw(dir, "bad")
          yield* writeRaw(dir, "bad", bytes.slice(0, bytes.length - 1))
          // A valid entry under another key's name.
          yield* writeRaw(dir, "misplaced", yield* readRaw(dir, "good"))
          yield* fs.writeFileString(`${dir}/${internal.TEMP_PREFIX}deadbeef-1.tmp`, "FBS1 half a wri")
          const store = yield* fileStore(dir)
          assert.deepStrictEqual(yield* store.keys, ["good"])
          assert.deepStrictEqual(yield* list(dir), [internal.fileNameOf("good")])
          assert.strictEqual(yield* metricValue("fallback_store_corrupt_total"), 2)
          assert.deepStrictEqual(
            sorted(
              warnings.map((w) =>
                w.includes("truncated") ? "truncated" : w.includes("is not its file") ? "misplaced" : w
              )
            ),
            ["misplaced", "truncated"]
          )
        })
      )))
  })

  describe("disk errors", () => {
    it.effect("a read-only file system: typed ReadOnly errors, the old value served, no temporary file", () =>
      live(Effect.gen(function*() {
        const dir = yield* tempDir
        yield* tmpfs(dir, "size=1m")
        const store = yield* fileStore(dir)
        yield* store.set("a", "old")
        yield* sh("mount", "-o", "remount,ro", dir)
        const error = yield* Effect.flip(store.set("a", "new"))
        assert.strictEqual(error._tag, "FallbackStoreError")
        assert.strictEqual(error.reason, "ReadOnly")
        assert.strictEqual(error.operation, "set")
        assert.strictEqual(error.key, "a")
        assert.include(error.message, "read-only")
        assert.strictEqual((yield* Effect.flip(store.set("b", "new"))).reason, "ReadOnly")
        assert.strictEqual((yield* Effect.flip(store.remove("a"))).reason, "ReadOnly")
        assert.strictEqual((yield* Effect.flip(store.clear)).reason, "ReadOnly")
        assert.deepStrictEqual(yield* store.get("a"), Option.some("old"))
        assert.deepStrictEqual(yield* store.keys, ["a"])
        assert.deepStrictEqual(yield* list(dir), [internal.fileNameOf("a")])
        // A store can still start there, and serve what is there.
        const again = yield* session(dir, {}, (reopened) => reopened.get("a"))
        assert.deepStrictEqual(again, Option.some("old"))
        // And one whose directory must be created fails to start, typed.
        const start = yield* Effect.flip(Effect.scoped(fileStore(`${dir}/sub`)))
        assert.strictEqual(start._tag === "FallbackStoreError" && start.reason, "ReadOnly")
        assert.strictEqual(start._tag === "FallbackStoreError" && start.operation, "open")
      })))

    it.effect("a full disk: typed DiskFull, the old value intact, the temporary file removed", () =>
      live(Effect.gen(function*() {
        const dir = yield* tempDir
        yield* tmpfs(dir, "size=64k")
        const store = yield* fileStore(dir)
        yield* store.set("a", "old")
        const error = yield* Effect.flip(store.set("a", "x".repeat(200_000)))
        assert.strictEqual(error.reason, "DiskFull")
        assert.strictEqual(error.key, "a")
        assert.deepStrictEqual(yield* list(dir), [internal.fileNameOf("a")])
        assert.deepStrictEqual(yield* store.get("a"), Option.some("old"))
        // The space came back with the temporary file: the next write that fits succeeds.
        yield* store.set("a", "y".repeat(10_000))
        assert.strictEqual(Option.getOrThrow(yield* store.get("a")).length, 10_000)
      })))

    it.effect("a full disk and a read-only file system: the error names the store's directory", () =>
      live(Effect.gen(function*() {
        const dir = yield* tempDir
        yield* tmpfs(dir, "size=64k")
        const store = yield* fileStore(dir)
        yield* store.set("a", "old")
        const full = yield* Effect.flip(store.set("a", "x".repeat(200_000)))
        assert.strictEqual(full.reason, "DiskFull")
        assert.include(full.message, `the disk is full (ENOSPC) in directory ${JSON.stringify(dir)}`)
        yield* sh("mount", "-o", "remount,ro", dir)
        for (const error of [yield* Effect.flip(store.set("a", "new")), yield* Effect.flip(store.clear)]) {
          assert.strictEqual(error.reason, "ReadOnly")
          assert.include(error.message, `the file system is read-only (EROFS) in directory ${JSON.stringify(dir)}`)
        }
      })))

    it.effect("an immutable directory (chattr +i stops even root): typed PermissionDenied", () =>
      live(Effect.gen(function*() {
        const dir = yield* tempDir
        const store = yield* fileStore(dir)
        yield* store.set("a", "old")
        yield* Effect.acquireRelease(sh("chattr", "+i", dir), () => Effect.ignore(sh("chattr", "-i", dir)))
        const error = yield* Effect.flip(store.set("a", "new"))
        assert.strictEqual(error.reason, "PermissionDenied")
        assert.deepStrictEqual(yield* store.get("a"), Option.some("old"))
        assert.deepStrictEqual(yield* list(dir), [internal.fileNameOf("a")])
      })))
  })

  describe("metrics", () => {
    it.effect("a store whose making is interrupted at any point leaves no metric series behind", () =>
      Effect.gen(function*() {
        for (let turns = 0; turns < 60; turns++) {
          const registry = new Map()
          yield* interruptedAfter(
            Effect.scoped(Effect.andThen(FallbackStore.makeMemory({ name: "sessions" }), Effect.never)).pipe(
              Effect.provideService(Metric.MetricRegistry, registry)
            ),
            turns
          )
          assert.strictEqual(registry.size, 0, `interrupted after ${turns} turns: its series outlived its scope`)
        }
      }))
  })

  describe("atomicity", () => {
    it.effect("a write interrupted midway leaves the old value (or the whole new one) and no temporary file", () =>
      live(Effect.gen(function*() {
        const dir = yield* tempDir
        const store = yield* fileStore(dir)
        const big = "n".repeat(500_000)
        const outcomes = { old: 0, new: 0, midway: 0 }
        for (let i = 0; i < 20; i++) {
          yield* store.set("k", "old")
          const fiber = yield* Effect.forkChild(store.set("k", big), { startImmediately: true })
          // Interrupted as soon as its temporary file shows: the write is under way, not yet renamed.
          while (fiber.pollUnsafe() === undefined) {
            if ((yield* list(dir)).some(internal.isTempName)) {
              outcomes.midway++
              break
            }
          }
          yield* Fiber.interrupt(fiber)
          const value = Option.getOrThrow(yield* store.get("k"))
          assert.isTrue(value === "old" || value === big)
          outcomes[value === "old" ? "old" : "new"]++
          assert.deepStrictEqual(yield* list(dir), [internal.fileNameOf("k")])
        }
        assert.isAbove(outcomes.midway, 0)
        assert.isAbove(outcomes.old, 0)
      })))

    it.effect("a reader never sees part of an entry under the key's name while writes go on", () =>
      live(Effect.gen(function*() {
        const fs = yield* FileSystem.FileSystem
        const dir = yield* tempDir
        const store = yield* fileStore(dir)
        const file = yield* fileOf(dir, "k")
        const writing = { on: true }
        const seen = { missing: 0, valid: 0, other: 0 }
        const reader = yield* Effect.forkChild(Effect.gen(function*() {
          while (writing.on) {
            const read = yield* Effect.exit(fs.readFile(file))
            if (Exit.isFailure(read)) seen.missing++
            else if (internal.decodeEntry(read.value)._tag === "Valid") seen.valid++
            else seen.other++
            yield* tick
          }
        }))
        for (let i = 0; i < 30; i++) yield* store.set("k", String(i).repeat(300_000))
        writing.on = false
        yield* Fiber.join(reader)
        assert.strictEqual(seen.other, 0)
        assert.isAbove(seen.valid, 0)
      })))
  })

  it.effect("caps apply at start, when they shrank since the entries were written", () =>
    live(Effect.gen(function*() {
      const dir = yield* tempDir
      yield* session(dir, {}, (store) =>
        Effect.gen(function*() {
          for (const key of ["a", "b", "c", "d"]) {
            yield* store.set(key, key)
            yield* TestClock.adjust("1 second")
          }
        }))
      const keys = yield* session(dir, { maxEntries: 2 }, (store) => store.keys)
      assert.deepStrictEqual(sorted(keys), ["c", "d"])
      assert.strictEqual((yield* list(dir)).length, 2)
    })))

  // A restart knows the order of writes by the entries' write times only, whatever order the directory lists them in.
  it.effect("caps applied at start evict the least recently written, whatever the order of their names", () =>
    live(Effect.gen(function*() {
      const dir = yield* tempDir
      const keys = ["j", "i", "h", "g", "f", "e", "d", "c", "b", "a"]
      yield* session(
        dir,
        {},
        (store) =>
          Effect.forEach(keys, (key) => Effect.andThen(store.set(key, key), TestClock.adjust("1 second")), {
            discard: true
          })
      )
      const kept = yield* session(dir, { maxEntries: 5 }, (store) => store.keys)
      assert.deepStrictEqual(sorted(kept), ["a", "b", "c", "d", "e"])
      // And the next write evicts the oldest of those left.
      const next = yield* session(dir, { maxEntries: 5 }, (store) => Effect.andThen(store.set("z", "z"), store.keys))
      assert.deepStrictEqual(sorted(next), ["a", "b", "c", "d", "z"])
    })))

  it.effect("an empty directory is one mistake, reported once, on the option given", () =>
    live(
      Effect.gen(function*() {
        const error = yield* Effect.flip(FallbackStore.make({ directory: "" }))
        assert.strictEqual(error._tag, "PolicyConfigError")
        if (error._tag !== "PolicyConfigError") return
        assert.deepStrictEqual(error.issues.map((issue) => issue.path), ["directory"])
        assert.strictEqual(
          error.message,
          "Invalid options for fallback store \"(no directory)\":\n  directory: Expected a value with a length of at least 1, got \"\""
        )
      }).pipe(Effect.scoped)
    ))

  it.effect("layerConfig reads FALLBACK_STORE_* and validates them", () =>
    live(Effect.gen(function*() {
      const dir = yield* tempDir
      const current = Effect.gen(function*() {
        return yield* FallbackStore.FallbackStore
      })
      const keys = yield* Effect.gen(function*() {
        const store = yield* FallbackStore.FallbackStore
        yield* store.set("a", "x".repeat(100))
        yield* store.set("b", "x".repeat(100))
        return yield* store.keys
      }).pipe(Effect.provide(withEnv({
        FALLBACK_STORE_DIR: dir,
        FALLBACK_STORE_MAX_BYTES: "200B",
        FALLBACK_STORE_SWEEP_INTERVAL: "5 seconds"
      })))
      assert.deepStrictEqual(keys, ["b"])
      assert.deepStrictEqual(yield* list(dir), [internal.fileNameOf("b")])

      const unparsable = yield* Effect.flip(
        Effect.provide(current, withEnv({ FALLBACK_STORE_DIR: dir, FALLBACK_STORE_MAX_ENTRIES: "many" }))
      )
      assert.strictEqual(unparsable._tag, "ConfigError")
      const outOfRange = yield* Effect.flip(
        Effect.provide(current, withEnv({ FALLBACK_STORE_DIR: dir, FALLBACK_STORE_MAX_ENTRIES: "0" }))
      )
      assert.strictEqual(outOfRange._tag, "PolicyConfigError")
      // Named by the variable the operator set, and the option it fills.
      assert.include(
        outOfRange.message,
        "FALLBACK_STORE_MAX_ENTRIES (maxEntries): Expected a value greater than or equal to 1, got 0"
      )
    })))

  it.effect("layerConfig names FALLBACK_STORE_SWEEP_INTERVAL when the sweep interval is out of range", () =>
    live(Effect.gen(function*() {
      const dir = yield* tempDir
      const error = yield* Effect.flip(Effect.provide(
        Effect.gen(function*() {
          return yield* FallbackStore.FallbackStore
        }),
        withEnv({ FALLBACK_STORE_DIR: dir, FALLBACK_STORE_SWEEP_INTERVAL: "0 millis" })
      ))
      assert.strictEqual(error._tag, "PolicyConfigError")
      assert.include(error.message, "FALLBACK_STORE_SWEEP_INTERVAL (sweepInterval): Expected a positive duration")
    })))
})

// -----------------------------------------------------------------------------
// one store per directory
// -----------------------------------------------------------------------------

const childFixture = join(import.meta.dirname, "fixtures", "fallbackStoreChild.ts")

/**
 * A child process holding a store on `dir`, once it printed `ready`; `kill` SIGKILLs it and waits for its exit (a
 * process not yet reaped would still look alive). Killed when the scope closes, if it still runs.
 */
const holder = (dir: string) =>
  Effect.acquireRelease(
    Effect.callback<{ readonly pid: number; readonly kill: Effect.Effect<void> }>((resume) => {
      const proc = spawn(process.execPath, [childFixture, dir], { stdio: ["ignore", "pipe", "inherit"] })
      const exited = new Promise<void>((resolve) => proc.once("exit", () => resolve()))
      const kill = Effect.promise(() => {
        proc.kill("SIGKILL")
        return exited
      })
      proc.stdout.setEncoding("utf8")
      proc.stdout.on("data", (chunk: string) => {
        if (chunk.includes("ready")) resume(Effect.succeed({ pid: proc.pid!, kill }))
      })
      proc.once("exit", (code, signal) => resume(Effect.die(new Error(`the child exited (${code}, ${signal})`))))
    }),
    (child) => child.kill
  )

const lockedError = (exit: Exit.Exit<unknown, unknown>) => {
  assert.isTrue(Exit.isFailure(exit))
  const error = Exit.isFailure(exit) ? exit.cause.reasons.find((reason) => reason._tag === "Fail") : undefined
  assert.isDefined(error)
  const failure = (error as { readonly error: FallbackStore.FallbackStoreError }).error
  assert.instanceOf(failure, FallbackStore.FallbackStoreError)
  return failure
}

describe("FallbackStore (file) lock", () => {
  it.effect("a second store on the directory fails at once with Locked naming the holder; closing frees it", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      yield* Effect.scoped(Effect.gen(function*() {
        const first = yield* fileStore(dir)
        yield* first.set("a", "1")
        const error = lockedError(yield* Effect.exit(Effect.scoped(fileStore(dir))))
        assert.strictEqual(error.reason, "Locked")
        assert.strictEqual(error.operation, "open")
        assert.strictEqual(error.holder, process.pid)
        assert.include(error.message, `process ${process.pid}`)
        assert.include(error.message, dir)
        // clear removes entries, never the lock: a third opener is still refused.
        yield* first.clear
        assert.strictEqual(lockedError(yield* Effect.exit(Effect.scoped(fileStore(dir)))).reason, "Locked")
        assert.deepStrictEqual(yield* first.keys, [])
      }))
      // The first store's scope closed: its lock is gone and the next store opens.
      yield* session(dir, {}, (store) => store.set("b", "2"))
      assert.isFalse(yield* (yield* FileSystem.FileSystem).exists(join(dir, internal.LOCK_NAME)))
    }).pipe(Effect.scoped, live))

  it.effect("a lock naming this process but none of its stores is stale: a container's PID 1 restarted after a crash", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const fs = yield* FileSystem.FileSystem
      yield* session(dir, {}, (store) => store.set("acknowledged", "message"))
      // The earlier process, with this process's id, was SIGKILLed holding the lock.
      yield* fs.writeFileString(
        join(dir, internal.LOCK_NAME),
        internal.encodeLock({ pid: process.pid, instance: "0dead0ff" })
      )
      yield* Effect.scoped(Effect.gen(function*() {
        const store = yield* fileStore(dir)
        assert.deepStrictEqual(yield* store.get("acknowledged"), Option.some("message"))
        // The store now holds the lock, and a second one of this process is refused as ever.
        const lock = internal.decodeLock(yield* fs.readFileString(join(dir, internal.LOCK_NAME)))
        assert.strictEqual(lock?.pid, process.pid)
        assert.notStrictEqual(lock?.instance, "0dead0ff")
        assert.strictEqual(lockedError(yield* Effect.exit(Effect.scoped(fileStore(dir)))).reason, "Locked")
      }))
      // Two stores of this process racing for the directory: one opens.
      yield* Effect.scoped(Effect.gen(function*() {
        const opened = yield* Effect.all([Effect.exit(fileStore(dir)), Effect.exit(fileStore(dir))], {
          concurrency: 2
        })
        assert.strictEqual(opened.filter(Exit.isSuccess).length, 1)
      }))
      assert.strictEqual(internal.openInstances.size, 0)
    }).pipe(Effect.scoped, live))

  it.effect(
    "a store held by another process is refused, its in-flight files untouched; a SIGKILLed holder's lock is taken over",
    () =>
      Effect.gen(function*() {
        const dir = yield* tempDir
        const fs = yield* FileSystem.FileSystem
        const child = yield* holder(dir)
        // A temporary file of the holder's, as if a write were in flight: a refused opener must not remove it.
        const inFlight = join(dir, `${internal.TEMP_PREFIX}child-1.tmp`)
        yield* fs.writeFileString(inFlight, "partial")
        const error = lockedError(yield* Effect.exit(Effect.scoped(fileStore(dir))))
        assert.strictEqual(error.reason, "Locked")
        assert.strictEqual(error.holder, child.pid)
        assert.include(error.message, `process ${child.pid}`)
        assert.isTrue(yield* fs.exists(inFlight))

        yield* child.kill
        yield* withWarnings((warnings) =>
          session(dir, {}, (store) =>
            Effect.gen(function*() {
              assert.deepStrictEqual(yield* store.get("child"), Option.some("alive"))
              assert.isFalse(yield* fs.exists(inFlight))
              const lock = yield* fs.readFileString(join(dir, internal.LOCK_NAME))
              assert.strictEqual(internal.decodeLock(lock)?.pid, process.pid)
              assert.isTrue(warnings.some((warning) => warning.includes(`stale lock of process ${child.pid}`)))
            }))
        )
      }).pipe(Effect.scoped, live),
    30_000
  )

  it.effect("two stores racing for a stale lock: exactly one takes it, the other is refused", () =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const dead = spawnSync("true").pid!
      for (let round = 0; round < 20; round++) {
        const dir = yield* tempDir
        yield* fs.writeFileString(join(dir, internal.LOCK_NAME), internal.encodeLock({ pid: dead, instance: "0bad" }))
        yield* Effect.scoped(Effect.gen(function*() {
          const exits = yield* Effect.all([Effect.exit(fileStore(dir)), Effect.exit(fileStore(dir))], {
            concurrency: 2
          })
          assert.strictEqual(exits.filter(Exit.isSuccess).length, 1, `round ${round}`)
          const refused = lockedError(exits.find(Exit.isFailure)!)
          assert.strictEqual(refused.reason, "Locked")
          assert.strictEqual(refused.holder, process.pid)
        }))
        assert.deepStrictEqual(yield* list(dir), [])
      }
    }).pipe(Effect.scoped, live))

  it.effect("a directory that is a file is reported as such, with the option's name", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const fs = yield* FileSystem.FileSystem
      const file = join(dir, "not-a-dir")
      yield* fs.writeFileString(file, "x")
      const error = lockedError(yield* Effect.exit(Effect.scoped(fileStore(file))))
      assert.strictEqual(error.reason, "BadArgument")
      assert.include(error.message, `directory ${JSON.stringify(file)}`)
      assert.include(error.message, "is not a directory")
      assert.include(error.message, "`directory`")
    }).pipe(Effect.scoped, live))
})

describe("FallbackStore.toSchemaStore", () => {
  const Quote = Schema.Struct({ sku: Schema.String, cents: Schema.Int, at: Schema.Date })

  it.effect("keeps values of a Schema as JSON, both ways of calling it", () =>
    live(Effect.gen(function*() {
      const store = yield* FallbackStore.makeMemory()
      const quotes = FallbackStore.toSchemaStore(store, Quote)
      const same = pipe(store, FallbackStore.toSchemaStore(Quote))
      const quote = { sku: "sku-1", cents: 1999, at: new Date(0) }
      yield* quotes.set("sku-1", quote, { ttl: "1 minute" })
      assert.deepStrictEqual(yield* same.get("sku-1"), Option.some(quote))
      assert.strictEqual(
        Option.getOrThrow(yield* store.get("sku-1")),
        "{\"sku\":\"sku-1\",\"cents\":1999,\"at\":\"1970-01-01T00:00:00.000Z\"}"
      )
      assert.deepStrictEqual(yield* quotes.get("nope"), Option.none())
      yield* TestClock.adjust("1 minute")
      assert.deepStrictEqual(yield* quotes.get("sku-1"), Option.none())
      yield* store.set("broken", "{\"sku\":1}")
      const error = yield* Effect.flip(quotes.get("broken"))
      assert.strictEqual(error._tag, "SchemaError")
    })))
})

// -----------------------------------------------------------------------------
// the pure parts
// -----------------------------------------------------------------------------

describe("FallbackStore internals", () => {
  it("CRC-32 and SHA-256 match their test vectors", () => {
    assert.strictEqual(internal.crc32(utf8("123456789")), 0xcbf43926)
    assert.strictEqual(
      internal.toHex(internal.sha256(utf8(""))),
      "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )
    assert.strictEqual(
      internal.toHex(internal.sha256(utf8("abc"))),
      "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    )
    assert.strictEqual(
      internal.toHex(internal.sha256(utf8("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"))),
      "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
    )
    assert.strictEqual(
      internal.toHex(internal.sha256(utf8("a".repeat(1_000_000)))),
      "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"
    )
  })

  it("the format is pinned: a known entry's bytes, CRC-32 and SHA-256 file name", () => {
    assert.strictEqual(internal.fileNameOf(GOLDEN.entry.key), GOLDEN.file)
    assert.strictEqual(new TextDecoder().decode(internal.encodeEntry(GOLDEN.entry)), GOLDEN.content)
    assert.deepStrictEqual(internal.decodeEntry(utf8(GOLDEN.content)), { _tag: "Valid", entry: GOLDEN.entry })
    assert.strictEqual(
      new TextDecoder().decode(
        internal.encodeEntry({ key: "sku-1", value: "héllo", expiresAt: Infinity, writtenAt: 42 })
      ),
      "FBS1 0b034a81 - 42 5 6\nsku-1\nhéllo"
    )
    // The checksum covers a range of the bytes: the same CRC-32 from any offset.
    const padded = utf8("xx123456789yy")
    assert.strictEqual(internal.crc32(padded, 2, 11), 0xcbf43926)
    assert.strictEqual(internal.crc32(utf8("The quick brown fox jumps over the lazy dog")), 0x414fa339)
  })

  it.prop("strings encode as UTF-8 when well-formed, and every string decodes back", [Schema.String], ([s]) => {
    const bytes = internal.encodeString(s)
    assert.strictEqual(bytes.length, internal.byteLength(s))
    if (!/\p{Cs}/u.test(s)) assert.deepStrictEqual(bytes, utf8(s))
    assert.strictEqual(internal.decodeString(bytes, 0, bytes.length), s)
  }, { arbitrary: { runs: 1000 } })

  it("lone surrogates have their own bytes; ill-formed byte strings do not decode", () => {
    const lone = ["\uD800", "\uD801", "\uDC00", "\uDC00\uD800", "a\uD83D", "\uD83D\uDE00"]
    const encoded = lone.map((s) => internal.toHex(internal.encodeString(s)))
    assert.strictEqual(new Set(encoded).size, lone.length)
    for (
      const bytes of [[0xc0, 0x80], [0xe0, 0x80, 0x80], [0x80], [0xf5, 0x80, 0x80, 0x80], [
        0xed,
        0xa0,
        0xbd,
        0xed,
        0xb8,
        0x80
      ], [0xe2, 0x82]]
    ) {
      assert.isUndefined(internal.decodeString(new Uint8Array(bytes), 0, bytes.length), String(bytes))
    }
  })

  it("file names: inline hex up to 100 bytes, SHA-256 beyond, only [0-9a-fhk]", () => {
    assert.strictEqual(internal.fileNameOf(""), "k")
    assert.strictEqual(internal.fileNameOf("../"), "k2e2e2f")
    assert.strictEqual(internal.fileNameOf("x".repeat(100)), `k${"78".repeat(100)}`)
    assert.match(internal.fileNameOf("x".repeat(101)), /^h[0-9a-f]{64}$/)
    assert.isFalse(internal.isEntryName("k0"))
    assert.isFalse(internal.isEntryName("README"))
    assert.isFalse(internal.isEntryName(`${internal.TEMP_PREFIX}1-1.tmp`))
  })

  it.prop("an entry decodes to itself", [Schema.String, Schema.String, Schema.Boolean], ([key, value, expires]) => {
    const entry = { key, value, expiresAt: expires ? 1_700_000_000_000 : Infinity, writtenAt: 42 }
    const bytes = internal.encodeEntry(entry)
    assert.strictEqual(bytes.length, internal.entryLength(entry))
    assert.deepStrictEqual(internal.decodeEntry(bytes), { _tag: "Valid", entry })
  }, { arbitrary: { runs: 500 } })
})
