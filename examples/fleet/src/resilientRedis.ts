import { FallbackStore } from "@effect-resilience/core"
import { RedisStore, ResilientRedis } from "@effect-resilience/redis"
import { NodeServices } from "@effect/platform-node"
import { Effect, Layer } from "effect"

// On the Redis at `url`, with the fallback (and its journal) under `directory`.
export const layer = (url: string, directory: string) =>
  ResilientRedis.layer({ pingInterval: "500 millis", failureThreshold: 3, openDuration: "1 second" }).pipe(
    // lazy: the program starts (and writes go to the fallback) while Redis is down.
    Layer.provide(RedisStore.layer({ url, lazy: true })),
    // No maxEntries/maxBytes here: eviction could drop journaled writes.
    Layer.provide(FallbackStore.layer({ directory })),
    Layer.provide(NodeServices.layer)
  )

export const Live = layer("redis://127.0.0.1:6379", ".data/redis-fallback")

export const rememberSession = Effect.gen(function*() {
  const cache = yield* ResilientRedis.ResilientRedis
  yield* cache.set("session:42", "alice", { ttl: "1 hour" }) // acknowledged even while Redis is down
  const session = yield* cache.get("session:42") // Option.some("alice")
  return { session, health: yield* cache.health, stats: yield* cache.snapshot }
})

export const program = rememberSession.pipe(Effect.provide(Live))
