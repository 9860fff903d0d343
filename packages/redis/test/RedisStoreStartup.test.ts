import * as RedisServer from "@effect-resilience/testing/RedisServer"
import { assert, describe, it } from "@effect/vitest"
import { Clock, Effect, Layer, Logger } from "effect"
import { createServer, type Socket } from "node:net"
import * as RedisStore from "../src/RedisStore.ts"

/** Builds `layer` and returns how it ended (never the services) with how long it took, in real milliseconds. */
const build = <E>(layer: Layer.Layer<RedisStore.RedisStore, E>) =>
  Effect.gen(function*() {
    const startedAt = yield* Clock.currentTimeMillis
    const result = yield* Effect.result(Effect.scoped(Effect.asVoid(Layer.build(layer))))
    return { result, millis: (yield* Clock.currentTimeMillis) - startedAt }
  })

/** A TCP server that is not Redis: it answers every connection with an HTTP error and closes it. */
const notRedis = Effect.acquireRelease(
  Effect.callback<{ readonly port: number; readonly close: () => void }>((resume) => {
    const sockets = new Set<Socket>()
    const server = createServer((socket) => {
      sockets.add(socket)
      socket.on("close", () => sockets.delete(socket))
      socket.on("error", () => {})
      socket.once("data", () => socket.end("HTTP/1.1 400 Bad Request\r\n\r\n"))
    })
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      const port = typeof address === "object" && address !== null ? address.port : 0
      resume(Effect.succeed({
        port,
        close: () => {
          for (const socket of sockets) socket.destroy()
          server.close()
        }
      }))
    })
  }),
  (server) => Effect.sync(server.close)
)

describe("RedisStore startup", () => {
  it.live(
    "an eager layer on a Redis that accepts connections but never answers fails within connectTimeout",
    () =>
      Effect.gen(function*() {
        const server = yield* RedisServer.make()
        yield* server.freeze
        const built = yield* build(RedisStore.layer({ url: server.url, connectTimeout: "1 second" })).pipe(
          // A hang is the defect: give up well after the connect timeout rather than hang the suite.
          Effect.timeoutOrElse({ duration: "10 seconds", orElse: () => Effect.die("startup hung") })
        )
        assert(built.result._tag === "Failure")
        const error = built.result.failure
        assert(error._tag === "RedisStoreError")
        assert.strictEqual(error.operation, "connect")
        assert.include(error.message, "did not answer")
        assert.isAtLeast(built.millis, 900)
        assert.isBelow(built.millis, 5_000)
      }),
    20_000
  )

  it.live("a port that is not Redis says what was expected", () =>
    Effect.gen(function*() {
      const server = yield* notRedis
      const built = yield* build(
        RedisStore.layer({ url: `redis://127.0.0.1:${server.port}`, connectTimeout: "1 second" })
      ).pipe(Effect.timeoutOrElse({ duration: "10 seconds", orElse: () => Effect.die("startup hung") }))
      assert(built.result._tag === "Failure")
      const error = built.result.failure
      assert(error._tag === "RedisStoreError")
      assert.strictEqual(error.operation, "connect")
      assert.include(error.message, `127.0.0.1:${server.port}`)
      assert.include(error.message, "not a Redis server")
    }), 20_000)

  it.live("a lazy layer on a port that is not Redis logs what was expected, once", () => {
    const lines: Array<string> = []
    const capture = Logger.layer([
      Logger.make(({ message }) => {
        lines.push((Array.isArray(message) ? message : [message]).map(String).join(" "))
      })
    ])
    return Effect.gen(function*() {
      const server = yield* notRedis
      yield* Layer.build(RedisStore.layer({ url: `redis://127.0.0.1:${server.port}`, lazy: true }))
      // Several reconnect attempts (50, 100, 200, 400 ms apart).
      yield* Effect.sleep("1 second")
      assert.strictEqual(lines.length, 1, lines.join("\n"))
      assert.include(lines[0], `RedisStore: cannot connect to 127.0.0.1:${server.port}`)
      assert.include(lines[0], "not a Redis server")
    }).pipe(Effect.scoped, Effect.provide(capture))
  }, 20_000)
})
