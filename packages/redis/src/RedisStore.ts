/**
 * A small key-value, counter and pub/sub store on Redis, for state that several instances share: built on
 * `effect/persistence`'s `Redis` service, over a node-redis client of its own (or any `Redis` service, `layerRedis`).
 *
 * **Details**
 *
 * - Every key and channel is prefixed (`"resilience:"` unless set), so that the store shares a Redis with other data.
 *   Scripts run through `eval` get their keys as given: prefix them with `store.key`.
 * - `increment` runs `INCRBY` and `PEXPIRE` in one Lua script, so concurrent callers never lose a count and the key
 *   never lives on without its TTL. The TTL is set when the key has none (the first increment of a window), so a
 *   counter expires `ttl` after it was created, not after its last increment.
 * - Every failure is a `RedisStoreError` naming the operation and the (unprefixed) key or channel.
 * - `layer` and `layerConfig` connect their own client with `disableOfflineQueue` and a command timeout (2 seconds
 *   unless set): while Redis is unreachable, operations fail at once instead of waiting in node-redis' offline queue,
 *   and a command on a server that stopped answering fails after the timeout (so does one sent through the `Redis`
 *   service it provides, except on a connection reserved for blocking commands). The client reconnects in the
 *   background (backoff up to about 2 seconds), so operations succeed again once Redis is back.
 * - `layer` connects while it builds and fails with `RedisStoreError` when Redis is unreachable, or has not answered
 *   within `connectTimeout` (a stopped server that still accepts connections included); with `lazy: true`
 *   (`REDIS_LAZY=true` for `layerConfig`) it builds at once and connects in the background, so a process can start
 *   while Redis is down. Operations sent during the first connect wait for it (at most `timeout` or `connectTimeout`,
 *   the shorter), so a program that writes as it starts reaches a Redis that is up; after that, while Redis is down,
 *   they fail at once with `RedisStoreError`.
 * - `layerSentinel` finds the master through Redis Sentinel and follows failovers (see `RedisSentinel`); `lazy`
 *   works there too.
 * - An outage is logged on one line when the connection drops (a warning), a one-line reminder each minute while it
 *   lasts, and one line when it is back with how long it lasted: not a line per reconnect attempt.
 * - A `connect` failure names the address (never the URL, which may carry a password) and why: refused, timed out
 *   with the server silent (stopped or overloaded), or a server that does not speak Redis on that port.
 *
 * **Gotchas**
 *
 * - `subscribe` returns once the subscription is active, so a message published after it returns is delivered. A
 *   subscriber reconnects after Redis restarts, but messages published while it was away are lost (pub/sub):
 *   `onResubscribed` runs once it is back, to catch up (over the store's own connections, not `layerRedis`).
 * - The connection URL may carry a password; it is never put in errors or logs. Prefer `REDIS_PASSWORD` (redacted).
 *
 * **Example** (A shared counter)
 *
 * ```ts
 * import { RedisStore } from "@effect-resilience/redis"
 * import { Effect } from "effect"
 *
 * const program = Effect.gen(function*() {
 *   const store = yield* RedisStore.RedisStore
 *   const calls = yield* store.increment("calls:orders", 1, { ttl: "1 minute" })
 *   return calls
 * }).pipe(Effect.provide(RedisStore.layer({ url: "redis://127.0.0.1:6379", prefix: "app:" })))
 * ```
 *
 * @since 0.1.0
 */
import { decode, DurationInput, type PolicyConfigError, withVariables } from "@effect-resilience/core/PolicyConfig"
import * as Config from "effect/Config"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redis from "effect/persistence/Redis"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as client from "./internal/client.ts"
import { describeCause } from "./internal/describe.ts"
import { failIfInterrupted } from "./internal/interrupted.ts"
import {
  brokenTextIssue,
  hasLoneSurrogate,
  Lazy,
  RedactedString,
  satisfying,
  sentinelFields,
  ttlIssue,
  ttlMillis
} from "./internal/options.ts"
import * as RedisSentinel from "./RedisSentinel.ts"

// -----------------------------------------------------------------------------
// errors
// -----------------------------------------------------------------------------

