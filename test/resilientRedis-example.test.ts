import { layer, rememberSession } from "@effect-resilience/example-fleet/resilientRedis"
import { ResilientRedis } from "@effect-resilience/redis"
import * as RedisServer from "@effect-resilience/testing/RedisServer"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Option, Schedule } from "effect"
import { mkdtempSync, readdirSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"

// The example's layer on this test's own server and a temporary directory (its `Live` uses 127.0.0.1:6379, a Redis
// this test cannot stop, and the checkout's `.data`).
const fallbackDirectory = Effect.acquireRelease(
  Effect.sync(() => mkdtempSync(join(tmpdir(), "resilient-redis-example-"))),
  (directory) => Effect.sync(() => rmSync(directory, { recursive: true, force: true }))
)

// The journal entries in a fallback directory: entry files are named `k` and the key's UTF-8 bytes in hex
// (FallbackStore), and a journal entry's key is `<prefix>journal:<seq>:<key>` (ResilientRedis).
const journalIn = (directory: string) =>
  readdirSync(directory)
    .filter((name) => /^k(?:[0-9a-f]{2})*$/.test(name))
    .map((name) => Buffer.from(name.slice(1), "hex").toString("utf8"))
    .filter((key) => key.startsWith("resilient-redis:journal:"))

// What the server holds, read over a socket of its own: RedisStore's keys carry its default prefix `resilience:`.
const get = (port: number, key: string) =>
  Effect.map(
    RedisServer.command(port, ["GET", key]),
    (reply) => reply.startsWith("$-1") ? undefined : reply.split("\r\n")[1]
  )
const pttl = (port: number, key: string) =>
  Effect.map(RedisServer.command(port, ["PTTL", key]), (reply) => Number(reply.slice(1).trim()))

const hour = 60 * 60 * 1000

describe("the ResilientRedis example (docs/stores.md)", () => {
  it.live(
    "a write acknowledged while Redis is down is in Redis, with the TTL it had left, once Redis is back",
    () =>
      Effect.gen(function*() {
        const directory = yield* fallbackDirectory
        // Nobody listens on this port yet: Redis is down as the program starts.
        const port = yield* RedisServer.freePort
        const live = layer(`redis://127.0.0.1:${port}`, directory)

        const writtenFrom = Date.now()
        const down = yield* rememberSession.pipe(Effect.provide(live))
        const writtenBy = Date.now()
        // Acknowledged and read back while Redis is down: the fallback answered both; the write waits in its journal.
        assert.deepStrictEqual(down.session, Option.some("alice"))
        assert.strictEqual(down.health, "Fallback")
        assert.strictEqual(down.stats.redisOps, 0)
        assert.strictEqual(down.stats.fallbackOps, 2)
        assert.strictEqual(down.stats.journaled, 1)
        assert.strictEqual(down.stats.pending, 1)
        const journal = journalIn(directory)
        assert.strictEqual(journal.length, 1)
        assert.isTrue(journal[0]!.endsWith(":session:42"), journal[0])

        // Redis comes back on the port the client was trying. The program has ended, so this is a restart of it in the
        // middle of the outage: the example's layer again, on the same fallback directory, until the journal is empty.
        const server = yield* RedisServer.makeOnPort(port)
        const replayed = yield* Effect.gen(function*() {
          const cache = yield* ResilientRedis.ResilientRedis
          return yield* cache.snapshot.pipe(
            Effect.repeat({ schedule: Schedule.spaced("20 millis"), until: (s) => s.pending === 0 }),
            Effect.timeout("10 seconds")
          )
        }).pipe(Effect.provide(live))
        const readFrom = Date.now()
        const value = yield* get(port, "resilience:session:42")
        const ttl = yield* pttl(port, "resilience:session:42")
        const at = yield* get(port, "resilience:resilient-redis:at:session:42")
        const atTtl = yield* pttl(port, "resilience:resilient-redis:at:session:42")
        const readBy = Date.now()

        // The journaled write was replayed to Redis and its entry deleted.
        assert.strictEqual(replayed.replayed, 1)
        assert.strictEqual(replayed.stale, 0)
        assert.strictEqual(replayed.dropped, 0)
        assert.isAbove(replayed.drainRate, 0)
        assert.strictEqual(replayed.state, "Healthy")
        assert.deepStrictEqual(journalIn(directory), [])
        // In Redis: the value, with the TTL it had left (an hour from the write, not from the replay) ...
        assert.strictEqual(value, "alice")
        assert.isAtLeast(ttl, writtenFrom + hour - readBy - 2)
        assert.isAtMost(ttl, writtenBy + hour - readFrom + 2)
        // ... and beside it, with the same TTL, the time of the write made while Redis was down: last write wins by it.
        assert.isAtLeast(Number(at), writtenFrom)
        assert.isAtMost(Number(at), writtenBy)
        assert.approximately(atTtl, ttl, readBy - readFrom + 2)
        yield* server.kill
      }).pipe(Effect.scoped),
    20_000
  )

  it.live("with Redis up, the write goes to Redis", () =>
    Effect.gen(function*() {
      const directory = yield* fallbackDirectory
      const server = yield* RedisServer.make()

      const up = yield* rememberSession.pipe(Effect.provide(layer(server.url, directory)))
      assert.deepStrictEqual(up.session, Option.some("alice"))
      // "Calls go to Redis through a circuit breaker"; the fallback answers only "when Redis fails", and the example's
      // writes "go to the fallback" only "while Redis is down". Here Redis is up as the program starts: its first
      // write, sent while the lazy client is still connecting, waits for the connection rather than fail.
      assert.deepStrictEqual({
        inRedis: yield* get(server.port, "resilience:session:42"),
        health: up.health,
        redisOps: up.stats.redisOps,
        fallbackOps: up.stats.fallbackOps,
        pending: up.stats.pending,
        journal: journalIn(directory).length
      }, { inRedis: "alice", health: "Healthy", redisOps: 2, fallbackOps: 0, pending: 0, journal: 0 })
    }).pipe(Effect.scoped), 20_000)
})
