import { CircuitBreaker, Fallback } from "@effect-resilience/core"
import { Data, Duration, Effect } from "effect"

class SearchError extends Data.TaggedError("SearchError")<{ readonly provider: string }> {}

// Exa is down today. Tavily answers the first query, then goes down too.
const exa = (_query: string) => Effect.fail(new SearchError({ provider: "exa" }))
const makeTavily = () => {
  let calls = 0
  return (query: string) =>
    Effect.suspend(() =>
      ++calls === 1
        ? Effect.succeed(`12 results for "${query}"`)
        : Effect.fail(new SearchError({ provider: "tavily" }))
    )
}

const describe = (served: Fallback.Served<string>) =>
  `${served.servedBy}${served.degraded ? " (degraded)" : ""}, ${Duration.toMinutes(served.age)} min old, after [${
    served.passed.map((passed) => `${passed.step}: ${passed.reason}`).join(", ")
  }]`

export const program = Effect.gen(function*() {
  const tavily = makeTavily()
  const exaBreaker = yield* CircuitBreaker.make({
    name: "exa_api",
    trip: CircuitBreaker.consecutive(1),
    openDuration: "1 hour"
  })

  const search = yield* Fallback.make({
    name: "web_search",
    steps: [
      // While Exa's breaker is open, the step is skipped: no call, no wait.
      Fallback.step("exa", exa).pipe(Fallback.withBreaker(exaBreaker)),
      // When Tavily fails, its last good answer for the query stands in for up to an hour.
      Fallback.step("tavily", tavily).pipe(Fallback.staleOnError({ maxAge: "1 hour" })),
      Fallback.succeed("unavailable", "Web search temporarily unavailable. Please try again.")
    ]
  })

  // search.run: (query: string) => Effect<Served<string>, never>. The last step cannot fail, so the chain cannot.
  const first = yield* search.run("effect")
  yield* Effect.sleep("10 minutes")
  const second = yield* search.run("effect")
  const third = yield* search.run("resilience")

  const { steps } = yield* search.snapshot
  return [
    describe(first),
    describe(second),
    describe(third),
    `served by: ${steps.map((step) => `${step.name} ${step.served}`).join(", ")}`
  ]
}).pipe(Effect.scoped)

// Effect.runPromise(program).then(console.log)
// [
//   "tavily, 0 min old, after [exa: Failed]",
//   "tavily (degraded), 10 min old, after [exa: BreakerOpen]",
//   "unavailable (degraded), 0 min old, after [exa: BreakerOpen, tavily: Failed]",
//   "served by: exa 0, tavily 2, unavailable 1"
// ]
