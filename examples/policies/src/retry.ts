import { Retry } from "@effect-resilience/core"
import { Data, Duration, Effect } from "effect"

class HttpError extends Data.TaggedError("HttpError")<{
  readonly status: number
  /** From a Retry-After header: the policy waits at least this long before the next attempt. */
  readonly retryAfter?: Duration.Duration
}> {}

// An inventory service that is overloaded for two requests (a 503, then a 429 asking for a second), then answers.
const inventoryService = () => {
  const overloaded = [new HttpError({ status: 503 }), new HttpError({ status: 429, retryAfter: Duration.seconds(1) })]
  let requests = 0
  return (_sku: string) =>
    Effect.suspend(() => requests < overloaded.length ? Effect.fail(overloaded[requests++]) : Effect.succeed(42))
}

export const program = Effect.gen(function*() {
  const getStock = inventoryService()
  // One budget for every caller of the service: retries stay within 20% of calls (plus 10 a second).
  const budget = yield* Retry.budget({ ratio: 0.2, minPerSecond: 10 })
  const retry = yield* Retry.make({
    name: "inventory",
    // Up to 4 retries after 100ms, 200ms, 400ms, 800ms, each jittered anywhere below that.
    schedule: Retry.exponential({ base: "100 millis", cap: "2 seconds", times: 4 }).pipe(Retry.fullJitter),
    // 503 and 429 may go away by waiting; a 404 will not.
    while: (error) => error instanceof HttpError && (error.status === 503 || error.status === 429),
    maxRetryAfter: "5 seconds",
    budget
  })

  // Two retries, the second one a second later, as the 429 asked.
  const stock = yield* getStock("sku-1").pipe(retry.protect)
  // Not retried: the 404 comes back at once.
  const missing = yield* Effect.fail(new HttpError({ status: 404 })).pipe(
    retry.protect,
    Effect.catchTag("HttpError", (e) => Effect.succeed(`HTTP ${e.status}`))
  )

  const { giveUps, retries } = yield* retry.snapshot
  return { stock, missing, retries, notRetried: giveUps.NotRetryable }
}).pipe(Effect.scoped)

// Effect.runPromise(program).then(console.log) // { stock: 42, missing: "HTTP 404", retries: 2, notRetried: 1 }
