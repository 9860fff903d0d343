import * as FallbackStore from "@effect-resilience/core/FallbackStore"
import * as RedisServer from "@effect-resilience/testing/RedisServer"
import * as SmallDisk from "@effect-resilience/testing/SmallDisk"
import { NodeServices } from "@effect/platform-node"
import { assert, describe, it } from "@effect/vitest"
import { Clock, Context, Deferred, Duration, Effect, Fiber, Layer, Metric, Option, Schedule, Stream } from "effect"
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as internal from "../src/internal/resilientRedis.ts"
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
  f: (server: RedisServer.RedisServer, directory: string) => Effect.Effect<A, E, RedisStore.RedisStore>,
  options: { readonly persistence: boolean; readonly timeout?: Duration.Input } = { persistence: true }
) =>
  Effect.gen(function*() {
    const server = yield* RedisServer.make(options)
    const directory = yield* tempDirectory
    return yield* f(server, directory).pipe(
      Effect.provide(RedisStore.layer({ url: server.url, timeout: options.timeout ?? "500 millis" }))
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
          yield* waitFor(cache, "Healthy")
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
      assert.deepStrictEqual(error.issues.map((issue) => issue.path), ["pingInterval", "failureThreshold"])
      assert.isTrue(error.issues[0]!.message.startsWith("Expected a duration, got \"soon\""))
      assert.strictEqual(error.issues[1]!.message, "Expected a value greater than or equal to 1, got 0")
    }), 5_000)
})

/** The events published from now on, collected for the scope. */
const collectEvents = (cache: Cache) =>
  Effect.gen(function*() {
    const events: Array<ResilientRedis.Event> = []
    yield* cache.events.pipe(Stream.runForEach((e) => Effect.sync(() => events.push(e))), Effect.forkScoped)
    yield* Effect.sleep("20 millis")
    return events
  })

/** One "process" on `directory`: Redis is killed, then `writes` go to its journal, and the process ends. */
const journalWhileDown = (
  server: RedisServer.RedisServer,
  directory: string,
  writes: ReadonlyArray<readonly [string, string]>
) =>
  Effect.gen(function*() {
    const first = yield* open(directory)
    yield* server.kill
    for (const [key, value] of writes) yield* first.set(key, value)
    assert.strictEqual((yield* first.snapshot).pending, writes.length)
  }).pipe(Effect.scoped)

/**
 * The RedisStore in context, but its first `failures` replay writes (the `apply` script) fail as a timeout would: the
 * ping that starts a replay got through, and Redis went away again at once.
 */
/**
 * Flips a byte in the value of the journal entry of `seq`, as a torn write would: the fallback store drops the file
 * as it next starts.
 */
const tearJournalEntry = (directory: string, seq: number) => {
  const name = `journal:${String(seq).padStart(16, "0")}`
  const file = readdirSync(directory)
    .map((entry) => join(directory, entry))
    .find((path) => readFileSync(path, "latin1").includes(name))
  assert.isDefined(file, `no file holds ${name}`)
  const bytes = readFileSync(file!)
  bytes[bytes.length - 3] = bytes[bytes.length - 3]! ^ 0x20
  writeFileSync(file!, bytes)
}

const failingReplays = (failures: number) =>
  Layer.effect(
    RedisStore.RedisStore,
    Effect.gen(function*() {
      const store = yield* RedisStore.RedisStore
      let left = failures
      return RedisStore.RedisStore.of({
        ...store,
        eval: (script) => (...params) =>
          script === (internal.apply as unknown) && left-- > 0
            ? Effect.fail(new RedisStore.RedisStoreError({ operation: "eval", message: "timed out (injected)" }))
            : store.eval(script)(...params)
      })
    })
  )

