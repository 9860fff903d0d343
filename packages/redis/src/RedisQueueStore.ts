/**
 * A `DeferredDelivery.Journal` on Redis: the queue's entries in one Redis hash (`HSET`/`HGET`/`HDEL`/`HKEYS`, each one
 * atomic command), so that messages a queue acknowledged survive the loss of the instance and its disk, not only a
 * crash of the process.
 *
 * **Details**
 *
 * - The hash is `<prefix><name>` (the `RedisStore`'s prefix; `name` defaults to `deferred-delivery`). Several queues
 *   can share it: the queue's name prefixes its entries.
 * - A `set` is acknowledged once Redis has it: how long it lasts after that is Redis's persistence (AOF with
 *   `appendfsync always` for no loss at all, `everysec` for at most a second of it on a Redis crash).
 * - Failures are `RedisStoreError`s naming the journal's operation (`set`, `get`, `remove`, `keys`), the entry as
 *   `key` and the hash in the message, which the queue turns into `DeferredDeliveryError` (`Store`): a message that
 *   could not be written is refused, never acknowledged.
 *
 * **Gotchas**
 *
 * - One process per queue: a queue mirrors its journal in memory and drains it alone. Give each instance's queue a
 *   name of its own (say `telegram-${hostname}`) or its own hash.
 *
 * **Example** (Telegram replies journaled on Redis)
 *
 * ```ts
 * import { CircuitBreaker, DeferredDelivery } from "@effect-resilience/core"
 * import { RedisQueueStore, RedisStore } from "@effect-resilience/redis"
 * import { Effect, Schema } from "effect"
 *
 * const program = Effect.gen(function*() {
 *   const replies = yield* DeferredDelivery.make({
 *     name: "telegram",
 *     schema: Schema.String,
 *     sink: (text) => Effect.log(`sent ${text}`),
 *     breaker: yield* CircuitBreaker.make({ name: "telegram" }),
 *     store: yield* RedisQueueStore.make()
 *   })
 *   return yield* replies.send("on it", { key: "update-1001" })
 * }).pipe(Effect.scoped, Effect.provide(RedisStore.layer({ url: "redis://127.0.0.1:6379" })))
 * ```
 *
 * @since 0.2.0
 */
import type * as DeferredDelivery from "@effect-resilience/core/DeferredDelivery"
import { decode, type PolicyConfigError } from "@effect-resilience/core/PolicyConfig"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Redis from "effect/persistence/Redis"
import * as Schema from "effect/Schema"
import * as RedisStore from "./RedisStore.ts"

/**
 * Options of `make`.
 *
 * @example
 * ```ts
 * import type { RedisQueueStore } from "@effect-resilience/redis"
 *
 * const options: RedisQueueStore.Options = { name: "outbox" }
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export interface Options {
  /** The hash's name, after the `RedisStore` prefix. Default: `deferred-delivery`. */
  readonly name?: string | undefined
}

const hset = Redis.script((hash: string, field: string, value: string) => [hash, field, value], {
  numberOfKeys: 1,
  lua: `redis.call("HSET", KEYS[1], ARGV[1], ARGV[2]) return 1`
}).withReturnType<number>()

const hget = Redis.script((hash: string, field: string) => [hash, field], {
  numberOfKeys: 1,
  lua: `return redis.call("HGET", KEYS[1], ARGV[1])`
}).withReturnType<string | null>()

const hdel = Redis.script((hash: string, field: string) => [hash, field], {
  numberOfKeys: 1,
  lua: `return redis.call("HDEL", KEYS[1], ARGV[1])`
}).withReturnType<number>()

const hkeys = Redis.script((hash: string) => [hash], {
  numberOfKeys: 1,
  lua: `return redis.call("HKEYS", KEYS[1])`
}).withReturnType<ReadonlyArray<string>>()

const OptionsSchema = Schema.Struct({ name: Schema.NonEmptyString })

/**
 * Makes a journal on the `RedisStore` in context, for `DeferredDelivery.make`'s `store`. Fails with
 * `PolicyConfigError` for an empty `name`.
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
 * @category constructors
 */
export const make = (
  options: Options = {}
): Effect.Effect<DeferredDelivery.Journal, PolicyConfigError, RedisStore.RedisStore> =>
  Effect.gen(function*() {
    const { name } = yield* decode(OptionsSchema, { name: options.name ?? "deferred-delivery" }, {
      kind: "redis queue store",
      policy: String(options.name)
    })
    const store = yield* RedisStore.RedisStore
    const hash = store.key(name)
    // The store names a script's failure `eval`, with no key: an operator would not know which hash to look at.
    const named = (operation: string, key?: string) => {
      const what = `${operation}${key === undefined ? "" : ` of ${JSON.stringify(key)}`} in hash ${hash}`
      return Effect.mapError((error: RedisStore.RedisStoreError) =>
        new RedisStore.RedisStoreError({
          operation,
          key,
          // "failed: <why>", "timed out after 2s" or "ended interrupted", after the operation.
          message: `Redis queue store ${what} ${error.message.replace(/^Redis eval /, "")}`,
          ...(error.cause === undefined ? {} : { cause: error.cause })
        })
      )
    }
    return {
      keys: named("keys")(store.eval(hkeys)(hash)),
      get: (key) => Effect.map(named("get", key)(store.eval(hget)(hash, key)), Option.fromNullishOr),
      set: (key, value) => Effect.asVoid(named("set", key)(store.eval(hset)(hash, key, value))),
      remove: (key) => named("remove", key)(store.eval(hdel)(hash, key))
    } satisfies DeferredDelivery.Journal
  })
