import { Bulkhead, CircuitBreaker, Policy, Retry, Timeout } from "@effect-resilience/core"
import { Data, Effect, Ref } from "effect"

class SearchError extends Data.TaggedError("SearchError")<{ readonly status: number }> {}

export const program = Effect.gen(function*() {
  // A search API that hangs once, answers 503 once, then works.
  const calls = yield* Ref.make(0)
  const searchApi = (query: string) =>
    Effect.flatMap(Ref.updateAndGet(calls, (n) => n + 1), (n) =>
      n === 1
        ? Effect.never
        : n === 2
        ? Effect.fail(new SearchError({ status: 503 }))
        : Effect.succeed([`${query}: 42 results`]))

  // Each part in its slot; `protect` nests them breaker > retry > timeout > bulkhead, whatever the order here.
  const search = yield* Policy.make({
    name: "search",
    bulkhead: yield* Bulkhead.make({ name: "search", maxConcurrent: 10 }),
    timeout: yield* Timeout.make({ name: "search", duration: "2 seconds" }),
    retry: yield* Retry.make({
      name: "search",
      schedule: Retry.exponential({ base: "100 millis", times: 3 }),
      // Retry server errors and timeouts, never a 4xx.
      while: (error) => !(error instanceof SearchError && error.status < 500)
    }),
    circuitBreaker: yield* CircuitBreaker.make({ name: "search" })
  })

  // The fallback goes outside `protect`: it answers only when everything inside has given up.
  const results = yield* searchApi("effect").pipe(
    search.protect,
    Policy.withFallback(() => Effect.succeed(["(cached) effect"]))
  )
  // Each part's snapshot, typed by its slot.
  const { stages } = yield* search.snapshot
  const [breaker] = stages.circuitBreaker
  return `${results[0]} after ${yield* Ref.get(calls)} attempts; the breaker saw ${breaker.successCount} success`
}).pipe(Effect.scoped)

// Effect.runPromise(program).then(console.log) // "effect: 42 results after 3 attempts; the breaker saw 1 success"