describe("ResilientRedis under faults (issue 15)", () => {
  it.live(
    "the replay drains in bounded time while 8 writers keep writing; its drain rate is reported",
    () =>
      withServer((server, directory) =>
        Effect.gen(function*() {
          const cache = yield* open(directory)
          yield* cache.set("warm", "up")
          yield* server.kill
          let stop = false
          const written = new Map<string, string>()
          let n = 0
          const writer = (w: number) =>
            Effect.whileLoop({
              while: () => !stop,
              body: () => {
                const i = n++
                const key = `w${w}:${i % 25}`
                return Effect.as(cache.set(key, `v${i}`, { ttl: "1 hour" }), [key, `v${i}`] as const)
              },
              step: ([key, value]) => written.set(key, value)
            })
          const writers = yield* Effect.forEach(
            Array.from({ length: 8 }, (_, w) => w),
            (w) => Effect.forkScoped(writer(w))
          )
          // A backlog of 200 entries at least, however fast this machine's disk journals them.
          const backlog = yield* cache.snapshot.pipe(
            Effect.flatMap((s) => s.pending >= 200 ? Effect.succeed(s.pending) : Effect.fail(s.pending)),
            Effect.retry(Schedule.spaced("50 millis").pipe(Schedule.upTo({ duration: "15 seconds" })))
          )
          const restarted = performance.now()
          yield* server.restart
          // The writers go on while the journal drains: the service must still get back to Redis.
          yield* waitFor(cache, "Healthy")
          const drained = performance.now() - restarted
          const after = yield* cache.snapshot
          // Once drained it stays drained: the writers, still going, write to Redis, and nothing is journaled again.
          yield* Effect.sleep("300 millis")
          const later = yield* cache.snapshot
          assert.strictEqual(later.state, "Healthy")
          assert.strictEqual(later.journaled, after.journaled)
          assert.isAbove(later.redisOps, after.redisOps)
          stop = true
          yield* Fiber.joinAll(writers)
          assert.isAbove(after.drainRate, 0)
          console.log(
            `replay under load: backlog ${backlog} entries, ${after.replayed} replayed, drained in ${
              drained.toFixed(0)
            } ms, drain rate ${after.drainRate.toFixed(0)} entries/s`
          )
          yield* waitFor(cache, "Healthy")
          const store = yield* RedisStore.RedisStore
          for (const [key, value] of written) assert.deepStrictEqual(yield* store.get(key), Option.some(value), key)
        }).pipe(Effect.scoped), {
        persistence: true,
        // A Redis call that outlives its timeout is journaled, as it should be, and a loaded CI machine once stalled
        // one for 500 ms: this test asserts that nothing is journaled once drained, so it gives Redis 5 s.
        timeout: "5 seconds"
      }),
    30_000
  )

  it.live(
    "one instance's replay does not overwrite another instance's newer write (last write wins across instances)",
    () =>
      withServer((server, directory) =>
        Effect.gen(function*() {
          const other = yield* tempDirectory
          const two = yield* open(other)
          // Instance one journals during the outage, and goes (a restart, say) before Redis is back.
          yield* Effect.gen(function*() {
            const one = yield* open(directory)
            yield* one.set("k", "old")
            yield* server.kill
            yield* one.set("k", "older-than-two")
            yield* one.set("only-one", "kept")
            assert.strictEqual((yield* one.snapshot).pending, 2)
          }).pipe(Effect.scoped)
          yield* server.restart
          yield* waitFor(two, "Healthy")
          yield* two.set("k", "two")
          // One comes back and replays its journal after two's newer write.
          const one = yield* open(directory)
          yield* waitFor(one, "Healthy")
          // On a loaded machine two's write may itself have been journaled (a command failing while the connection
          // came back); two's replay then lands it, still the newest. Either way both journals end empty.
          yield* waitFor(two, "Healthy")
          const after = yield* one.snapshot
          const twoAfter = yield* two.snapshot
          assert.strictEqual(after.pending + twoAfter.pending, 0)
          if (twoAfter.replayed === 0) {
            // Two wrote straight to Redis: one's older entry for k is stale, only-one is replayed.
            assert.strictEqual(after.replayed, 1)
            assert.strictEqual(after.stale, 1)
          }
          const store = yield* RedisStore.RedisStore
          assert.deepStrictEqual(yield* store.get("k"), Option.some("two"))
          assert.deepStrictEqual(yield* store.get("only-one"), Option.some("kept"))
        }).pipe(Effect.scoped)
      ),
    20_000
  )

  it.live(
    "a Redis that comes back empty (--save \"\") is re-seeded from the fallback, and says so in an event",
    () =>
      withServer((server, directory) =>
        Effect.gen(function*() {
          const cache = yield* open(directory)
          const events = yield* collectEvents(cache)
          for (let i = 0; i < 20; i++) yield* cache.set(`k${i}`, `v${i}`, { ttl: "1 hour" })
          yield* cache.remove("k0")
          yield* waitFor(cache, "Healthy")
          yield* server.kill
          yield* server.restart
          const store = yield* RedisStore.RedisStore
          yield* store.get("k19").pipe(
            Effect.flatMap((v) => Option.isSome(v) ? Effect.void : Effect.fail("not re-seeded yet")),
            Effect.retry(Schedule.spaced("50 millis").pipe(Schedule.upTo({ duration: "8 seconds" })))
          )
          for (let i = 1; i < 20; i++) assert.deepStrictEqual(yield* store.get(`k${i}`), Option.some(`v${i}`))
          assert.deepStrictEqual(yield* store.get("k0"), Option.none())
          const lost = events.filter((e) => e._tag === "RedisDataLost")
          assert.strictEqual(lost.length, 1)
          assert(lost[0]!._tag === "RedisDataLost")
          assert.strictEqual(lost[0]!.reseeded, 19)
          assert.strictEqual((yield* cache.snapshot).reseeded, 19)
        }).pipe(Effect.scoped), { persistence: false }),
    20_000
  )

  for (const failures of [0, 1]) {
    it.live(
      `a damaged journal entry is counted, reported with its key, and recovered from the fallback's copy${
        failures === 0 ? "" : ", even when the first replay write fails"
      }`,
      () =>
        withServer((server, directory) =>
          Effect.gen(function*() {
            yield* journalWhileDown(server, directory, [["a", "1"], ["b", "2"], ["c", "3"]])
            // The entry that journaled "b" (seq 1) is torn.
            tearJournalEntry(directory, 1)

            yield* Effect.gen(function*() {
              // Opened while Redis is still down, so that the events are watched before the replay runs.
              const second = yield* open(directory)
              const events = yield* collectEvents(second)
              yield* server.restart
              yield* waitFor(second, "Healthy")
              const after = yield* second.snapshot
              assert.strictEqual(after.dropped, 1)
              assert.strictEqual(yield* metric("resilient_redis_dropped_total"), 1)
              const store = yield* RedisStore.RedisStore
              assert.deepStrictEqual(yield* store.get("a"), Option.some("1"))
              assert.deepStrictEqual(yield* store.get("b"), Option.some("2"))
              assert.deepStrictEqual(yield* store.get("c"), Option.some("3"))
              yield* Effect.sleep("20 millis")
              const dropped = events.filter((e) => e._tag === "JournalEntryDropped")
              assert.strictEqual(dropped.length, 1)
              assert(dropped[0]!._tag === "JournalEntryDropped")
              assert.strictEqual(dropped[0]!.key, "b")
              assert.strictEqual(dropped[0]!.seq, 1)
              assert.isTrue(dropped[0]!.recovered)
            }).pipe(
              Effect.scoped,
              Effect.provide(failingReplays(failures)),
              Effect.provideService(Metric.MetricRegistry, new Map())
            )
          })
        ),
      20_000
    )
  }

  it.live(
    "an entry that does not decode is counted and reported once, though the first replay write fails",
    () =>
      withServer((server, directory) =>
        Effect.gen(function*() {
          yield* journalWhileDown(server, directory, [["a", "1"], ["b", "2"]])
          // The entry of "b" (seq 1) holds what no version wrote: its file is sound, its content is not an entry.
          yield* Effect.gen(function*() {
            const fallback = yield* FallbackStore.FallbackStore
            yield* fallback.set("resilient-redis:journal:0000000000000001:b", "not an entry")
          }).pipe(
            Effect.scoped,
            Effect.provide(FallbackStore.layer({ directory }).pipe(Layer.provide(NodeServices.layer)))
          )

          yield* Effect.gen(function*() {
            const second = yield* open(directory)
            const events = yield* collectEvents(second)
            yield* server.restart
            yield* waitFor(second, "Healthy")
            yield* Effect.sleep("20 millis")
            assert.strictEqual((yield* second.snapshot).dropped, 1)
            assert.strictEqual(events.filter((e) => e._tag === "JournalEntryDropped").length, 1)
            assert.deepStrictEqual(yield* (yield* RedisStore.RedisStore).get("a"), Option.some("1"))
          }).pipe(Effect.scoped, Effect.provide(failingReplays(1)))
        })
      ),
    20_000
  )

  it.live(
    "a journal whose only entry was lost: the write recovered for it is kept through failed replays, in Fallback",
    () =>
      withServer((server, directory) =>
        Effect.gen(function*() {
          yield* journalWhileDown(server, directory, [["b", "2"]])
          // The one entry (seq 0) is torn, so nothing is pending.
          tearJournalEntry(directory, 0)

          // The first two replay writes fail; each attempt is signalled.
          const attempts = [yield* Deferred.make<void>(), yield* Deferred.make<void>()]
          let made = 0
          const failingTwice = Layer.effect(
            RedisStore.RedisStore,
            Effect.gen(function*() {
              const store = yield* RedisStore.RedisStore
              return RedisStore.RedisStore.of({
                ...store,
                eval: (script) => (...params) => {
                  if (script !== (internal.apply as unknown) || made >= attempts.length) {
                    return store.eval(script)(...params)
                  }
                  Deferred.doneUnsafe(attempts[made++]!, Effect.void)
                  return Effect.fail(
                    new RedisStore.RedisStoreError({ operation: "eval", message: "timed out (injected)" })
                  )
                }
              })
            })
          )
          yield* Effect.gen(function*() {
            const second = yield* open(directory)
            yield* server.restart
            yield* Deferred.await(attempts[1]!).pipe(Effect.timeout("5 seconds"))
            // The first replay failed: the recovered write is not in Redis yet, so the service is in Fallback...
            assert.strictEqual(yield* second.health, "Fallback")
            // ...and a later replay still applies it.
            yield* waitFor(second, "Healthy")
            assert.deepStrictEqual(yield* (yield* RedisStore.RedisStore).get("b"), Option.some("2"))
            assert.strictEqual((yield* second.snapshot).dropped, 1)
          }).pipe(Effect.scoped, Effect.provide(failingTwice))
        })
      ),
    20_000
  )

  it.live("a ttl that is not a positive duration fails, naming ttl, and writes nothing", () =>
    withServer((_, directory) =>
      Effect.gen(function*() {
        const cache = yield* open(directory)
        yield* cache.set("session", "alice")
        const error = yield* Effect.flip(cache.set("session", "bob", { ttl: "-1 second" }))
        assert.strictEqual(
          error.message,
          `Redis and its fallback could not set "session": Expected ttl to be a positive duration, got -1 second`
        )
        yield* Effect.sleep("20 millis")
        assert.deepStrictEqual(yield* cache.get("session"), Option.some("alice"))
      }).pipe(Effect.scoped)
    ))

  it.live("a key or value with a lone surrogate is refused before either store sees it", () =>
    withServer((_, directory) =>
      Effect.gen(function*() {
        const cache = yield* open(directory)
        yield* cache.set("greeting:\ufffd", "from B")
        const refused = [
          yield* Effect.flip(cache.set("greeting:\ud83d", "from A")),
          yield* Effect.flip(cache.set("note", "half an emoji: \ud83d")),
          yield* Effect.flip(cache.get("greeting:\ud83d")),
          yield* Effect.flip(cache.remove("greeting:\ud83d"))
        ]
        assert.deepStrictEqual(refused.map((error) => [error.operation, error.description.split(" of whole")[0]]), [
          ["set", "Expected a key"],
          ["set", "Expected a value"],
          ["get", "Expected a key"],
          ["remove", "Expected a key"]
        ])
        assert.deepStrictEqual(yield* cache.get("greeting:\ufffd"), Option.some("from B"))
        assert.deepStrictEqual(yield* cache.get("note"), Option.none())
        // Redis stayed healthy: a refusal is the caller's, not Redis's.
        assert.strictEqual(yield* cache.health, "Healthy")
      }).pipe(Effect.scoped)
    ))

  it.live(
    "health says Connecting until a lazy client's first successful round trip",
    () =>
      withServer((server, directory) =>
        Effect.gen(function*() {
          yield* server.kill
          const cache = yield* open(directory)
          assert.strictEqual(yield* cache.health, "Connecting")
          // Pings fail meanwhile: still never connected.
          yield* Effect.sleep("700 millis")
          assert.strictEqual(yield* cache.health, "Connecting")
          yield* server.restart
          yield* waitFor(cache, "Healthy")
        }).pipe(
          Effect.scoped,
          Effect.provide(RedisStore.layer({ url: server.url, timeout: "500 millis", lazy: true }))
        )
      ),
    20_000
  )
})

