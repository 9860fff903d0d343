import { RateLimiter } from "@effect-resilience/core"
import { Clock, Duration, Effect } from "effect"

// A partner API that allows 3 requests per second.
const fetchQuote = (_symbol: string) => Effect.succeed("42.00")

export const program = Effect.gen(function*() {
  // Requests from users fail fast over the limit, and say when to come back.
  const live = yield* RateLimiter.make({ name: "quotes", limit: 3, window: "1 second" })
  const quote = (symbol: string) =>
    fetchQuote(symbol).pipe(
      live.protect,
      // Every rejection is a `RateLimiterError`; its reason says which: over the limit, or the store is down.
      Effect.catchReason("RateLimiterError", "RateLimited", (e) =>
        Effect.succeed(`busy, retry in ${Duration.format(e.retryAfter)}`))
    )
  const answers = yield* Effect.forEach(["AAPL", "MSFT", "GOOG", "AMZN"], quote)

  // A nightly sync waits for its turn instead: of 9 requests, 3 go at once and the rest over the next 2 seconds.
  const sync = yield* RateLimiter.make({ name: "quotes-sync", limit: 3, window: "1 second", onExceeded: "delay" })
  const start = yield* Clock.currentTimeMillis
  yield* Effect.forEach(["A", "B", "C", "D", "E", "F", "G", "H", "I"], (s) => fetchQuote(s).pipe(sync.protect))
  const syncTook = Duration.format(Duration.millis((yield* Clock.currentTimeMillis) - start))

  return { answers, syncTook }
}).pipe(
  Effect.scoped,
  // Budgets held in this process; Effect's `RateLimiter.layerStoreRedis` shares them between instances.
  Effect.provide(RateLimiter.layerStoreMemory)
)

// Effect.runPromise(program).then(console.log) // { answers: ["42.00", "42.00", "42.00", "busy, retry in 1s"], syncTook: "2s" }
