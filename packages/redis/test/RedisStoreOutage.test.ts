import * as RedisServer from "@effect-resilience/testing/RedisServer"
import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Fiber, Layer, Logger, Schedule, Stream } from "effect"
import { TestClock } from "effect/testing"
import { createClient } from "redis"
import * as client from "../src/internal/client.ts"
import * as RedisStore from "../src/RedisStore.ts"

/** Retries `self` every 50 ms for up to 8 s: the client reconnects in the background. */
const eventually = <A, E, R>(self: Effect.Effect<A, E, R>) =>
  Effect.retry(self, Schedule.spaced("50 millis").pipe(Schedule.upTo({ duration: "8 seconds" })))

describe("RedisStore outage logs", () => {
  it.live("an outage logs one line when the connection drops and one when it returns, not one per attempt", () => {
    const lines: Array<{ readonly level: string; readonly message: string }> = []
    const capture = Logger.layer([
      Logger.make(({ logLevel, message }) => {
        lines.push({ level: logLevel, message: (Array.isArray(message) ? message : [message]).map(String).join(" ") })
      })
    ])
    return Effect.gen(function*() {
      const server = yield* RedisServer.make()
      const context = yield* Layer.build(RedisStore.layer({ url: server.url, lazy: true }))
      const store = Context.get(context, RedisStore.RedisStore)
      yield* eventually(store.set("k", "v"))
      // A subscriber is a second connection: it must not add a line per attempt either.
      const messages = yield* store.subscribe("events")
      const received = yield* messages.pipe(Stream.take(1), Stream.runCollect, Effect.forkScoped)
      lines.length = 0

      yield* server.kill
      // About eight reconnect attempts per connection (backoff 50 ms doubling up to 2 s).
      yield* Effect.sleep("5 seconds")
      yield* server.restart
      yield* eventually(store.set("k", "back"))
      // The subscriber is back once a message reaches it.
      yield* eventually(Effect.flatMap(store.publish("events", "after"), (n) => n === 1 ? Effect.void : Effect.fail(n)))
      assert.deepStrictEqual(yield* Fiber.join(received), ["after"])

      const about = lines.filter((line) => line.message.includes(`127.0.0.1:${server.port}`))
      const warnings = about.filter((line) => line.level === "Warn").map((line) => line.message)
      const dropped = new RegExp(`^RedisStore( subscriber)?: lost the connection to 127\\.0\\.0\\.1:${server.port} \\(`)
      for (const warning of warnings) assert.match(warning, dropped)
      assert.isTrue(warnings.some((warning) => warning.startsWith("RedisStore: lost the connection")))
      // One drop and one return per connection, each on one line: nothing per attempt.
      assert.isAtMost(lines.length, 4, lines.map((line) => line.message).join("\n"))
      assert.isAtLeast(lines.length, 2)
      for (const line of lines) assert.notInclude(line.message, "\n")
      const back = about.filter((line) => line.message.includes("is back after"))
      assert.isAtLeast(back.length, 1)
      assert.match(back[0]!.message, /is back after \d+s/)
    }).pipe(Effect.scoped, Effect.provide(capture))
  }, 25_000)

  it.effect("a long outage is recalled once a minute, not once per attempt", () => {
    const lines: Array<string> = []
    const capture = Logger.layer([
      Logger.make(({ message }) => {
        lines.push((Array.isArray(message) ? message : [message]).map(String).join(" "))
      })
    ])
    return Effect.gen(function*() {
      const runSync = Effect.runSyncWith(yield* Effect.context<never>())
      // Never connected: the events stand in for node-redis' (one `error` per reconnect attempt).
      const options: client.ClientOptions = { socket: { host: "10.0.0.7", port: 6380 } }
      const redis: client.Client = createClient(options)
      client.logConnection(redis, "RedisStore", runSync, () => false)
      redis.emit("ready")
      // Five minutes of attempts, one every 2 seconds.
      for (let attempt = 0; attempt < 150; attempt++) {
        redis.emit("error", Object.assign(new Error("connect ECONNREFUSED 10.0.0.7:6380"), { code: "ECONNREFUSED" }))
        yield* TestClock.adjust("2 seconds")
      }
      redis.emit("ready")
      assert.deepStrictEqual(lines, [
        "RedisStore: lost the connection to 10.0.0.7:6380 (connect ECONNREFUSED 10.0.0.7:6380), reconnecting in the background",
        "RedisStore: still no connection to 10.0.0.7:6380 after 1m (31 attempts, last: connect ECONNREFUSED 10.0.0.7:6380)",
        "RedisStore: still no connection to 10.0.0.7:6380 after 2m (61 attempts, last: connect ECONNREFUSED 10.0.0.7:6380)",
        "RedisStore: still no connection to 10.0.0.7:6380 after 3m (91 attempts, last: connect ECONNREFUSED 10.0.0.7:6380)",
        "RedisStore: still no connection to 10.0.0.7:6380 after 4m (121 attempts, last: connect ECONNREFUSED 10.0.0.7:6380)",
        "RedisStore: connection to 10.0.0.7:6380 is back after 5m"
      ])
    }).pipe(Effect.provide(capture))
  })
})