describe("ResilientRedis: writes Redis cannot take, or the fallback cannot copy", () => {
  // A TTL longer than Redis can hold (FallbackStore takes it as no expiry) was acknowledged, journaled, and failed its
  // replay on every ping: the journal never drained and every later write stayed in the fallback.
  it.live("a ttl longer than Redis can hold is refused up front, and later writes reach Redis", () =>
    withServer((_, directory) =>
      Effect.gen(function*() {
        const cache = yield* open(directory)
        const redis = yield* RedisStore.RedisStore
        const refused = yield* Effect.flip(cache.set("forever", "x", { ttl: Duration.millis(1e19) }))
        assert.include(refused.description, "Expected ttl to be at most")
        yield* cache.set("b", "2")
        assert.deepStrictEqual(yield* redis.get("b"), Option.some("2"))
        assert.strictEqual((yield* cache.snapshot).pending, 0)
      }).pipe(Effect.scoped)
    ))

  // Redis' error about one key (WRONGTYPE: another client made it a list) counted as Redis failing: three reads of it
  // opened the breaker, and with Redis up the health said Failed and every other key's writes were journaled.
  it.live("reads of a key Redis answers with WRONGTYPE do not open the breaker: other keys stay on Redis", () =>
    withServer((server) =>
      Effect.gen(function*() {
        const memory = yield* FallbackStore.makeMemory()
        const cache = yield* ResilientRedis.make({ pingInterval: "1 minute" }).pipe(
          Effect.provideService(FallbackStore.FallbackStore, memory)
        )
        yield* RedisServer.command(server.port, ["RPUSH", "resilience:list", "x"])
        for (let i = 0; i < 5; i++) assert.deepStrictEqual(yield* cache.get("list"), Option.none())
        assert.strictEqual((yield* cache.snapshot).breaker, "Closed")
        yield* cache.set("other", "1")
        const after = yield* cache.snapshot
        assert.deepStrictEqual([after.state, after.pending], ["Healthy", 0])
        assert.deepStrictEqual(yield* (yield* RedisStore.RedisStore).get("other"), Option.some("1"))
      }).pipe(Effect.scoped)
    ))

  // When the fallback could not take the copy of a write Redis accepted (its disk full), the previous copy stayed and
  // the next outage served it as current.
  it.live("an outage never serves a value older than the last one Redis accepted", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.make({ persistence: false })
      const directory = yield* SmallDisk.make("64k")
      yield* Effect.gen(function*() {
        const cache = yield* open(directory)
        const redis = yield* RedisStore.RedisStore
        yield* cache.set("price", "19.99")
        yield* SmallDisk.fill(directory)
        yield* cache.set("price", "24.99")
        assert.deepStrictEqual(yield* redis.get("price"), Option.some("24.99"))
        yield* server.kill
        assert.notDeepEqual(yield* cache.get("price"), Option.some("19.99"))
      }).pipe(Effect.provide(RedisStore.layer({ url: server.url, timeout: "500 millis" })))
    }).pipe(Effect.scoped), 20_000)
})