/**
 * A store operation failed: Redis was unreachable, did not answer in time, or refused the command; or the command
 * ended interrupted on its own (a fiber of the client's interrupted elsewhere; a caller that is interrupted stays
 * interrupted).
 *
 * @example
 * ```ts
 * import { RedisStore } from "@effect-resilience/redis"
 *
 * const error = new RedisStore.RedisStoreError({
 *   operation: "get",
 *   key: "orders",
 *   message: "The client is offline"
 * })
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export class RedisStoreError extends Schema.TaggedError<RedisStoreError>()("RedisStoreError", {
  /** `get`, `set`, `remove`, `increment`, `publish`, `subscribe`, `eval`, `connect`; `keys` (`RedisQueueStore`). */
  operation: Schema.String,
  /** The key or channel, without the prefix. */
  key: Schema.optional(Schema.String),
  message: Schema.String,
  cause: Schema.optional(Schema.Defect())
}) {}

// -----------------------------------------------------------------------------
// models
// -----------------------------------------------------------------------------

/**
 * Options for `make` and `layerRedis`.
 *
 * @example
 * ```ts
 * import type { RedisStore } from "@effect-resilience/redis"
 *
 * const options: RedisStore.Options = { prefix: "orders:", timeout: "1 second" }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** Put in front of every key and channel. Default: `"resilience:"`. */
  readonly prefix?: string | undefined
  /** The longest an operation may take before it fails with `RedisStoreError`. Default: 2 seconds. */
  readonly timeout?: Duration.Input | undefined
}

/**
 * Options for `layer`: the store's, and how to connect.
 *
 * @example
 * ```ts
 * import type { RedisStore } from "@effect-resilience/redis"
 *
 * const options: RedisStore.LayerOptions = { url: "redis://cache.internal:6379/2", connectTimeout: "1 second" }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface LayerOptions extends Options {
  /**
   * `redis://` or `rediss://` URL, which may carry user and password (percent-encoded) and a database number as its
   * path (`redis://host:6379/2`); any other path is refused with `PolicyConfigError` (use `prefix` for a namespace).
   * Default: `redis://127.0.0.1:6379`.
   */
  readonly url?: string | undefined
  /** The password, when it is not in the URL. */
  readonly password?: Redacted.Redacted<string> | undefined
  /** How long connecting may take. Default: 5 seconds. */
  readonly connectTimeout?: Duration.Input | undefined
  /**
   * Build the layer at once, even while Redis is down: the client connects in the background and keeps retrying
   * (backoff up to about 2 seconds). Operations sent during the first connect wait for it (at most `timeout` or
   * `connectTimeout`, the shorter); after that, until the client is connected, every operation fails at once with
   * `RedisStoreError`. Default: `false`, the layer connects first and fails with `RedisStoreError` when Redis is
   * unreachable.
   */
  readonly lazy?: boolean | undefined
}

/**
 * The store: strings by key, atomic counters, pub/sub and Lua scripts, all under the store's prefix. A key, value,
 * channel or message holding a lone surrogate (half of a character such as an emoji) fails with `RedisStoreError`,
 * unsent: Redis would store it as U+FFFD, so that two keys would be one.
 *
 * @example
 * ```ts
 * import type { RedisStore } from "@effect-resilience/redis"
 * import { Effect } from "effect"
 *
 * const remember = (store: RedisStore.RedisStore) =>
 *   Effect.andThen(store.set("last-deploy", "v42", { ttl: "1 hour" }), store.get("last-deploy"))
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface RedisStore {
  /** The prefix in front of every key and channel. */
  readonly prefix: string
  /** The full Redis key for `key`: the prefix, then the key (for scripts run through `eval`). */
  readonly key: (key: string) => string
  readonly get: (key: string) => Effect.Effect<Option.Option<string>, RedisStoreError>
  /** Writes the value; a `ttl` that is not a positive duration fails (nothing is written). */
  readonly set: (
    key: string,
    value: string,
    options?: { readonly ttl?: Duration.Input | undefined }
  ) => Effect.Effect<void, RedisStoreError>
  /** Deletes the key; `true` when it was there. */
  readonly remove: (key: string) => Effect.Effect<boolean, RedisStoreError>
  /**
   * Adds `by` (an integer, default 1) atomically and returns the new value; `ttl` is set when the key has none yet
   * (one that is not a positive duration fails, as `set`'s).
   */
  readonly increment: (
    key: string,
    by?: number,
    options?: { readonly ttl?: Duration.Input | undefined }
  ) => Effect.Effect<number, RedisStoreError>
  /** Publishes on the channel; returns how many subscribers received it. */
  readonly publish: (channel: string, message: string) => Effect.Effect<number, RedisStoreError>
  /**
   * Subscribes for the scope's lifetime; the subscription is active once this returns. `onResubscribed` runs in the
   * stream (between the messages received before and after) each time the subscriber is subscribed again after
   * losing its connection (a restart, a failover): messages published meanwhile were lost, so it is where to catch
   * up. It runs over the store's own connections (`layer`, `layerConfig`, `layerSentinel`); a `Redis` service given
   * to `layerRedis` does not say when it reconnects, so there it never runs.
   */
  readonly subscribe: (
    channel: string,
    options?: { readonly onResubscribed?: Effect.Effect<void> | undefined }
  ) => Effect.Effect<Stream.Stream<string, RedisStoreError>, never, Scope.Scope>
  /** Runs a Lua script (loaded once, then `EVALSHA`). */
  readonly eval: <Config extends { readonly params: ReadonlyArray<unknown>; readonly result: unknown }>(
    script: Redis.Script<Config>
  ) => (...params: Config["params"]) => Effect.Effect<Config["result"], RedisStoreError>
}

