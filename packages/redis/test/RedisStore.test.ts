import * as RedisServer from "@effect-resilience/testing/RedisServer"
import { assert, describe, it } from "@effect/vitest"
import { Clock, ConfigProvider, Duration, Effect, Fiber, Layer, Option, Redacted, Schedule, Stream } from "effect"
import * as Redis from "effect/persistence/Redis"
import * as client from "../src/internal/client.ts"
import * as RedisStore from "../src/RedisStore.ts"

/** Runs `self` and returns its outcome with how long it took, in real milliseconds. */
const timed = <A, E, R>(self: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const startedAt = yield* Clock.currentTimeMillis
    const result = yield* Effect.result(self)
    return { result, millis: (yield* Clock.currentTimeMillis) - startedAt }
  })

const theStore = Effect.gen(function*() {
  return yield* RedisStore.RedisStore
})

const fromConfig = (config: Record<string, string>) =>
  RedisStore.layerConfig().pipe(Layer.provide(ConfigProvider.layer(ConfigProvider.fromUnknown(config))))

/** Retries `self` every 50 ms for up to 5 s: node-redis reconnects in the background after a restart. */
const eventually = <A, E, R>(self: Effect.Effect<A, E, R>) =>
  Effect.retry(self, Schedule.spaced("50 millis").pipe(Schedule.upTo({ duration: "5 seconds" })))

/** Runs `f` with a server of our own and a store connected to it. */
const withStore = <A, E>(
  f: (
    store: RedisStore.RedisStore,
    server: RedisServer.RedisServer,
    redis: Redis.Redis["Service"]
  ) => Effect.Effect<A, E, never>,
  options: Omit<RedisStore.LayerOptions, "url"> = {}
) =>
  Effect.gen(function*() {
    const server = yield* RedisServer.make()
    return yield* Effect.gen(function*() {
      return yield* f(yield* RedisStore.RedisStore, server, yield* Redis.Redis)
    }).pipe(Effect.provide(RedisStore.layer({ ...options, url: server.url })))
  }).pipe(Effect.scoped)

