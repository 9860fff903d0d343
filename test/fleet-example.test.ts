import { Fleet, llmBreaker, program } from "@effect-resilience/example-fleet/fleet"
import * as RedisServer from "@effect-resilience/testing/RedisServer"
import { assert, it } from "@effect/vitest"
import { ConfigProvider, Effect, Layer } from "effect"

// Each run of `instance` is one instance (its own connection and fleet name) on the server at `url`.
const instance = (url: string) =>
  Fleet.pipe(Layer.provide(ConfigProvider.layer(ConfigProvider.fromUnknown({ REDIS_URL: url }))), Layer.fresh)

it.live("the fleet example: one instance alone opens only itself; two open the breaker for the fleet", () =>
  Effect.gen(function*() {
    const server = yield* RedisServer.make()
    const alone = yield* program.pipe(Effect.provide(instance(server.url)))
    assert.match(alone, /: llm is Open$/)
    // A newcomer is not affected by one instance's trip: no quorum yet.
    const newcomer = yield* Effect.flatMap(llmBreaker, (llm) => llm.state).pipe(
      Effect.scoped,
      Effect.provide(instance(server.url))
    )
    assert.strictEqual(newcomer, "Closed")
    // A second instance trips too: two votes within the window open "llm" for the fleet, newcomers included.
    yield* program.pipe(Effect.provide(instance(server.url)))
    const after = yield* Effect.flatMap(llmBreaker, (llm) => llm.state).pipe(
      Effect.scoped,
      Effect.provide(instance(server.url))
    )
    assert.strictEqual(after, "Open")
  }).pipe(Effect.scoped))
