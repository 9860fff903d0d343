/**
 * @since 0.1.0
 */

/**
 * A key-value, counter and pub/sub store on Redis (prefixed keys, atomic increments with TTL, Lua scripts, a typed
 * `RedisStoreError`), on `effect/persistence`'s `Redis` with `@effect/platform-node`'s `NodeRedis`.
 *
 * @example
 * ```ts
 * import { RedisStore } from "@effect-resilience/redis"
 * import { Effect } from "effect"
 *
 * const program = Effect.gen(function*() {
 *   const store = yield* RedisStore.RedisStore
 *   return yield* store.increment("calls", 1, { ttl: "1 minute" })
 * }).pipe(Effect.provide(RedisStore.layer({ url: "redis://127.0.0.1:6379" })))
 * ```
 *
 * @since 0.1.0
 */
export * as RedisStore from "./RedisStore.ts"

/**
 * A Redis health check for `HealthMonitor`: `PING` with its latency and a typed `RedisHealthCheckFailed`.
 *
 * @example
 * ```ts
 * import { HealthMonitor } from "@effect-resilience/core"
 * import { RedisHealth, RedisStore } from "@effect-resilience/redis"
 * import { Layer } from "effect"
 *
 * const Monitoring = RedisHealth.layer({ interval: "10 seconds", timeout: "2 seconds" }).pipe(
 *   Layer.provideMerge(HealthMonitor.layer()),
 *   Layer.provide(RedisStore.layer({ url: "redis://127.0.0.1:6379" }))
 * )
 * ```
 *
 * @since 0.1.0
 */
export * as RedisHealth from "./RedisHealth.ts"

/**
 * Breaker state shared across instances on Redis: pub/sub propagation, persisted open-until, fleet-wide manual
 * controls, leased half-open probes, and `local`, `global` and `quorum` counting.
 *
 * @example
 * ```ts
 * import { CircuitBreaker } from "@effect-resilience/core"
 * import { RedisFleet, RedisStore } from "@effect-resilience/redis"
 * import { Effect, Layer } from "effect"
 *
 * const Fleet = RedisFleet.layer().pipe(Layer.provideMerge(RedisStore.layer({ url: "redis://127.0.0.1:6379" })))
 *
 * const program = CircuitBreaker.make({ name: "search", fleet: { counting: "local" } }).pipe(
 *   Effect.flatMap((breaker) => breaker.protect(Effect.succeed("results"))),
 *   Effect.scoped,
 *   Effect.provide(Fleet)
 * )
 * ```
 *
 * @since 0.1.0
 */
export * as RedisFleet from "./RedisFleet.ts"

/**
 * Redis behind Sentinel: finds the master through the sentinels, follows failovers, and reports each one (from, to,
 * time to recover) as a stream, a last value and metrics; provides `effect/persistence`'s `Redis`.
 *
 * @example
 * ```ts
 * import { RedisSentinel, RedisStore } from "@effect-resilience/redis"
 * import { Layer } from "effect"
 *
 * const Live = RedisStore.layerRedis({ prefix: "orders:" }).pipe(
 *   Layer.provideMerge(RedisSentinel.layer({ masterName: "mymaster", sentinels: [{ host: "10.0.0.1", port: 26379 }] }))
 * )
 * ```
 *
 * @since 0.1.0
 */
export * as RedisSentinel from "./RedisSentinel.ts"

/**
 * A Redis key-value store that keeps answering while Redis is down: a breaker around Redis, a `FallbackStore` for
 * reads and writes during the outage, and a journal of those writes replayed to Redis in order when it is back.
 *
 * @example
 * ```ts
 * import { FallbackStore } from "@effect-resilience/core"
 * import { ResilientRedis, RedisStore } from "@effect-resilience/redis"
 * import { Layer } from "effect"
 *
 * const Live = ResilientRedis.layer({ pingInterval: "1 second" }).pipe(
 *   Layer.provide(RedisStore.layer({ url: "redis://127.0.0.1:6379", lazy: true })),
 *   Layer.provide(FallbackStore.layerMemory())
 * )
 * ```
 *
 * @since 0.1.0
 */
export * as ResilientRedis from "./ResilientRedis.ts"

/**
 * A journal for `DeferredDelivery` on Redis: the queue's entries in one hash, so that acknowledged messages outlive
 * the instance and its disk.
 *
 * @example
 * ```ts
 * import { RedisQueueStore, RedisStore } from "@effect-resilience/redis"
 * import { Effect } from "effect"
 *
 * const journal = RedisQueueStore.make({ name: "outbox" }).pipe(
 *   Effect.provide(RedisStore.layer({ url: "redis://127.0.0.1:6379" }))
 * )
 * ```
 *
 * @since 0.2.0
 */
export * as RedisQueueStore from "./RedisQueueStore.ts"