describe("RedisStore", () => {
  it.live("a command that ends interrupted on its own fails with RedisStoreError: the caller was not interrupted", () =>
    withStore((_, __, redis) =>
      Effect.gen(function*() {
        // A client whose command fiber something else interrupted.
        const interrupted = Effect.forkChild(Effect.never).pipe(Effect.tap(Fiber.interrupt), Effect.flatMap(Fiber.join))
        const store = yield* RedisStore.make().pipe(
          Effect.provideService(Redis.Redis, Redis.Redis.of({ ...redis, send: () => interrupted }))
        )
        const error = yield* Effect.flip(store.get("k"))
        assert.deepStrictEqual([error._tag, error.operation, error.message], [
          "RedisStoreError",
          "get",
          "Redis get ended interrupted"
        ])
      })
    ))

  it.live("round trip: set, get, remove", () =>
    withStore((store) =>
      Effect.gen(function*() {
        assert.deepStrictEqual(yield* store.get("missing"), Option.none())
        yield* store.set("greeting", "hello")
        assert.deepStrictEqual(yield* store.get("greeting"), Option.some("hello"))
        yield* store.set("greeting", "hello again")
        assert.deepStrictEqual(yield* store.get("greeting"), Option.some("hello again"))
        assert.isTrue(yield* store.remove("greeting"))
        assert.isFalse(yield* store.remove("greeting"))
        assert.deepStrictEqual(yield* store.get("greeting"), Option.none())
      })
    ), 10_000)

  // Only lower bounds on real time, and TTLs long enough that no stall of a loaded machine expires a key early.
  it.live(
    "a key with a 200 ms TTL is gone after it, not before; increment's TTL starts with the counter",
    () =>
      withStore((store, _, redis) =>
        Effect.gen(function*() {
          const setAt = yield* Clock.currentTimeMillis
          yield* store.set("short", "lived", { ttl: "200 millis" })
          const pttl = yield* redis.send<number>("PTTL", "resilience:short")
          assert.isAbove(pttl, 0)
          assert.isAtMost(pttl, 200)
          // Redis expires a key as it is read, so it is gone from the moment its TTL runs out.
          yield* eventually(
            Effect.flatMap(store.get("short"), (value) => Option.isNone(value) ? Effect.void : Effect.fail(value))
          )
          assert.isAtLeast((yield* Clock.currentTimeMillis) - setAt, 199)

          assert.strictEqual(yield* store.increment("window", 1, { ttl: "10 seconds" }), 1)
          yield* Effect.sleep("100 millis")
          // A later increment keeps the window's expiry: it does not push it back to 10 seconds.
          assert.strictEqual(yield* store.increment("window", 1, { ttl: "10 seconds" }), 2)
          const left = yield* redis.send<number>("PTTL", "resilience:window")
          assert.isAbove(left, 0)
          assert.isAtMost(left, 9_900)

          // Without a TTL the counter stays.
          assert.strictEqual(yield* store.increment("forever", 5), 5)
          assert.strictEqual(yield* redis.send<number>("PTTL", "resilience:forever"), -1)
        })
      ),
    10_000
  )

  it.live(
    "increment is atomic: 100 concurrent callers give exactly 100, each seeing its own value",
    () =>
      withStore((store) =>
        Effect.gen(function*() {
          const seen = yield* Effect.forEach(
            Array.from({ length: 100 }, (_, i) => i),
            () => store.increment("hits", 1, { ttl: "1 minute" }),
            { concurrency: "unbounded" }
          )
          assert.deepStrictEqual([...seen].sort((a, b) => a - b), Array.from({ length: 100 }, (_, i) => i + 1))
          assert.deepStrictEqual(yield* store.get("hits"), Option.some("100"))
          assert.strictEqual(yield* store.increment("hits", -40), 60)
        })
      ),
    10_000
  )

  it.live(
    "pub/sub round trip: messages published after subscribe returns arrive in order",
    () =>
      withStore((store) =>
        Effect.gen(function*() {
          const messages = yield* store.subscribe("events")
          const received = yield* messages.pipe(Stream.take(2), Stream.runCollect, Effect.forkScoped)
          assert.strictEqual(yield* store.publish("events", "first"), 1)
          assert.strictEqual(yield* store.publish("events", "second"), 1)
          assert.deepStrictEqual(yield* Fiber.join(received), ["first", "second"])
          // Nobody listens on another channel.
          assert.strictEqual(yield* store.publish("other", "lost"), 0)
        }).pipe(Effect.scoped)
      ),
    10_000
  )

  it.live(
    "keys and channels are prefixed; eval runs scripts on store.key",
    () =>
      withStore((store, _, redis) =>
        Effect.gen(function*() {
          assert.strictEqual(store.prefix, "orders:")
          yield* store.set("open", "12")
          assert.strictEqual(yield* redis.send<string | null>("GET", "orders:open"), "12")
          assert.strictEqual(yield* redis.send<string | null>("GET", "open"), null)

          const getset = Redis.script((key: string, value: string) => [key, value], {
            numberOfKeys: 1,
            lua: "local old = redis.call('GET', KEYS[1]); redis.call('SET', KEYS[1], ARGV[1]); return old"
          }).withReturnType<string | null>()
          assert.strictEqual(yield* store.eval(getset)(store.key("open"), "13"), "12")
          assert.deepStrictEqual(yield* store.get("open"), Option.some("13"))
        }), { prefix: "orders:" }),
    10_000
  )

  it.live("a ttl that is not a positive duration fails, naming ttl, and writes nothing (as FallbackStore's)", () =>
    withStore((store) =>
      Effect.gen(function*() {
        yield* store.set("session", "alice")
        for (const ttl of [0, -1000, "-1 second", Number.NaN] as const) {
          const set = yield* Effect.flip(store.set("session", "bob", { ttl }))
          assert.strictEqual(set.message, `Expected ttl to be a positive duration, got ${String(ttl)}`)
          const increment = yield* Effect.flip(store.increment("hits", 1, { ttl }))
          assert.deepStrictEqual([increment.operation, increment.key], ["increment", "hits"])
        }
        // Sent, such a ttl would have expired the key at once: a write acknowledged and lost.
        assert.deepStrictEqual(yield* store.get("session"), Option.some("alice"))
        assert.deepStrictEqual(yield* store.get("hits"), Option.none())
        // An infinite ttl is none.
        yield* store.set("session", "carol", { ttl: Infinity })
        assert.deepStrictEqual(yield* store.get("session"), Option.some("carol"))
      })
    ))

  // "😀" is "\ud83d\ude00": `text.slice` can leave its first half alone, which Redis would store as U+FFFD.
  it.live("a key, value, channel or message with a lone surrogate is refused, naming it, and nothing is written", () =>
    withStore((store, _, redis) =>
      Effect.gen(function*() {
        yield* store.set("greeting:\ufffd", "from B")
        const refused = [
          yield* Effect.flip(store.set("greeting:\ud83d", "from A")),
          yield* Effect.flip(store.set("note", "half an emoji: \ud83d")),
          yield* Effect.flip(store.get("greeting:\ud83d")),
          yield* Effect.flip(store.remove("greeting:\ud83d")),
          yield* Effect.flip(store.increment("hits:\udc00")),
          yield* Effect.flip(store.publish("news:\ud83d", "hello")),
          yield* Effect.flip(store.publish("news", "\ud83d"))
        ]
        assert.deepStrictEqual(refused.map((error) => [error.operation, error.message.split(" of whole")[0]]), [
          ["set", "Expected a key"],
          ["set", "Expected a value"],
          ["get", "Expected a key"],
          ["remove", "Expected a key"],
          ["increment", "Expected a key"],
          ["publish", "Expected a channel"],
          ["publish", "Expected a message"]
        ])
        assert.include(refused[0].message, "a lone surrogate (half of a character such as an emoji)")
        // The key that U+FFFD would have made of it keeps what it had; nothing else was written.
        assert.deepStrictEqual(yield* store.get("greeting:\ufffd"), Option.some("from B"))
        assert.deepStrictEqual(yield* redis.send<Array<string>>("KEYS", "*"), ["resilience:greeting:\ufffd"])
        // Whole characters go through.
        yield* store.set("greeting:\ud83d\ude00", "smile")
        assert.deepStrictEqual(yield* store.get("greeting:\ud83d\ude00"), Option.some("smile"))
      })
    ))

  it.live("the default prefix is resilience:", () =>
    withStore((store, _, redis) =>
      Effect.gen(function*() {
        yield* store.set("k", "v")
        assert.strictEqual(yield* redis.send<string | null>("GET", "resilience:k"), "v")
      })
    ), 10_000)

  it.live("a ttl under a millisecond rounds up to one: the key expires, it does not live for ever", () =>
    withStore((store, _, redis) =>
      Effect.gen(function*() {
        yield* store.set("tiny", "v", { ttl: "0.4 millis" })
        assert.notStrictEqual(yield* redis.send<number>("PTTL", "resilience:tiny"), -1)
        yield* store.increment("tick", 1, { ttl: "0.4 millis" })
        assert.notStrictEqual(yield* redis.send<number>("PTTL", "resilience:tick"), -1)
      })
    ))

  it.live("layerConfig reads REDIS_URL, REDIS_PREFIX and a redacted REDIS_PASSWORD", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.make()

      yield* Effect.gen(function*() {
        const store = yield* RedisStore.RedisStore
        yield* store.set("k", "v")
        assert.strictEqual(yield* (yield* Redis.Redis).send<string | null>("GET", "cfg:k"), "v")
        // From now on the server wants a password.
        yield* (yield* Redis.Redis).send("CONFIG", "SET", "requirepass", "s3cret-pw")
      }).pipe(Effect.provide(fromConfig({ REDIS_URL: server.url, REDIS_PREFIX: "cfg:" })))

      const withPassword = yield* Effect.gen(function*() {
        return yield* (yield* RedisStore.RedisStore).get("k")
      }).pipe(Effect.provide(fromConfig({ REDIS_URL: server.url, REDIS_PREFIX: "cfg:", REDIS_PASSWORD: "s3cret-pw" })))
      assert.deepStrictEqual(withPassword, Option.some("v"))

      // A wrong password fails the layer, and its message does not carry the password.
      const wrong = yield* Effect.flip(
        Effect.provide(theStore, fromConfig({ REDIS_URL: server.url, REDIS_PASSWORD: "nope-pw" }))
      )
      assert(wrong._tag === "RedisStoreError")
      assert.strictEqual(wrong.operation, "connect")
      assert.include(wrong.message, "WRONGPASS")
      assert.notInclude(wrong.message, "nope-pw")

      const invalid = yield* Effect.flip(
        Effect.provide(theStore, fromConfig({ REDIS_URL: "http://user:hunter2@example.com" }))
      )
      assert(invalid._tag === "PolicyConfigError")
      // Named by the variable the operator set, and the option it fills.
      assert.deepStrictEqual(invalid.issues, [{
        path: "REDIS_URL (url)",
        message: "Expected a redis:// or rediss:// URL, got a http: URL"
      }])
      assert.notInclude(invalid.message, "hunter2")
    }).pipe(Effect.scoped), 10_000)

  it.live(
    "invalid options fail with PolicyConfigError naming each option, what was expected and what was given",
    () =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(
          Effect.provide(
            theStore,
            RedisStore.layer({
              url: "not a url",
              password: "hunter2" as never,
              timeout: -1,
              connectTimeout: "soon" as never,
              prefix: 3 as never
            })
          )
        )
        assert(error._tag === "PolicyConfigError")
        assert.deepStrictEqual(error.issues, [
          { path: "url", message: "Expected a redis:// or rediss:// URL, got an unparsable string" },
          { path: "password", message: "Expected a Redacted string (Redacted.make(...)), got a string" },
          {
            path: "connectTimeout",
            message: "Expected a duration, got \"soon\", which is not a duration: use a number of milliseconds, " +
              "a Duration, or \"<amount> <unit>\" with a unit among nanos, micros, millis, seconds, minutes, hours, days, weeks " +
              "(\"30 seconds\")"
          },
          { path: "prefix", message: "Expected string | undefined, got 3" },
          { path: "timeout", message: "Expected a positive duration, got -1 millis" }
        ])
        // A password given as a plain string is a secret all the same.
        assert.notInclude(error.message, "hunter2")
        const store = yield* Effect.flip(RedisStore.make({ timeout: "soon" as never }))
        assert.deepStrictEqual(store.issues.map((issue) => issue.path), ["timeout"])
      }).pipe(Effect.provideService(Redis.Redis, Redis.Redis.of({} as never))),
    10_000
  )

  // node-redis reads a URL's path as the database to SELECT and throws at `createClient` on anything else (a name or a
  // prefix there by mistake): checked with the options, the layer fails with the option named, never dies.
  it.live(
    "a url whose path is not a database number, or with a malformed % escape, fails with PolicyConfigError",
    () =>
      Effect.gen(function*() {
        const server = yield* RedisServer.make()
        const base = `redis://:hunter2@127.0.0.1:${server.port}`
        const cases: ReadonlyArray<readonly [url: string, message: string]> = [
          [
            `${base}/sessions`,
            "Expected a database number after the port (redis://host:6379/0), got the path \"/sessions\""
          ],
          [`${base}/-1`, "Expected a database number after the port (redis://host:6379/0), got the path \"/-1\""],
          [`${base}/0/`, "Expected a database number after the port (redis://host:6379/0), got the path \"/0/\""],
          [
            `redis://:hunter2%zz@127.0.0.1:${server.port}/0`,
            "Expected the user name and password percent-encoded as UTF-8 (%25 for % itself), got a malformed % escape"
          ]
        ]
        for (const [url, message] of cases) {
          for (const lazy of [false, true]) {
            const error = yield* Effect.flip(Effect.provide(theStore, RedisStore.layer({ url, lazy })))
            assert(error._tag === "PolicyConfigError", `${url} (lazy: ${lazy}): ${error._tag}`)
            assert.deepStrictEqual(error.issues, [{ path: "url", message }])
            assert.notInclude(error.message, "hunter2")
          }
          const fromEnv = yield* Effect.flip(Effect.provide(theStore, fromConfig({ REDIS_URL: url })))
          assert(fromEnv._tag === "PolicyConfigError")
          assert.deepStrictEqual(fromEnv.issues, [{ path: "REDIS_URL (url)", message }])
          assert.notInclude(fromEnv.message, "hunter2")
        }
        // Paths node-redis accepts stay accepted.
        for (const path of ["", "/", "/0", "/3"]) {
          yield* Effect.provide(theStore, RedisStore.layer({ url: `redis://127.0.0.1:${server.port}${path}` }))
        }
      }).pipe(Effect.scoped),
    10_000
  )

  it.live("options node-redis refuses past the option check fail with a typed error, without the URL", () =>
    Effect.gen(function*() {
      const url = "redis://:hunter2@127.0.0.1:1/sessions"
      const eager = yield* Effect.flip(client.makeEager({ url }, Duration.seconds(1), "RedisStore"))
      const lazy = yield* Effect.flip(client.makeLazy({ url }, Duration.seconds(1)))
      for (const error of [eager, lazy]) {
        assert.strictEqual(error._tag, "ConnectError")
        assert.strictEqual(
          error.message,
          "RedisStore: node-redis refused the client options (TypeError: Invalid pathname)"
        )
      }
    }).pipe(Effect.scoped))

  it.live("an unreachable server fails the layer with RedisStoreError at once", () =>
    Effect.gen(function*() {
      const port = yield* RedisServer.freePort
      const { millis, result } = yield* timed(
        Effect.provide(theStore, RedisStore.layer({ url: `redis://127.0.0.1:${port}` }))
      )
      assert(result._tag === "Failure" && result.failure._tag === "RedisStoreError")
      assert.strictEqual(result.failure.operation, "connect")
      assert.include(result.failure.message, "ECONNREFUSED")
      assert.isBelow(millis, 2_000)
    }), 10_000)

  it.live(
    "SIGKILL: operations fail with RedisStoreError at once; after a restart they succeed again",
    () =>
      withStore((store, server) =>
        Effect.gen(function*() {
          yield* store.set("before", "kill")
          yield* server.kill

          const operations: ReadonlyArray<Effect.Effect<unknown, RedisStore.RedisStoreError>> = [
            store.get("before"),
            store.increment("n"),
            store.publish("events", "x")
          ]
          for (const operation of operations) {
            const down = yield* timed(operation)
            assert(down.result._tag === "Failure")
            assert.strictEqual(down.result.failure._tag, "RedisStoreError")
            // At once: well under the 5 s timeout, however loaded the machine.
            assert.isBelow(down.millis, 2_000)
          }
          const failure = yield* Effect.flip(store.get("before"))
          assert.strictEqual(failure.operation, "get")
          assert.strictEqual(failure.key, "before")

          yield* server.restart
          const up = yield* timed(eventually(store.set("after", "restart")))
          assert.strictEqual(up.result._tag, "Success")
          assert.isBelow(up.millis, 5_000)
          // No persistence: the restarted server starts empty.
          assert.deepStrictEqual(yield* store.get("before"), Option.none())
          assert.deepStrictEqual(yield* store.get("after"), Option.some("restart"))
          assert.strictEqual(yield* store.increment("n"), 1)
        }), { timeout: "5 seconds" }),
    15_000
  )

  it.live(
    "a hung server (SIGSTOP) fails operations after the timeout; they pass once it answers",
    () =>
      withStore((store, server) =>
        Effect.gen(function*() {
          yield* store.set("k", "v")
          const hung = yield* Effect.scoped(Effect.gen(function*() {
            yield* server.freeze
            return yield* timed(store.get("k"))
          }))
          assert(hung.result._tag === "Failure")
          assert.strictEqual(hung.result.failure.operation, "get")
          assert.isAtLeast(hung.millis, 250)
          assert.isBelow(hung.millis, 2_000)
          const back = yield* eventually(store.get("k"))
          assert.deepStrictEqual(back, Option.some("v"))
        }), { timeout: "300 millis" }),
    10_000
  )

  it.live("the password in a URL never reaches an error message", () =>
    Effect.gen(function*() {
      const port = yield* RedisServer.freePort
      const error = yield* Effect.flip(
        Effect.provide(
          theStore,
          RedisStore.layer({ url: `redis://user:hunter2@127.0.0.1:${port}`, password: Redacted.make("also-secret") })
        )
      )
      assert.notInclude(error.message, "hunter2")
      assert.notInclude(error.message, "also-secret")
    }), 10_000)

  it.live(
    "the harness fails (never skips) without redis-server, saying how to install it",
    () =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(RedisServer.make({ binary: "/nonexistent/redis-server" }))
        assert.include(error.message, "/nonexistent/redis-server not found")
        assert.include(error.message, "apt-get install -y redis-server")
      }).pipe(Effect.scoped),
    10_000
  )

  it.live("the harness keeps data across a restart with persistence", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.make({ persistence: true })
      yield* Effect.gen(function*() {
        const store = yield* RedisStore.RedisStore
        yield* store.set("kept", "yes")
        yield* server.restart
        assert.deepStrictEqual(yield* eventually(store.get("kept")), Option.some("yes"))
      }).pipe(Effect.provide(RedisStore.layer({ url: server.url })))
    }).pipe(Effect.scoped), 10_000)
})
