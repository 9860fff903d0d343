import { CircuitBreaker } from "@effect-resilience/core"
import { RedisFleet, RedisStore } from "@effect-resilience/redis"
import { Data, Effect, Layer } from "effect"

class LlmDown extends Data.TaggedError("LlmDown") {}

// What every instance provides: its place in the fleet, on the Redis at REDIS_URL.
export const Fleet = RedisFleet.layer().pipe(Layer.provideMerge(RedisStore.layerConfig()))

// Each instance trips on its own; "llm" opens for the whole fleet once two instances have tripped within a minute,
// so one instance with a broken network cannot cut everybody off.
export const llmBreaker = CircuitBreaker.make({
  name: "llm",
  trip: CircuitBreaker.consecutive(3),
  openDuration: "30 seconds",
  fleet: { counting: "quorum", quorum: { instances: 2, window: "1 minute" } }
})

export const program = Effect.gen(function*() {
  const llm = yield* llmBreaker
  const fleet = yield* RedisFleet.RedisFleet
  const complete = Effect.fail(new LlmDown()).pipe(llm.protect)
  yield* Effect.ignore(complete).pipe(Effect.repeat({ times: 2 }))
  return `${fleet.instance}: llm is ${yield* llm.state}` // "<instance>: llm is Open"
}).pipe(Effect.scoped)
