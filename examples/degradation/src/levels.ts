import { CircuitBreaker, CircuitBreakerRegistry, Degradation } from "@effect-resilience/core"
import { Effect, Layer } from "effect"

// The agent service's breakers, and its degradation table as data: validated when the layer is built.
const breakers = ["claude_api", "telegram_api", "exa_api", "tavily_api", "firebase", "qdrant"]

const DegradationLive = Degradation.layer({
  normal: "Full functionality",
  rules: [
    {
      level: 1,
      breakers: ["exa_api", "tavily_api"],
      when: "all",
      description: "Search degraded: cached or unavailable"
    },
    { level: 2, breakers: ["qdrant"], description: "Memory degraded: keyword routing, no vector search" },
    { level: 3, breakers: ["firebase"], description: "State degraded: L1 cache only, no persistence" },
    { level: 4, breakers: ["claude_api"], description: "Critical: error message, log for retry" }
  ]
}).pipe(
  Layer.provideMerge(Layer.effectDiscard(Effect.forEach(breakers, (name) => CircuitBreaker.make({ name })))),
  Layer.provideMerge(CircuitBreakerRegistry.layer)
)

// What a /health endpoint returns.
const health = Effect.gen(function*() {
  const degradation = yield* Degradation.Degradation
  const { description, down, level } = yield* degradation.status
  return { status: level === 0 ? "healthy" : "degraded", level, description, down }
})

export const program = Effect.gen(function*() {
  yield* CircuitBreakerRegistry.forceOpen("exa_api")
  const oneSearchProvider = yield* health // Tavily still answers: level 0
  yield* CircuitBreakerRegistry.forceOpen("tavily_api")
  const noSearch = yield* health
  yield* CircuitBreakerRegistry.forceOpen("qdrant")
  const noMemory = yield* health
  return [oneSearchProvider, noSearch, noMemory].map((h) => `${h.level} ${h.status}: ${h.description}`)
}).pipe(Effect.provide(DegradationLive))

// Effect.runPromise(program).then(console.log)
// [
//   "0 healthy: Full functionality",
//   "1 degraded: Search degraded: cached or unavailable",
//   "2 degraded: Memory degraded: keyword routing, no vector search"
// ]