/**
 * The `RedisStore` in context.
 *
 * @example
 * ```ts
 * import { RedisStore } from "@effect-resilience/redis"
 * import { Effect } from "effect"
 *
 * const remember = Effect.gen(function*() {
 *   const store = yield* RedisStore.RedisStore
 *   yield* store.set("last-deploy", "v42", { ttl: "1 hour" })
 *   return yield* store.get("last-deploy") // Option.some("v42")
 * })
 * ```
 *
 * @since 0.1.0
 * @category services
 */
export const RedisStore: Context.Service<RedisStore, RedisStore> = Context.Service<RedisStore>(
  "@effect-resilience/redis/RedisStore"
)

// -----------------------------------------------------------------------------
// constructors
// -----------------------------------------------------------------------------

const defaultPrefix = "resilience:"
const defaultTimeout = Duration.seconds(2)
const defaultConnectTimeout = Duration.seconds(5)
const defaultUrl = "redis://127.0.0.1:6379"

const incrementScript = Redis.script(
  (key: string, by: number, ttl: number) => [key, by, ttl],
  {
    numberOfKeys: 1,
    lua: `local value = redis.call("INCRBY", KEYS[1], ARGV[1])
if tonumber(ARGV[2]) > 0 and redis.call("PTTL", KEYS[1]) == -1 then
  redis.call("PEXPIRE", KEYS[1], ARGV[2])
end
return value`
  }
).withReturnType<number>()

const StoreFields = {
  prefix: Schema.optional(Schema.String),
  timeout: Schema.optional(DurationInput({ positive: true }))
}

const StoreOptions = Schema.Struct(StoreFields)

// The URL may carry a password: the message shows its scheme at most, and always says what was given, so that
// `decode` does not append the URL itself.
const RedisUrl = satisfying((url) => {
  if (typeof url !== "string") return `Expected a redis:// or rediss:// URL, got ${url === null ? "null" : typeof url}`
  const parsed = URL.canParse(url) ? new URL(url) : undefined
  if (parsed === undefined) return "Expected a redis:// or rediss:// URL, got an unparsable string"
  if (parsed.protocol !== "redis:" && parsed.protocol !== "rediss:") {
    return `Expected a redis:// or rediss:// URL, got a ${parsed.protocol} URL`
  }
  // node-redis reads the path as the database to SELECT and throws on anything else (a name, or a prefix, given
  // there by mistake); the path never holds the password, so it may be quoted.
  if (!/^\/?$|^\/\d+$/.test(parsed.pathname)) {
    return `Expected a database number after the port (redis://host:6379/0), got the path ${
      JSON.stringify(parsed.pathname)
    }`
  }
  // node-redis decodes the user name and password with `decodeURIComponent`, which throws on a stray `%`.
  if (Option.isNone(percentDecoded(parsed.username)) || Option.isNone(percentDecoded(parsed.password))) {
    return "Expected the user name and password percent-encoded as UTF-8 (%25 for % itself), got a malformed % escape"
  }
  return undefined
})

const percentDecoded = Option.liftThrowable(decodeURIComponent)

const LayerOptionsSchema = Schema.Struct({
  url: Schema.optional(RedisUrl),
  password: Schema.optional(RedactedString),
  connectTimeout: Schema.optional(DurationInput({ positive: true })),
  lazy: Lazy,
  ...StoreFields
})

