import * as RedisServer from "@effect-resilience/testing/RedisServer"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"

// The throwaway server's restarts: with its data (append-only file), and empty (its directory emptied), on one port.
describe("RedisServer", () => {
  it.live(
    "restart keeps the data of a persistent server; restartEmpty comes back on the same port with none",
    () =>
      Effect.gen(function*() {
        const server = yield* RedisServer.make({ persistence: true })
        const send = (...args: ReadonlyArray<string>) => RedisServer.command(server.port, args)
        assert.strictEqual(yield* send("SET", "kept", "1"), "+OK\r\n")

        yield* server.restart
        assert.strictEqual(yield* send("GET", "kept"), "$1\r\n1\r\n")

        yield* server.restartEmpty
        assert.strictEqual(yield* send("GET", "kept"), "$-1\r\n")
        assert.strictEqual(yield* send("DBSIZE"), ":0\r\n")

        // Still persistent after it: what is written now survives the next restart.
        assert.strictEqual(yield* send("SET", "after", "2"), "+OK\r\n")
        yield* server.restart
        assert.strictEqual(yield* send("GET", "after"), "$1\r\n2\r\n")
        assert.strictEqual(yield* send("GET", "kept"), "$-1\r\n")
      }).pipe(Effect.scoped),
    30_000
  )

  it.live("restartEmpty on a killed server starts it again, empty", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.make({ persistence: true })
      assert.strictEqual(yield* RedisServer.command(server.port, ["SET", "k", "v"]), "+OK\r\n")
      yield* server.kill
      assert.isTrue((yield* Effect.result(RedisServer.command(server.port, ["PING"])))._tag === "Failure")
      yield* server.restartEmpty
      assert.strictEqual(yield* RedisServer.command(server.port, ["DBSIZE"]), ":0\r\n")
    }).pipe(Effect.scoped), 30_000)
})
