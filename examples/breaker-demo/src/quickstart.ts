import { CircuitBreaker } from "@effect-resilience/core"
import { Data, Effect } from "effect"

class SearchDown extends Data.TaggedError("SearchDown") {}

// A dependency that is down.
const search = (_query: string): Effect.Effect<ReadonlyArray<string>, SearchDown> => Effect.fail(new SearchDown())

export const program = Effect.gen(function*() {
  const breaker = yield* CircuitBreaker.make({
    name: "search",
    trip: CircuitBreaker.consecutive(3),
    openDuration: "30 seconds"
  })
  const guardedSearch = (query: string) =>
    search(query).pipe(
      breaker.protect,
      // While the circuit rejects calls (open, half-open with its probes busy, forced open), the call is not
      // made: answer from elsewhere at once.
      Effect.catchTag("CircuitBreakerError", () => Effect.succeed(["(cached) effect resilience"])),
      Effect.catchTag("SearchDown", () => Effect.succeed([]))
    )
  for (let i = 0; i < 5; i++) yield* guardedSearch("effect")
  const snapshot = yield* breaker.snapshot
  return `${snapshot.state}: ${snapshot.failureCount} failures, ${snapshot.rejectedCount} rejected`
}).pipe(Effect.scoped)

// Effect.runPromise(program).then(console.log) // "Open: 3 failures, 2 rejected"