const decoding = { kind: "Redis store", policy: "RedisStore" }

const badTtl = (operation: string, key: string, ttl: unknown) =>
  new RedisStoreError({ operation, key, message: ttlIssue(ttl) })

const malformed = (operation: string, key: string, what: string) =>
  new RedisStoreError({ operation, key, message: brokenTextIssue(what) })

/**
 * Makes the store on the `Redis` service in context. Invalid options fail with `PolicyConfigError`.
 *
 * @example
 * ```ts
 * import { RedisStore } from "@effect-resilience/redis"
 * import { NodeRedis } from "@effect/platform-node"
 * import { Effect } from "effect"
 *
 * const program = Effect.gen(function*() {
 *   const store = yield* RedisStore.make({ prefix: "orders:" })
 *   yield* store.set("open", "12")
 * }).pipe(Effect.provide(NodeRedis.layer({ url: "redis://127.0.0.1:6379", disableOfflineQueue: true })))
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: Options = {}): Effect.Effect<RedisStore, PolicyConfigError, Redis.Redis> =>
  Effect.gen(function*() {
    yield* decode(StoreOptions, options, decoding)
    const redis = yield* Redis.Redis
    const prefix = options.prefix ?? defaultPrefix
    const timeout = options.timeout ?? defaultTimeout
    const key = (k: string) => prefix + k

    const run = <A>(
      operation: string,
      name: string | undefined,
      self: Effect.Effect<A, Redis.RedisError>
    ): Effect.Effect<A, RedisStoreError> =>
      self.pipe(
        Effect.timeoutOrElse({
          duration: timeout,
          orElse: () =>
            Effect.fail(
              new RedisStoreError({
                operation,
                key: name,
                message: `Redis ${operation} timed out after ${Duration.format(Duration.fromInputUnsafe(timeout))}`
              })
            )
        }),
        Effect.catchTag("RedisError", (error) =>
          Effect.fail(
            new RedisStoreError({
              operation,
              key: name,
              message: `Redis ${operation} failed: ${describeCause(error)}`,
              cause: error
            })
          )),
        (effect) =>
          failIfInterrupted(
            effect,
            () => new RedisStoreError({ operation, key: name, message: `Redis ${operation} ended interrupted` })
          )
      )

    return RedisStore.of({
      prefix,
      key,
      get: (k) =>
        hasLoneSurrogate(k)
          ? Effect.fail(malformed("get", k, "a key"))
          : run("get", k, Effect.map(redis.send<string | null>("GET", key(k)), Option.fromNullishOr)),
      set: (k, value, opts) => {
        const millis = ttlMillis(opts?.ttl)
        if (millis === undefined) return Effect.fail(badTtl("set", k, opts?.ttl))
        if (hasLoneSurrogate(k)) return Effect.fail(malformed("set", k, "a key"))
        if (hasLoneSurrogate(value)) return Effect.fail(malformed("set", k, "a value"))
        const expiry = millis === 0 ? [] : ["PX", String(millis)]
        return run("set", k, Effect.asVoid(redis.send("SET", key(k), value, ...expiry)))
      },
      remove: (k) =>
        hasLoneSurrogate(k)
          ? Effect.fail(malformed("remove", k, "a key"))
          : run("remove", k, Effect.map(redis.send<number>("DEL", key(k)), (n) => n > 0)),
      increment: (k, by = 1, opts) => {
        const millis = ttlMillis(opts?.ttl)
        if (millis === undefined) return Effect.fail(badTtl("increment", k, opts?.ttl))
        if (hasLoneSurrogate(k)) return Effect.fail(malformed("increment", k, "a key"))
        return run("increment", k, Effect.map(redis.eval(incrementScript)(key(k), by, millis), Number))
      },
      publish: (channel, message) => {
        if (hasLoneSurrogate(channel)) return Effect.fail(malformed("publish", channel, "a channel"))
        if (hasLoneSurrogate(message)) return Effect.fail(malformed("publish", channel, "a message"))
        return run("publish", channel, redis.send<number>("PUBLISH", key(channel), message))
      },
      subscribe: (channel, subscribeOptions) => {
        const onResubscribed = subscribeOptions?.onResubscribed
        const signalling = onResubscribed === undefined ? undefined : client.subscribeResubscribing(redis)
        const received = signalling === undefined || onResubscribed === undefined
          ? Effect.map(redis.subscribe(key(channel)), Stream.fromQueue)
          : Effect.map(
            signalling(key(channel)),
            (queue) =>
              Stream.filterEffect(
                Stream.fromQueue(queue),
                (message) => message === client.resubscribed ? Effect.as(onResubscribed, false) : Effect.succeed(true)
              )
          )
        return Effect.map(received, (messages) =>
          messages.pipe(
            Stream.map((message) => message.message),
            Stream.mapError((error) =>
              new RedisStoreError({
                operation: "subscribe",
                key: channel,
                message: `Redis subscribe failed: ${describeCause(error)}`,
                cause: error
              })
            )
          ))
      },
      eval: (script) => (...params) => run("eval", undefined, redis.eval(script)(...params))
    })
  })

// -----------------------------------------------------------------------------
// layers
// -----------------------------------------------------------------------------

/**
 * The store on the `Redis` service in context (say, a `NodeRedis.layer` the application already has).
 *
 * @example
 * ```ts
 * import { RedisStore } from "@effect-resilience/redis"
 * import { NodeRedis } from "@effect/platform-node"
 * import { Layer } from "effect"
 *
 * const Store = RedisStore.layerRedis({ prefix: "orders:" }).pipe(
 *   Layer.provide(NodeRedis.layer({ url: "redis://127.0.0.1:6379", disableOfflineQueue: true }))
 * )
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerRedis = (options: Options = {}): Layer.Layer<RedisStore, PolicyConfigError, Redis.Redis> =>
  Layer.effect(RedisStore, make(options))

// `Layer.catchTag` keeps the services of the layer it recovers with, so a failing one must claim them.
const failLayer = <A, E>(error: E): Layer.Layer<A, E> => Layer.unwrap(Effect.fail(error))

const clientOptions = (options: LayerOptions) => ({
  url: options.url ?? defaultUrl,
  ...(options.password === undefined ? {} : { password: Redacted.value(options.password) }),
  // Fail at once while reconnecting rather than queue behind a server that may not come back.
  disableOfflineQueue: true,
  commandOptions: { timeout: Math.ceil(Duration.toMillis(options.timeout ?? defaultTimeout)) },
  // No `socketTimeout`: on a socket timeout node-redis stops reconnecting for good.
  socket: { connectTimeout: Math.ceil(Duration.toMillis(options.connectTimeout ?? defaultConnectTimeout)) }
})

const connect = (options: LayerOptions): Layer.Layer<Redis.Redis, RedisStoreError> =>
  options.lazy === true
    // `NodeRedis` gives up on the first failed connect; this client keeps retrying, so building never fails.
    ? Layer.effect(
      Redis.Redis,
      client.makeLazy(
        clientOptions(options),
        // As long as a command may take, or connecting, whichever is shorter.
        Duration.min(
          Duration.fromInputUnsafe(options.timeout ?? defaultTimeout),
          Duration.fromInputUnsafe(options.connectTimeout ?? defaultConnectTimeout)
        )
      ).pipe(Effect.mapError((error) => new RedisStoreError({ operation: "connect", message: error.message })))
    )
    : connectNow(options)

// Not `NodeRedis.layer`: its connect waits for the handshake without bound, so a server that accepts connections but
// never answers would hang startup forever.
const connectNow = (options: LayerOptions) =>
  Layer.effect(
    Redis.Redis,
    client.makeEager(
      clientOptions(options),
      Duration.fromInputUnsafe(options.connectTimeout ?? defaultConnectTimeout),
      "RedisStore"
    ).pipe(
      Effect.mapError((error) =>
        new RedisStoreError({ operation: "connect", message: error.message, cause: error.cause })
      )
    )
  )

/**
 * Connects a node-redis client of its own (while it builds, within `connectTimeout`; in the background when `lazy`)
 * and provides the store and the `Redis` service (for `RedisHealth`). Invalid options fail with `PolicyConfigError`;
 * an unreachable or silent server fails with `RedisStoreError`, unless `lazy` is set: then the layer builds
 * at once and operations fail with `RedisStoreError` until Redis is up.
 *
 * @example
 * ```ts
 * import { RedisStore } from "@effect-resilience/redis"
 *
 * const Store = RedisStore.layer({ url: "redis://127.0.0.1:6379/0", prefix: "orders:", timeout: "500 millis" })
 * // Starts even when Redis is not up yet (say, both start together).
 * const Lazy = RedisStore.layer({ url: "redis://127.0.0.1:6379/0", lazy: true })
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  options: LayerOptions = {}
): Layer.Layer<RedisStore | Redis.Redis, RedisStoreError | PolicyConfigError> =>
  layerChecked(decode(LayerOptionsSchema, options, decoding), options)

// Made once the options are known to be valid (`checked` succeeds), not before: making it reads them.
const layerChecked = <E, R>(checked: Effect.Effect<unknown, E, R>, options: LayerOptions) =>
  Layer.unwrap(Effect.map(checked, () => layerRedis(options).pipe(Layer.provideMerge(connect(options)))))

/**
 * Like `layer`, reading `REDIS_URL` (default `redis://127.0.0.1:6379`), `REDIS_PASSWORD` (redacted, optional),
 * `REDIS_PREFIX` (default `"resilience:"`) and `REDIS_LAZY` (`"true"` or `"false"`, default `"false"`) from the
 * `ConfigProvider`.
 *
 * @example
 * ```ts
 * import { RedisStore } from "@effect-resilience/redis"
 * import { ConfigProvider, Layer } from "effect"
 *
 * const Store = RedisStore.layerConfig().pipe(
 *   Layer.provide(ConfigProvider.layer(ConfigProvider.fromUnknown({ REDIS_URL: "redis://127.0.0.1:6379" })))
 * )
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = (): Layer.Layer<
  RedisStore | Redis.Redis,
  RedisStoreError | PolicyConfigError | Config.ConfigError
> =>
  Layer.unwrap(
    Effect.map(
      Config.all({
        url: Config.String("REDIS_URL").pipe(Config.withDefault(defaultUrl)),
        password: Config.option(Config.Redacted("REDIS_PASSWORD")),
        prefix: Config.String("REDIS_PREFIX").pipe(Config.withDefault(defaultPrefix)),
        lazy: Config.Boolean("REDIS_LAZY").pipe(Config.withDefault(false))
      }),
      ({ lazy, password, prefix, url }) => {
        const options = { url, prefix, lazy, password: Option.getOrUndefined(password) }
        // A value out of range is reported under the variable the operator set.
        return layerChecked(
          decode(LayerOptionsSchema, options, decoding).pipe(
            Effect.mapError((error) =>
              withVariables(error, { url: "REDIS_URL", password: "REDIS_PASSWORD", prefix: "REDIS_PREFIX" })
            )
          ),
          options
        )
      }
    )
  )

/**
 * The store on a master found through Redis Sentinel, following failovers (see `RedisSentinel`): provides the store,
 * the `Redis` service and `RedisSentinel`. Invalid options fail with `PolicyConfigError`; no sentinel naming the
 * master, or the master not answering, with `RedisStoreError` (operation `connect`), unless `lazy` is set: then the
 * layer builds at once, the master is looked for in the background, and operations fail with `RedisStoreError`
 * until it is found.
 *
 * @example
 * ```ts
 * import { RedisStore } from "@effect-resilience/redis"
 *
 * const Store = RedisStore.layerSentinel({
 *   masterName: "mymaster",
 *   sentinels: [{ host: "10.0.0.1", port: 26379 }, { host: "10.0.0.2", port: 26379 }],
 *   prefix: "orders:",
 *   timeout: "500 millis"
 * })
 * // Starts even while no sentinel answers (say, all start together).
 * const Lazy = RedisStore.layerSentinel({
 *   masterName: "mymaster",
 *   sentinels: [{ host: "10.0.0.1", port: 26379 }],
 *   lazy: true
 * })
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerSentinel = (
  options: RedisSentinel.Options & Options
): Layer.Layer<RedisStore | Redis.Redis | RedisSentinel.RedisSentinel, RedisStoreError | PolicyConfigError> =>
  Layer.unwrap(Effect.map(
    // Every issue at once: the sentinel's options and the store's.
    decode(Schema.Struct({ ...sentinelFields, ...StoreFields }), options, {
      kind: "Redis store",
      policy: typeof options.masterName === "string" && options.masterName !== "" ? options.masterName : "RedisStore"
    }),
    () =>
      layerRedis(options).pipe(
        Layer.provideMerge(RedisSentinel.layer(options)),
        Layer.catchTag(
          "RedisSentinelError",
          (error) =>
            failLayer<RedisStore | Redis.Redis | RedisSentinel.RedisSentinel, RedisStoreError>(
              new RedisStoreError({ operation: "connect", message: error.message, cause: error })
            )
        )
      )
  ))
