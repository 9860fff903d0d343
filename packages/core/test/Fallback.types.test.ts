import { describe, expectTypeOf, it } from "@effect/vitest"
import { Context, Data, Effect, ExecutionPlan, Layer } from "effect"
import * as CircuitBreaker from "../src/CircuitBreaker.ts"
import * as Fallback from "../src/Fallback.ts"
import * as Policy from "../src/Policy.ts"
import * as Timeout from "../src/Timeout.ts"

class ExaError extends Data.TaggedError("ExaError") {}
class TavilyError extends Data.TaggedError("TavilyError") {}
class CacheMiss extends Data.TaggedError("CacheMiss") {}
class Http extends Context.Service<Http, { readonly get: (url: string) => Effect.Effect<string> }>()("test/Http") {}

const exa = Fallback.step(
  "exa",
  (query: string) => query.length > 0 ? Effect.succeed("exa") : Effect.fail(new ExaError())
)
const tavily = Fallback.step(
  "tavily",
  (_: string) => Effect.fail(new TavilyError()) as Effect.Effect<string, TavilyError, Http>
)
const cache = Fallback.step("cache", (_: string) => Effect.fail(new CacheMiss()) as Effect.Effect<number, CacheMiss>)
const unavailable = Fallback.succeed("unavailable", "Search unavailable" as const)

describe("Fallback types", () => {
  it("the error type is the last step's, and narrows as steps are added", () => {
    type Of<Steps extends ReadonlyArray<Fallback.Any>> = Fallback.Failure<Steps>
    expectTypeOf<Of<[typeof exa]>>().toEqualTypeOf<ExaError>()
    expectTypeOf<Of<[typeof exa, typeof tavily]>>().toEqualTypeOf<TavilyError>()
    expectTypeOf<Of<[typeof exa, typeof tavily, typeof cache]>>().toEqualTypeOf<CacheMiss>()
    expectTypeOf<Of<[typeof exa, typeof tavily, typeof cache, typeof unavailable]>>().toEqualTypeOf<never>()
  })

  it.effect("a chain made with a total fallback last cannot fail; its success and services are the steps'", () =>
    Effect.gen(function*() {
      const search = yield* Fallback.make({ name: "search", steps: [exa, tavily, cache, unavailable] })
      expectTypeOf(search.run("q")).toEqualTypeOf<
        Effect.Effect<Fallback.Served<string | number>, never, Http>
      >()
      const partial = yield* Fallback.make({ name: "partial", steps: [exa, tavily] })
      expectTypeOf(partial.run("q")).toEqualTypeOf<Effect.Effect<Fallback.Served<string>, TavilyError, Http>>()
    }).pipe(Effect.scoped))

  it.effect("a step written inline in make keeps its own types (the steps' constraint is no contextual type)", () =>
    Effect.gen(function*() {
      const plan = ExecutionPlan.make({ provide: Layer.succeed(Http, { get: (url) => Effect.succeed(url) }) })
      const inline = yield* Fallback.make({
        name: "inline",
        steps: [
          Fallback.step("http", (url: string) => Http.use((http) => http.get(url)).pipe(Effect.withExecutionPlan(plan)))
        ]
      })
      expectTypeOf(inline.run("u")).toEqualTypeOf<Effect.Effect<Fallback.Served<string>, never, never>>()
    }).pipe(Effect.scoped))

  it.effect("the input is what every step accepts; steps without one run with run()", () =>
    Effect.gen(function*() {
      const search = yield* Fallback.make({ name: "search", steps: [exa, unavailable] })
      expectTypeOf(search.run).parameters.toEqualTypeOf<[input: string]>()
      // @ts-expect-error: the exa step needs a query
      search.run()
      const canned = yield* Fallback.make({ name: "canned", steps: [unavailable] })
      expectTypeOf(canned.run()).toEqualTypeOf<Effect.Effect<Fallback.Served<"Search unavailable">, never, never>>()
    }).pipe(Effect.scoped))

  it.effect("a guard adds its rejections to its own step, which reach the chain only from the last step", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ name: "tavily_api" })
      const guarded = tavily.pipe(Fallback.withBreaker(breaker))
      expectTypeOf(guarded).toEqualTypeOf<
        Fallback.Step<string, string, TavilyError | CircuitBreaker.CircuitBreakerError, Http>
      >()
      const last = yield* Fallback.make({ name: "last", steps: [exa, guarded] })
      expectTypeOf(last.run("q")).toEqualTypeOf<
        Effect.Effect<Fallback.Served<string>, TavilyError | CircuitBreaker.CircuitBreakerError, Http>
      >()
      const middle = yield* Fallback.make({ name: "middle", steps: [guarded, cache] })
      expectTypeOf(middle.run("q")).toEqualTypeOf<Effect.Effect<Fallback.Served<string | number>, CacheMiss, Http>>()

      const policy = yield* Policy.make({
        name: "exa",
        timeout: yield* Timeout.make({ name: "exa", duration: "1 second" })
      })
      expectTypeOf(Fallback.withPolicy(exa, policy)).toEqualTypeOf<
        Fallback.Step<string, string, ExaError | Timeout.TimeoutError>
      >()
    }).pipe(Effect.scoped))

  it("strategies keep the step's types; a key function must take the step's input", () => {
    expectTypeOf(exa.pipe(Fallback.staleOnError({ maxAge: "1 hour" }))).toEqualTypeOf<typeof exa>()
    expectTypeOf(exa.pipe(Fallback.staleOnError({ maxAge: "1 hour", key: (query: string) => query.toLowerCase() })))
      .toEqualTypeOf<typeof exa>()
    // @ts-expect-error: the exa step takes a string, not a number
    exa.pipe(Fallback.cacheFirst({ ttl: "1 minute", maxStale: "1 hour", key: (id: number) => id.toFixed() }))
    expectTypeOf(Fallback.cacheFirst(cache, { ttl: "1 minute", maxStale: "1 hour", key: (query) => query }))
      .toEqualTypeOf<typeof cache>()
  })
})