/** A ResilientRedis on `fallback` (a memory store, say) and the RedisStore in context, for the scope. */
const openOn = (fallback: FallbackStore.FallbackStore) =>
  ResilientRedis.make({ pingInterval: "100 millis", openDuration: "300 millis" }).pipe(
    Effect.provideService(FallbackStore.FallbackStore, fallback)
  )

/** The next `RedisDataLost` of `cache`, watched from now on, in a fiber of the scope. */
const dataLost = (cache: Cache) =>
  cache.events.pipe(
    Stream.filter((event) => event._tag === "RedisDataLost"),
    Stream.runHead,
    Effect.timeout("8 seconds"),
    Effect.forkScoped
  )

/** Retries for up to 2 s until Redis holds `expected` at `key` (read with a plain RedisStore). */
const eventuallyIn = (key: string, expected: Option.Option<string>) =>
  Effect.gen(function*() {
    const seen = yield* (yield* RedisStore.RedisStore).get(key)
    if (Option.getOrNull(seen) !== Option.getOrNull(expected)) return yield* Effect.fail(seen)
  }).pipe(Effect.retry(Schedule.spaced("50 millis").pipe(Schedule.upTo({ duration: "2 seconds" }))))

describe("ResilientRedis: a remove is kept through a Redis that lost its data", () => {
  // Each instance re-seeds what its own fallback holds. The instance that removed the key kept nothing of the remove,
  // so another instance's older copy was written back: a value the application deleted (a revoked session) returned.
  it.live(
    "after Redis comes back empty, a key removed on B is not brought back by A's re-seed of its older copy",
    () =>
      withServer((server) =>
        Effect.gen(function*() {
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
          // Both re-seeds are done; the plain client may still be reconnecting.
          const redis = yield* RedisStore.RedisStore
          const seen = yield* redis.get("session:42").pipe(
            Effect.retry(Schedule.spaced("50 millis").pipe(Schedule.upTo({ duration: "2 seconds" })))
          )
          assert.deepStrictEqual(seen, Option.none(), "a removed key came back")
          assert.deepStrictEqual(yield* b.get("session:42"), Option.none())
        }).pipe(Effect.scoped), { persistence: false }),
    20_000
  )

  it.live(
    "the tombstone lives as long as Redis keeps the remove's time, is never read, and a later write wins over it",
    () =>
      withServer((server) =>
        Effect.gen(function*() {
          const memory = yield* FallbackStore.makeMemory()
          const ttls = new Map<string, Duration.Input | undefined>()
          const cache = yield* openOn({
            ...memory,
            set: (key, value, options) =>
              Effect.tap(memory.set(key, value, options), () => Effect.sync(() => ttls.set(key, options?.ttl)))
          })
          yield* cache.set("gone", "1")
          yield* cache.set("back", "1")
          yield* cache.remove("gone")
          yield* cache.remove("back")
          yield* Effect.sleep("5 millis")
          yield* cache.set("back", "2")
          // Kept for about the 24 hours Redis keeps the remove's time, then the fallback expires it.
          const ttl = Duration.toMillis(Duration.fromInputUnsafe(ttls.get("resilient-redis:removed:gone")!))
          assert.isAbove(ttl, 24 * 60 * 60 * 1000 - 60_000)
          assert.isAtMost(ttl, 24 * 60 * 60 * 1000)
          // Never served: an outage reads the key as absent, and a remove on the fallback path finds nothing.
          yield* server.kill
          assert.deepStrictEqual(yield* cache.get("gone"), Option.none())
          assert.deepStrictEqual(yield* cache.get("back"), Option.some("2"))
          assert.isFalse(yield* cache.remove("gone"))
          const lost = yield* dataLost(cache)
          yield* server.restart
          const event = yield* Fiber.join(lost)
          // The write after the remove is newer than its tombstone: it comes back, and only it counts as re-seeded.
          assert(Option.isSome(event) && event.value._tag === "RedisDataLost")
          assert.strictEqual(event.value.reseeded, 1)
          yield* eventuallyIn("back", Option.some("2"))
          assert.deepStrictEqual(yield* (yield* RedisStore.RedisStore).get("gone"), Option.none())
        }).pipe(Effect.scoped), { persistence: false }),
    20_000
  )

  it.live(
    "a tombstone older than Redis keeps a remove's time is not re-seeded",
    () =>
      withServer((server) =>
        Effect.gen(function*() {
          const memory = yield* FallbackStore.makeMemory()
          const day = 24 * 60 * 60 * 1000
          const now = yield* Clock.currentTimeMillis
          // A copy from 26 hours ago and a remove from 25 hours ago, as a fallback no sweep has visited would hold.
          yield* memory.set(
            "resilient-redis:value:k",
            internal.encodeCopy({ copy: "v", at: now - day - 2 * 3_600_000, expiresAt: null, seq: null })
          )
          yield* memory.set(
            "resilient-redis:removed:k",
            internal.encodeTombstone({ at: now - day - 3_600_000, seq: null })
          )
          const cache = yield* openOn(memory)
          yield* waitFor(cache, "Healthy")
          const lost = yield* dataLost(cache)
          yield* server.restart
          yield* Fiber.join(lost)
          yield* eventuallyIn("k", Option.some("v"))
        }).pipe(Effect.scoped), { persistence: false }),
    20_000
  )

  // A journaled remove whose entry was lost used to be dropped for good (nothing of it was left); its tombstone now
  // carries its seq, as a copy does for a set.
  it.live(
    "a lost journal entry of a remove is recovered from its tombstone",
    () =>
      withServer((server, directory) =>
        Effect.gen(function*() {
          yield* Effect.gen(function*() {
            const first = yield* open(directory)
            yield* first.set("b", "1")
            yield* server.kill
            yield* first.remove("b")
            assert.strictEqual((yield* first.snapshot).pending, 1)
          }).pipe(Effect.scoped)
          tearJournalEntry(directory, 0)

          yield* Effect.gen(function*() {
            const second = yield* open(directory)
            const events = yield* collectEvents(second)
            yield* server.restart
            yield* waitFor(second, "Healthy")
            yield* Effect.sleep("20 millis")
            assert.deepStrictEqual(yield* (yield* RedisStore.RedisStore).get("b"), Option.none())
            const dropped = events.filter((e) => e._tag === "JournalEntryDropped")
            assert.strictEqual(dropped.length, 1)
            assert(dropped[0]!._tag === "JournalEntryDropped")
            assert.strictEqual(dropped[0]!.key, "b")
            assert.isTrue(dropped[0]!.recovered)
          }).pipe(Effect.scoped)
        })
      ),
    20_000
  )
})

