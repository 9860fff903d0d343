/**
 * The starter program: a policy around a flaky call, a breaker keyed by region, the last good answer kept in a
 * `FallbackStore` on disk, a `HealthMonitor` watching Redis, and a lazy Redis connection (the program starts and
 * runs while Redis is down). Runs in real time and stops by itself after about three seconds.
 *
 * Run it: `node src/main.ts` (optional: `REDIS_URL`, default `redis://127.0.0.1:6379`; `DATA_DIR`, default
 * `.data/starter`).
 */
import { CircuitBreaker, FallbackStore, HealthMonitor, Policy, Retry, Timeout } from "@effect-resilience/core"
import { RedisHealth, RedisStore } from "@effect-resilience/redis"
import { NodeRuntime, NodeServices } from "@effect/platform-node"
import { Config, Console, Data, Effect, Layer, Option } from "effect"

class QuoteError extends Data.TaggedError("QuoteError")<{ readonly status: number }> {}

// A quote API that answers, then is down for calls 4 to 12 (503), then answers again.
let quoteCalls = 0
const fetchQuote = (symbol: string) =>
  Effect.suspend(() => {
    quoteCalls++
    return quoteCalls >= 4 && quoteCalls <= 12
      ? Effect.fail(new QuoteError({ status: 503 }))
      : Effect.succeed(`${symbol} ${(100 + quoteCalls / 10).toFixed(2)}`)
  }).pipe(Effect.delay("10 millis"))

// A shipping API per region: "us" is down the whole time, "eu" answers.
const ship = (region: string) =>
  region === "us" ? Effect.fail(new QuoteError({ status: 502 })) : Effect.succeed(`shipped via ${region}`)

const program = Effect.gen(function*() {
  const store = yield* FallbackStore.FallbackStore
  const redis = yield* RedisStore.RedisStore
  const monitor = yield* HealthMonitor.HealthMonitor

  // Timeout per attempt, two retries, and a breaker that opens after 3 failed calls for half a second.
  const quotes = yield* Policy.make({
    name: "quotes",
    timeout: yield* Timeout.make({ name: "quotes", duration: "500 millis" }),
    retry: yield* Retry.make({ name: "quotes", schedule: Retry.exponential({ base: "20 millis", times: 2 }) }),
    circuitBreaker: yield* CircuitBreaker.make({
      name: "quotes",
      trip: CircuitBreaker.consecutive(3),
      openDuration: "500 millis"
    })
  })
  // One circuit per region: "us" opens, "eu" stays closed.
  const shipping = yield* CircuitBreaker.make({ name: "shipping", trip: CircuitBreaker.consecutive(2) })

  // A fresh quote is kept on disk; while the API (or its open breaker) fails, the last good one answers.
  const quote = (symbol: string) =>
    fetchQuote(symbol).pipe(
      quotes.protect,
      Effect.tap((fresh) => store.set(`quote:${symbol}`, fresh, { ttl: "1 hour" })),
      Policy.withFallback((error) =>
        Effect.map(
          store.get(`quote:${symbol}`),
          Option.match({
            onNone: () => `no quote (${error._tag})`,
            onSome: (last) => `${last} (last good, ${error._tag})`
          })
        )
      )
    )

  for (let round = 1; round <= 9; round++) {
    const answer = yield* quote("EFCT")
    // Counted in Redis when it is up; the program carries on when it is not.
    const seen = yield* redis.increment("rounds", 1, { ttl: "1 hour" }).pipe(
      Effect.map((count) => `redis count ${count}`),
      Effect.catchTag("RedisStoreError", () => Effect.succeed("redis unavailable"))
    )
    const shipped = yield* Effect.forEach(["eu", "us"], (region) =>
      ship(region).pipe(
        shipping.protectKey(region),
        Effect.catchTags({
          QuoteError: (error) => Effect.succeed(`${region}: failed (${error.status})`),
          CircuitBreakerError: (error) => Effect.succeed(`${error.key}: rejected (${error.reason._tag})`)
        })
      ))
    yield* Console.log(`round ${round}: ${answer}; ${shipped.join(", ")}; ${seen}`)
    yield* Effect.sleep("250 millis")
  }

  const breaker = yield* quotes.snapshot
  const [quotesBreaker] = breaker.stages.circuitBreaker
  yield* Console.log(
    `quotes breaker: ${quotesBreaker.state}, shipping: eu ${yield* shipping.stateKey("eu")}, us ${yield* shipping
      .stateKey("us")}`
  )
  yield* Console.log(`health: redis ${(yield* monitor.state("redis")).status}, overall ${yield* monitor.status}`)
})

// `lazy`: the layer builds at once and connects in the background, so the program starts while Redis is down.
const RedisLive = Layer.unwrap(
  Effect.map(
    Config.String("REDIS_URL").pipe(Config.withDefault("redis://127.0.0.1:6379")),
    (url) => RedisStore.layer({ url, prefix: "starter:", lazy: true, connectTimeout: "1 second" })
  )
)

const StoreLive = Layer.unwrap(
  Effect.map(
    Config.String("DATA_DIR").pipe(Config.withDefault(".data/starter")),
    (directory) => FallbackStore.layer({ directory: `${directory}/fallback`, name: "starter" })
  )
)

const MainLive = RedisHealth.layer({ interval: "500 millis", timeout: "250 millis" }).pipe(
  Layer.provideMerge(HealthMonitor.layer()),
  Layer.provideMerge(RedisLive),
  Layer.provideMerge(StoreLive),
  Layer.provide(NodeServices.layer)
)

program.pipe(Effect.scoped, Effect.provide(MainLive), NodeRuntime.runMain)