describe("ResilientRedis: a journal entry Redis refuses", () => {
  // An entry the replay script failed on (an error reply, not a lost connection) failed again on every ping: the
  // journal never drained, the service stayed in Fallback, and every later write queued behind the entry for good.
  it.live(
    "is set aside, counted and reported; the entries around it reach Redis and the journal drains",
    () =>
      withServer((server, directory) =>
        Effect.gen(function*() {
          const cache = yield* open(directory)
          const events = yield* collectEvents(cache)
          const redis = yield* RedisStore.RedisStore
          yield* cache.set("c", "0")
          // Something else made p's time key a list: the replay's GET of it answers WRONGTYPE, every time. And q's a
          // string that is no time: the script's comparison fails (a Lua error), every time.
          yield* RedisServer.command(server.port, ["RPUSH", redis.key("resilient-redis:at:p"), "x"])
          yield* RedisServer.command(server.port, ["SET", redis.key("resilient-redis:at:q"), "soon"])
          yield* server.kill
          yield* cache.set("a", "1")
          yield* cache.set("p", "refused")
          yield* cache.set("b", "2")
          yield* cache.set("q", "refused too")
          yield* cache.remove("c")
          assert.strictEqual((yield* cache.snapshot).pending, 5)
          yield* server.restart
          yield* waitFor(cache, "Healthy")
          const after = yield* cache.snapshot
          assert.strictEqual(after.pending, 0)
          assert.strictEqual(after.replayed, 3)
          assert.strictEqual(after.refused, 2)
          assert.strictEqual(yield* metric("resilient_redis_refused_total"), 2)
          assert.deepStrictEqual(yield* redis.get("a"), Option.some("1"))
          assert.deepStrictEqual(yield* redis.get("b"), Option.some("2"))
          assert.deepStrictEqual(yield* redis.get("c"), Option.none())
          assert.deepStrictEqual(yield* redis.get("p"), Option.none())
          assert.deepStrictEqual(yield* redis.get("q"), Option.none())
          const refused = events.flatMap((e) => e._tag === "JournalEntryRefused" ? [e] : [])
          assert.deepStrictEqual(refused.map((e) => [e.seq, e.key]), [[1, "p"], [3, "q"]])
          assert.isTrue(refused[0]!.message.startsWith("WRONGTYPE"), refused[0]!.message)
          assert.include(refused[1]!.message, "attempt to compare")
          // Writes after the replay go to Redis again.
          yield* cache.set("d", "4")
          assert.deepStrictEqual(yield* redis.get("d"), Option.some("4"))
          // The fallback's copy of the refused write went with it: the next outage does not serve a value Redis
          // never held.
          yield* server.kill
          assert.deepStrictEqual(yield* cache.get("p"), Option.none())
          assert.deepStrictEqual(yield* cache.get("q"), Option.none())
          assert.deepStrictEqual(yield* cache.get("a"), Option.some("1"))
        }).pipe(Effect.scoped, Effect.provideService(Metric.MetricRegistry, new Map()))
      ),
    20_000
  )

  // A refused remove's tombstone, kept, would replay the remove Redis never took at the next re-seed.
  it.live(
    "a refused remove's tombstone goes with its entry; Redis keeps the value it held",
    () =>
      withServer((server) =>
        Effect.gen(function*() {
          const memory = yield* FallbackStore.makeMemory()
          const cache = yield* openOn(memory)
          const events = yield* collectEvents(cache)
          const redis = yield* RedisStore.RedisStore
          yield* cache.set("p", "1")
          yield* RedisServer.command(server.port, ["DEL", redis.key("resilient-redis:at:p")])
          yield* RedisServer.command(server.port, ["RPUSH", redis.key("resilient-redis:at:p"), "x"])
          yield* server.kill
          assert.isTrue(yield* cache.remove("p"))
          assert.deepStrictEqual(yield* copiesIn(memory), { copies: [], tombstones: ["p"] })
          yield* server.restart
          yield* waitFor(cache, "Healthy")
          assert.strictEqual((yield* cache.snapshot).refused, 1)
          assert.deepStrictEqual(
            events.flatMap((e) => e._tag === "JournalEntryRefused" ? [[e.seq, e.key]] : []),
            [[0, "p"]]
          )
          assert.deepStrictEqual(yield* copiesIn(memory), { copies: [], tombstones: [] })
          assert.deepStrictEqual(yield* redis.get("p"), Option.some("1"))
        }).pipe(Effect.scoped)
      ),
    20_000
  )

  // An error about Redis, not the entry, must not cost the entry: it waits as when Redis is down.
  it.live(
    "an error that says Redis takes no writes now (out of memory) refuses nothing: the journal waits for Redis",
    () =>
      withServer((server, directory) =>
        Effect.gen(function*() {
          const cache = yield* open(directory)
          const redis = yield* RedisStore.RedisStore
          yield* cache.set("a", "0")
          // Redis answers, but every write gets OOM: the writes are journaled.
          yield* RedisServer.command(server.port, ["CONFIG", "SET", "maxmemory", "1"])
          yield* cache.set("a", "1")
          yield* cache.set("b", "2")
          // Pings 100 ms apart try the replay meanwhile.
          yield* Effect.sleep("600 millis")
          const waiting = yield* cache.snapshot
          assert.strictEqual(waiting.state, "Fallback")
          assert.strictEqual(waiting.pending, 2)
          assert.strictEqual(waiting.refused, 0)
          yield* RedisServer.command(server.port, ["CONFIG", "SET", "maxmemory", "0"])
          yield* waitFor(cache, "Healthy")
          const after = yield* cache.snapshot
          assert.strictEqual(after.replayed, 2)
          assert.strictEqual(after.refused, 0)
          assert.deepStrictEqual(yield* redis.get("a"), Option.some("1"))
          assert.deepStrictEqual(yield* redis.get("b"), Option.some("2"))
        }).pipe(Effect.scoped)
      ),
    20_000
  )
})

/** A ResilientRedis keeping at most `maxCopies` copies in `fallback`, for the scope. */
const openBounded = (fallback: FallbackStore.FallbackStore, maxCopies: number) =>
  ResilientRedis.make({ pingInterval: "100 millis", openDuration: "300 millis", maxCopies }).pipe(
    Effect.provideService(FallbackStore.FallbackStore, fallback)
  )

/** The keys `fallback` holds a copy of, and the keys it holds a tombstone of, sorted. */
const copiesIn = (fallback: FallbackStore.FallbackStore) =>
  Effect.map(fallback.keys, (names) => ({
    copies: names.flatMap((n) => n.startsWith("resilient-redis:value:") ? [n.slice(22)] : []).sort(),
    tombstones: names.flatMap((n) => n.startsWith("resilient-redis:removed:") ? [n.slice(24)] : []).sort()
  }))

describe("ResilientRedis: the copies in the fallback are bounded (maxCopies)", () => {
  // The copies grew by one entry per distinct key written, for as long as the value's TTL: one file per distinct
  // search query in the agent service.
  it.live(
    "at most maxCopies copies: the least recently written goes first, tombstones do not count, a start trims",
    () =>
      withServer((server) =>
        Effect.gen(function*() {
          const memory = yield* FallbackStore.makeMemory()
          yield* Effect.gen(function*() {
            const cache = yield* openBounded(memory, 3)
            yield* cache.set("a", "1", { ttl: "1 hour" })
            yield* cache.set("b", "2", { ttl: "1 hour" })
            yield* cache.set("c", "3", { ttl: "1 hour" })
            // a is written again: b is now the least recently written.
            yield* cache.set("a", "1'", { ttl: "1 hour" })
            yield* cache.set("d", "4", { ttl: "1 hour" })
            assert.deepStrictEqual(yield* copiesIn(memory), { copies: ["a", "c", "d"], tombstones: [] })
            // A remove takes the copy out of the bound and leaves a tombstone, which is not counted.
            assert.isTrue(yield* cache.remove("c"))
            yield* cache.set("e", "5", { ttl: "1 hour" })
            yield* cache.set("f", "6", { ttl: "1 hour" })
            assert.deepStrictEqual(yield* copiesIn(memory), { copies: ["d", "e", "f"], tombstones: ["c"] })
            // Redis still holds every value: only the fallback's copies went.
            const redis = yield* RedisStore.RedisStore
            assert.deepStrictEqual(yield* redis.get("a"), Option.some("1'"))
            assert.deepStrictEqual(yield* redis.get("b"), Option.some("2"))
            // In an outage, an evicted key reads as one never written through the service.
            yield* server.kill
            assert.deepStrictEqual(yield* cache.get("f"), Option.some("6"))
            assert.deepStrictEqual(yield* cache.get("a"), Option.none())
          }).pipe(Effect.scoped)
          // A process started with a lower bound trims the copies it finds (and keeps the tombstone).
          yield* Effect.gen(function*() {
            yield* openBounded(memory, 2)
            const found = yield* copiesIn(memory)
            assert.strictEqual(found.copies.length, 2)
            assert.deepStrictEqual(found.tombstones, ["c"])
          }).pipe(Effect.scoped)
        }).pipe(Effect.scoped)
      ),
    20_000
  )

  // A copy the fallback expired (its value's TTL passed) still counted: it made a live copy go before its time.
  it.live(
    "a copy whose TTL has passed does not count towards maxCopies: no live copy goes for it",
    () =>
      withServer((server) =>
        Effect.gen(function*() {
          const memory = yield* FallbackStore.makeMemory()
          const cache = yield* openBounded(memory, 2)
          yield* cache.set("a", "1")
          yield* cache.set("b", "2", { ttl: "50 millis" })
          yield* Effect.sleep("200 millis")
          yield* cache.set("c", "3")
          // b expired: a and c are the only copies, within the bound.
          assert.deepStrictEqual(yield* copiesIn(memory), { copies: ["a", "c"], tombstones: [] })
          yield* server.kill
          assert.deepStrictEqual(yield* cache.get("a"), Option.some("1"))
          assert.deepStrictEqual(yield* cache.get("c"), Option.some("3"))
          // Past the bound, the least recently written live copy still goes.
          yield* server.restart
          yield* waitFor(cache, "Healthy")
          yield* cache.set("d", "4")
          assert.deepStrictEqual(yield* copiesIn(memory), { copies: ["c", "d"], tombstones: [] })
        }).pipe(Effect.scoped)
      ),
    20_000
  )

  it.live(
    "a journaled write's copy stays past the bound until Redis took the write (a damaged entry is rebuilt from it)",
    () =>
      withServer((server) =>
        Effect.gen(function*() {
          const memory = yield* FallbackStore.makeMemory()
          const cache = yield* openBounded(memory, 2)
          const events = yield* collectEvents(cache)
          const redis = yield* RedisStore.RedisStore
          yield* cache.set("x", "0")
          yield* server.kill
          for (const [key, value] of [["a", "1"], ["b", "2"], ["c", "3"], ["d", "4"]] as const) {
            yield* cache.set(key, value)
          }
          assert.strictEqual((yield* cache.snapshot).pending, 4)
          // Over the bound, yet every journaled write (and the copy from before the outage) is still read.
          assert.deepStrictEqual((yield* copiesIn(memory)).copies, ["a", "b", "c", "d", "x"])
          for (const [key, value] of [["a", "1"], ["b", "2"], ["c", "3"], ["d", "4"], ["x", "0"]] as const) {
            assert.deepStrictEqual(yield* cache.get(key), Option.some(value), key)
          }
          // a's entry is damaged: the replay rebuilds the write from a's copy, which the bound did not take.
          const entry = (yield* memory.keys).find((n) => n.startsWith("resilient-redis:journal:") && n.endsWith(":a"))
          yield* memory.set(entry!, "damaged")
          yield* server.restart
          yield* waitFor(cache, "Healthy")
          const dropped = events.flatMap((e) => e._tag === "JournalEntryDropped" ? [e] : [])
          assert.deepStrictEqual(dropped.map((e) => [e.key, e.recovered]), [["a", true]])
          for (const [key, value] of [["a", "1"], ["b", "2"], ["c", "3"], ["d", "4"], ["x", "0"]] as const) {
            assert.deepStrictEqual(yield* redis.get(key), Option.some(value), key)
          }
          // Once the journal drained, the copies are a cache again: the least recently written go.
          assert.deepStrictEqual(yield* copiesIn(memory), { copies: ["c", "d"], tombstones: [] })
          assert.isFalse((yield* memory.keys).some((n) => n.startsWith("resilient-redis:journal:")))
        }).pipe(Effect.scoped)
      ),
    20_000
  )

  it.live(
    "a removed key's copy leaves the bound: the copies written before it are kept",
    () =>
      withServer(() =>
        Effect.gen(function*() {
          const memory = yield* FallbackStore.makeMemory()
          const cache = yield* openBounded(memory, 3)
          for (const key of ["a", "b", "c"]) yield* cache.set(key, key)
          assert.isTrue(yield* cache.remove("c"))
          yield* cache.set("d", "d")
          assert.deepStrictEqual(yield* copiesIn(memory), { copies: ["a", "b", "d"], tombstones: ["c"] })
        }).pipe(Effect.scoped)
      ),
    20_000
  )

  // Every journal entry lost (pending none): the copies are what the lost writes are rebuilt from, so a start with
  // a lower bound does not trim them until the replay has looked them up.
  it.live(
    "a start keeps the copies past the bound while lost journal entries are still to be rebuilt from them",
    () =>
      withServer((server) =>
        Effect.gen(function*() {
          const memory = yield* FallbackStore.makeMemory()
          const written = [["a", "1"], ["b", "2"], ["c", "3"]] as const
          yield* Effect.gen(function*() {
            const first = yield* openBounded(memory, 10)
            yield* first.set("x", "0")
            yield* server.kill
            for (const [key, value] of written) yield* first.set(key, value)
            assert.strictEqual((yield* first.snapshot).pending, 3)
          }).pipe(Effect.scoped)
          for (const name of yield* memory.keys) {
            if (name.startsWith("resilient-redis:journal:")) yield* memory.remove(name)
          }

          yield* Effect.gen(function*() {
            const second = yield* openBounded(memory, 1)
            const events = yield* collectEvents(second)
            assert.deepStrictEqual((yield* copiesIn(memory)).copies, ["a", "b", "c", "x"])
            yield* server.restart
            yield* waitFor(second, "Healthy")
            const dropped = events.flatMap((e) => e._tag === "JournalEntryDropped" ? [[e.key, e.recovered]] : [])
            assert.deepStrictEqual(dropped, [["a", true], ["b", true], ["c", true]])
            const redis = yield* RedisStore.RedisStore
            for (const [key, value] of written) assert.deepStrictEqual(yield* redis.get(key), Option.some(value), key)
            // Once replayed, the copies are a cache again, within the bound.
            assert.strictEqual((yield* copiesIn(memory)).copies.length, 1)
          }).pipe(Effect.scoped)
        }).pipe(Effect.scoped)
      ),
    20_000
  )

  it.live("maxCopies must be a positive integer: PolicyConfigError names it", () =>
    Effect.gen(function*() {
      for (const maxCopies of [0, 1.5, -1]) {
        const error = yield* Effect.flip(
          Layer.build(ResilientRedis.layer({ maxCopies })).pipe(
            Effect.scoped,
            Effect.provide(FallbackStore.layerMemory()),
            Effect.provideService(RedisStore.RedisStore, RedisStore.RedisStore.of({} as never))
          )
        )
        assert(error._tag === "PolicyConfigError")
        assert.deepStrictEqual(error.issues.map((issue) => issue.path), ["maxCopies"], String(maxCopies))
      }
    }), 5_000)
})
