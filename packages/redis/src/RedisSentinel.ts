/**
 * Redis behind Sentinel: finds the master through the sentinels, follows it when they fail it over to a replica, and
 * reports each failover (where from, where to, how long commands took to recover) as a stream, a last value and
 * metrics. It provides `effect/persistence`'s `Redis` service, so `RedisStore.layerRedis` (or
 * `RedisStore.layerSentinel`) runs on it unchanged.
 *
 * **Details**
 *
 * - The master: the first sentinel (in the order given) that answers `SENTINEL get-master-addr-by-name` names it.
 * - A switch: every sentinel is subscribed to (`+switch-master`); when one announces a new master for this name,
 *   commands go to a new client connected to it, subscriptions move there, and reserved connections to the old master
 *   fail so that the pool drops them. Should the announcement be missed, the sentinels are asked again whenever the
 *   master connection drops (and on each reconnect attempt) or a command gets `READONLY`.
 * - While the master is away commands fail at once (the offline queue is disabled), as with `RedisStore.layer`: a
 *   command that failed is never run later.
 * - Recovery time: from the first failed command (or dropped connection) after which the master changed, until the
 *   first command that succeeds on the new master. A `Failover` is published then, with that time; with no command
 *   after the switch, none is. Metrics: `redis_sentinel_failovers_total` (counter) and
 *   `redis_sentinel_last_recovery_seconds` (gauge), both with a `master` attribute.
 * - `lazy: true`: the layer builds at once, whatever the sentinels and the master do, and looks for the master in the
 *   background (backoff up to about 2 seconds; a warning at the first failure, then one a minute). Commands sent
 *   during the first search wait for it (at most `timeout` or `connectTimeout`, the shorter); after that, until the
 *   master is found and connected, commands fail at once and `master` waits; subscribers made meanwhile subscribe on
 *   it once it is.
 *   Finding it is not a failover (no `Failover`, no metric): from then on all is as without `lazy`.
 *
 * **Gotchas**
 *
 * - Why not node-redis' own `createSentinel`? It works (`sendCommand`, pub/sub that follows the master), but while the
 *   master is down it holds every command until the failover is over, and runs it then: a command that a timeout had
 *   already failed (and the caller perhaps retried) is applied later anyway, say an `INCRBY` counted twice. Here a
 *   command either runs when sent or fails.
 * - `password` is for the master (and replicas); the sentinels are asked without one.
 * - Messages published during the switch are lost to subscribers (pub/sub), as with any reconnect.
 *
 * **Example** (A store that follows failovers)
 *
 * ```ts
 * import { RedisSentinel, RedisStore } from "@effect-resilience/redis"
 * import { Effect, Stream } from "effect"
 *
 * const program = Effect.gen(function*() {
 *   const sentinel = yield* RedisSentinel.RedisSentinel
 *   yield* sentinel.failovers.pipe(
 *     Stream.runForEach((failover) => Effect.log(`master now ${failover.to.port}, ${failover.recoveryMillis} ms`)),
 *     Effect.forkScoped
 *   )
 *   const store = yield* RedisStore.RedisStore
 *   yield* store.set("greeting", "hello")
 * }).pipe(
 *   Effect.scoped,
 *   Effect.provide(RedisStore.layerSentinel({
 *     masterName: "mymaster",
 *     sentinels: [{ host: "10.0.0.1", port: 26379 }, { host: "10.0.0.2", port: 26379 }]
 *   }))
 * )
 * ```
 *
 * @since 0.1.0
 */
import { decode, type PolicyConfigError } from "@effect-resilience/core/PolicyConfig"
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FiberSet from "effect/FiberSet"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Redis from "effect/persistence/Redis"
import * as PubSub from "effect/PubSub"
import * as Redacted from "effect/Redacted"
import * as Ref from "effect/Ref"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Semaphore from "effect/Semaphore"
import * as Stream from "effect/Stream"
import { createClient, ErrorReply } from "redis"
import * as client from "./internal/client.ts"
import { describeCause } from "./internal/describe.ts"
import { sentinelFields } from "./internal/options.ts"

// -----------------------------------------------------------------------------
// errors
// -----------------------------------------------------------------------------

/**
 * Connecting failed: no sentinel named the master, or the master they named could not be reached.
 *
 * @example
 * ```ts
 * import { RedisSentinel } from "@effect-resilience/redis"
 *
 * const error = new RedisSentinel.RedisSentinelError({
 *   masterName: "mymaster",
 *   message: "No sentinel named the master: 10.0.0.1:26379: ECONNREFUSED"
 * })
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export class RedisSentinelError extends Schema.TaggedError<RedisSentinelError>()("RedisSentinelError", {
  masterName: Schema.String,
  message: Schema.String,
  cause: Schema.optional(Schema.Defect())
}) {}

// -----------------------------------------------------------------------------
// models
// -----------------------------------------------------------------------------

/**
 * Where a server (or a sentinel) listens.
 *
 * @example
 * ```ts
 * import type { RedisSentinel } from "@effect-resilience/redis"
 *
 * const sentinel: RedisSentinel.Address = { host: "10.0.0.1", port: 26379 }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Address {
  readonly host: string
  readonly port: number
}

/**
 * A failover the client followed: the old and new master, when the client switched (epoch milliseconds), and how long
 * commands took to recover (see the module docs).
 *
 * @example
 * ```ts
 * import type { RedisSentinel } from "@effect-resilience/redis"
 *
 * const failover: RedisSentinel.Failover = {
 *   from: { host: "10.0.0.5", port: 6379 },
 *   to: { host: "10.0.0.6", port: 6379 },
 *   at: 1_767_225_600_000,
 *   recoveryMillis: 3_150
 * }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Failover {
  readonly from: Address
  readonly to: Address
  /** When the client switched to the new master, in epoch milliseconds. */
  readonly at: number
  /** From the first failed command (or dropped connection) to the first success on the new master. */
  readonly recoveryMillis: number
}

/**
 * Options for `layer`: which master, which sentinels to ask, and how to connect to the master.
 *
 * @example
 * ```ts
 * import type { RedisSentinel } from "@effect-resilience/redis"
 * import { Redacted } from "effect"
 *
 * const options: RedisSentinel.Options = {
 *   masterName: "mymaster",
 *   sentinels: [{ host: "10.0.0.1", port: 26379 }],
 *   password: Redacted.make("s3cret"),
 *   timeout: "1 second"
 * }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** The master's name in the sentinels' configuration (`sentinel monitor <name> ...`). */
  readonly masterName: string
  /** The sentinels to ask, in order; at least one. */
  readonly sentinels: ReadonlyArray<Address>
  /** The master's password (not the sentinels'). */
  readonly password?: Redacted.Redacted<string> | undefined
  /** How long a command (to the master or a sentinel) may take. Default: 2 seconds. */
  readonly timeout?: Duration.Input | undefined
  /** How long connecting (to the master, until it answers, or a sentinel) may take. Default: 5 seconds. */
  readonly connectTimeout?: Duration.Input | undefined
  /**
   * Build at once, even while no sentinel answers or the master does not: the master is looked for in the background
   * (backoff up to about 2 seconds). Commands sent during the first search wait for it (at most `timeout` or
   * `connectTimeout`, the shorter); after that, until the master is found and connected, every command fails at once
   * with `RedisError`. Default: `false`, building connects first and fails with `RedisSentinelError`.
   */
  readonly lazy?: boolean | undefined
}

/**
 * The failover side of the connection: the current master, and the failovers followed so far.
 *
 * @example
 * ```ts
 * import type { RedisSentinel } from "@effect-resilience/redis"
 * import { Effect } from "effect"
 *
 * const where = (sentinel: RedisSentinel.RedisSentinel) =>
 *   Effect.map(sentinel.master, (master) => `${sentinel.masterName} is on ${master.host}:${master.port}`)
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface RedisSentinel {
  readonly masterName: string
  /** Where commands go now. With `lazy`, waits until the master is found: bound it where it must not wait. */
  readonly master: Effect.Effect<Address>
  /** Each failover, once the first command succeeded on the new master; only those after the stream started. */
  readonly failovers: Stream.Stream<Failover>
  readonly lastFailover: Effect.Effect<Option.Option<Failover>>
}

/**
 * The `RedisSentinel` in context (provided by `layer` and `RedisStore.layerSentinel`).
 *
 * @example
 * ```ts
 * import { RedisSentinel } from "@effect-resilience/redis"
 * import { Effect } from "effect"
 *
 * const where = Effect.gen(function*() {
 *   const sentinel = yield* RedisSentinel.RedisSentinel
 *   const master = yield* sentinel.master
 *   return `${sentinel.masterName} is on ${master.host}:${master.port}`
 * })
 * ```
 *
 * @since 0.1.0
 * @category services
 */
export const RedisSentinel: Context.Service<RedisSentinel, RedisSentinel> = Context.Service<RedisSentinel>(
  "@effect-resilience/redis/RedisSentinel"
)

// -----------------------------------------------------------------------------
// constructors
// -----------------------------------------------------------------------------

const defaultTimeout = Duration.seconds(2)
const defaultConnectTimeout = Duration.seconds(5)

const failoversTotal = Metric.counter("redis_sentinel_failovers_total", {
  description: "Failovers followed: the client switched to a new master and a command succeeded on it",
  incremental: true
})

const lastRecoverySeconds = Metric.gauge("redis_sentinel_last_recovery_seconds", {
  description: "Time to recover of the last failover: first failed command to first success on the new master"
})

const OptionsSchema = Schema.Struct(sentinelFields)

const sameAddress = (a: Address, b: Address) => a.host === b.host && a.port === b.port

const show = (address: Address) => `${address.host}:${address.port}`

// What a lazy layer sends to until it has found the master: nothing (commands fail at once).
const notFound = { client: undefined, generation: -1 }

// A reply error other than these says the command was wrong, not that the master is away.
const failoverReply = /^(READONLY|MASTERDOWN|LOADING)/

/**
 * Whether a command's failure is a sign of the master being away: anything but a reply error (wrong type, bad
 * script...), or one of the replies a master gives while it is being replaced.
 */
const isTrouble = (cause: Cause.Cause<Redis.RedisError>): boolean => {
  const error = Cause.findErrorOption(cause)
  if (Option.isNone(error)) return true // interrupted, say by the store's timeout
  const reply = error.value.cause
  return !(reply instanceof ErrorReply) || failoverReply.test(reply.message)
}

const isReadOnly = (cause: Cause.Cause<Redis.RedisError>): boolean => {
  const error = Cause.findErrorOption(cause)
  return Option.isSome(error) && error.value.cause instanceof ErrorReply &&
    error.value.cause.message.startsWith("READONLY")
}

/**
 * Connects through the sentinels and returns the `Redis` service on the master and the `RedisSentinel` service.
 * Invalid options fail with `PolicyConfigError`; no sentinel naming the master, or the master not answering, with
 * `RedisSentinelError` (with `lazy`, never: the master is looked for in the background). Everything is closed when
 * the scope ends.
 *
 * @example
 * ```ts
 * import { RedisSentinel } from "@effect-resilience/redis"
 * import { Context, Effect } from "effect"
 * import { Redis } from "effect/persistence"
 *
 * const program = Effect.gen(function*() {
 *   const services = yield* RedisSentinel.make({
 *     masterName: "mymaster",
 *     sentinels: [{ host: "127.0.0.1", port: 26379 }]
 *   })
 *   return yield* Context.get(services, Redis.Redis).send("PING")
 * }).pipe(Effect.scoped)
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  options: Options
): Effect.Effect<
  Context.Context<Redis.Redis | RedisSentinel>,
  RedisSentinelError | PolicyConfigError,
  Scope.Scope
> =>
  Effect.gen(function*() {
    yield* decode(OptionsSchema, options, {
      kind: "Redis sentinel",
      policy: typeof options.masterName === "string" && options.masterName !== "" ? options.masterName : "RedisSentinel"
    })
    const { masterName } = options
    const runSync: client.RunSync = Effect.runSyncWith(yield* Effect.context<never>())
    const timeout = Math.ceil(Duration.toMillis(options.timeout ?? defaultTimeout))
    const connectTimeout = Math.ceil(Duration.toMillis(options.connectTimeout ?? defaultConnectTimeout))
    const attributes = { master: masterName }

    const masterOptions = (address: Address): client.ClientOptions => ({
      socket: { host: address.host, port: address.port, connectTimeout },
      ...(options.password === undefined ? {} : { password: Redacted.value(options.password) }),
      // Fail at once while the master is away rather than queue commands that would run on whichever server answers.
      disableOfflineQueue: true,
      commandOptions: { timeout }
    })

    // One question per sentinel, each on a connection of its own that does not retry: the next sentinel is the retry.
    const askOne = (sentinel: Address): Effect.Effect<Option.Option<Address>, string> =>
      Effect.acquireUseRelease(
        Effect.sync(() => {
          const asking: client.Client = createClient({
            socket: { host: sentinel.host, port: sentinel.port, connectTimeout, reconnectStrategy: false },
            commandOptions: { timeout }
          })
          // Failures come back through the promises below; without a listener node-redis would rethrow them.
          asking.on("error", () => {})
          return asking
        }),
        (asking) =>
          Effect.tryPromise({
            try: () =>
              asking.connect().then(() => asking.sendCommand(["SENTINEL", "GET-MASTER-ADDR-BY-NAME", masterName])),
            catch: (cause) => `${show(sentinel)}: ${describeCause(cause)}`
          }),
        (asking) => Effect.sync(() => client.destroyClient(asking))
      ).pipe(Effect.map((reply) =>
        Array.isArray(reply) && reply.length === 2
          ? Option.some({ host: String(reply[0]), port: Number(reply[1]) })
          : Option.none()
      ))

    const askSentinels: Effect.Effect<Address, RedisSentinelError> = Effect.gen(function*() {
      const failures: Array<string> = []
      for (const sentinel of options.sentinels) {
        const answer = yield* Effect.result(askOne(sentinel))
        if (answer._tag === "Success" && Option.isSome(answer.success)) return answer.success.value
        failures.push(answer._tag === "Failure" ? answer.failure : `${show(sentinel)}: does not know "${masterName}"`)
      }
      return yield* new RedisSentinelError({
        masterName,
        message: `No sentinel named the master "${masterName}": ${failures.join("; ")}`
      })
    })

    // The state below changes in node-redis callbacks as well as in effects; all of it runs on the one JS thread and
    // every change is synchronous, so plain variables are enough.
    let closed = false
    // Where commands go; `undefined` until a lazy layer has found the master.
    let current: { client: client.Client; generation: number; address: Address } | undefined
    const found = yield* Deferred.make<Address>()
    const switchListeners = new Set<() => void>()
    // The first failed command (or dropped connection) since the last success.
    let troubleSince: number | undefined
    // A switch whose first success is still to come.
    let pending:
      | { readonly from: Address; readonly to: Address; readonly at: number; readonly since: number }
      | undefined

    const failovers = yield* PubSub.unbounded<Failover>()
    const lastFailover = yield* Ref.make(Option.none<Failover>())
    const watchers: Array<client.Client> = []

    const runFork = yield* FiberSet.makeRuntime<never>()
    const switching = yield* Semaphore.make(1)

    const noteTrouble = Effect.map(Clock.currentTimeMillis, (now) => {
      troubleSince ??= now
    })

    const connectMaster = (address: Address, retry: client.Retry): client.Client => {
      const master = client.makeClient(masterOptions(address), retry, runSync, "RedisSentinel master")
      // Every failed (re)connect attempt: note the trouble and ask the sentinels, in case the switch was missed.
      master.on("error", () => {
        if (!closed && current?.client === master) runFork(Effect.andThen(noteTrouble, refresh))
      })
      return master
    }

    const switchTo = (address: Address): Effect.Effect<void> =>
      switching.withPermit(Effect.gen(function*() {
        // Before the first master is found there is nothing to switch from: the search finds the new one.
        if (closed || current === undefined || sameAddress(address, current.address)) return
        const previous = current
        const at = yield* Clock.currentTimeMillis
        const next = connectMaster(address, "never")
        // Not awaited: until it is ready commands fail at once, like on any reconnect.
        next.connect().catch(() => {})
        current = { client: next, generation: previous.generation + 1, address }
        pending = { from: previous.address, to: address, at, since: troubleSince ?? at }
        client.destroyClient(previous.client)
        switchListeners.forEach((listener) => listener())
        yield* Effect.logWarning(
          `RedisSentinel: master "${masterName}" moved from ${show(previous.address)} to ${show(address)}`
        )
      }))

    let refreshing = false
    const refresh: Effect.Effect<void> = Effect.suspend(() => {
      if (refreshing || closed) return Effect.void
      refreshing = true
      return askSentinels.pipe(
        Effect.flatMap(switchTo),
        Effect.ignore,
        Effect.ensuring(Effect.sync(() => {
          refreshing = false
        }))
      )
    })

    const recovered = (now: number) =>
      Effect.gen(function*() {
        if (pending === undefined) return
        const failover: Failover = {
          from: pending.from,
          to: pending.to,
          at: pending.at,
          recoveryMillis: Math.max(0, now - pending.since)
        }
        pending = undefined
        yield* Ref.set(lastFailover, Option.some(failover))
        yield* Metric.update(Metric.withAttributes(failoversTotal, attributes), 1)
        yield* Metric.update(Metric.withAttributes(lastRecoverySeconds, attributes), failover.recoveryMillis / 1000)
        yield* PubSub.publish(failovers, failover)
        yield* Effect.logInfo(
          `RedisSentinel: master "${masterName}" recovered on ${show(failover.to)} after ${failover.recoveryMillis} ms`
        )
      })

    const observe = (generation: number, exit: Exit.Exit<unknown, Redis.RedisError>): Effect.Effect<void> =>
      Effect.gen(function*() {
        // An outcome on an old master (or before the first was found) says nothing about the current one.
        if (current === undefined || generation !== current.generation) return
        const now = yield* Clock.currentTimeMillis
        if (Exit.isSuccess(exit)) {
          troubleSince = undefined
          return yield* recovered(now)
        }
        if (!isTrouble(exit.cause)) return
        troubleSince ??= now
        // The master we talk to became a replica: the sentinels know where the new one is.
        if (isReadOnly(exit.cause)) runFork(refresh)
      })

    // Ask the sentinels, then connect to the master they name; fail if it does not answer within `connectTimeout` (a
    // master that accepts connections but never answers, say a stopped process, would hold the connect forever).
    const connectFirst = Effect.gen(function*() {
      const address = yield* askSentinels
      const master = connectMaster(address, "beforeReady")
      const failed = (reason: string, cause?: unknown) =>
        new RedisSentinelError({
          masterName,
          message: `Connecting to master "${masterName}" at ${show(address)} ${reason}`,
          cause
        })
      const connecting = Effect.tryPromise({
        try: () => master.connect(),
        catch: (cause) => failed(`failed: ${describeCause(cause)}`, cause)
      })
      yield* Effect.timeoutOrElse(connecting, {
        duration: connectTimeout,
        orElse: () => Effect.fail(failed(`timed out after ${Duration.format(Duration.millis(connectTimeout))}`))
      }).pipe(
        Effect.onExit((exit) => Exit.isSuccess(exit) ? Effect.void : Effect.sync(() => client.destroyClient(master)))
      )
      return { client: master, address }
    })

    // Eager: like `RedisStore.layer`, fail if the master cannot be found or does not answer.
    if (options.lazy !== true) {
      const first = yield* connectFirst
      current = { ...first, generation: 0 }
      yield* Deferred.succeed(found, first.address)
    }
    // `closed` also stops switches that background refreshes may still attempt.
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        closed = true
        if (current !== undefined) client.destroyClient(current.client)
        watchers.forEach(client.destroyClient)
      }).pipe(
        // A lazy layer closed before it found the master: `master` no longer waits.
        Effect.andThen(Deferred.interrupt(found))
      )
    )

    // Watch every sentinel: any of them may announce the switch, and one may be down.
    const onSwitchMessage = (message: string) => {
      const [name, , , host, port] = message.split(" ")
      if (name === masterName && host !== undefined && port !== undefined) {
        runFork(switchTo({ host, port: Number(port) }))
      }
    }
    const subscribed = options.sentinels.map((sentinel) => {
      const watcher = client.makeClient(
        { socket: { host: sentinel.host, port: sentinel.port, connectTimeout } },
        "never",
        runSync,
        "RedisSentinel sentinel"
      )
      watchers.push(watcher)
      watcher.connect().catch(() => {})
      const subscribing = watcher.subscribe("+switch-master", onSwitchMessage)
      // Rejected if the watcher is closed before it subscribed, when a lazy layer may not be waiting for it.
      subscribing.catch(() => {})
      return subscribing
    })
    // Wait (briefly) for one subscription, so that a failover right after the layer is built is heard of; without one
    // the fallbacks above still find the new master. A lazy layer does not wait: its sentinels may all be down.
    if (options.lazy !== true) {
      yield* Effect.promise(() => Promise.any(subscribed).catch(() => undefined)).pipe(
        Effect.timeoutOrElse({ duration: connectTimeout, orElse: () => Effect.void })
      )
    }

    // A lazy layer's first search: commands sent meanwhile wait for it (at most `timeout` or `connectTimeout`), so
    // that a program that writes as soon as it starts reaches a master that is there. An eager layer has found it.
    const firstSearch = options.lazy === true
      ? yield* client.firstAttempt(Duration.millis(Math.min(timeout, connectTimeout)))
      : undefined

    const redis = yield* client.makeRedis({
      current: () => current ?? notFound,
      connecting: firstSearch?.connecting,
      offline: `The client is offline: the master "${masterName}" has not been found yet`,
      onSwitch: (listener) => {
        switchListeners.add(listener)
        return () => switchListeners.delete(listener)
      },
      observe
    }, { label: "RedisSentinel" })

    if (options.lazy === true) {
      // Finding the master is not a failover: no `Failover`, no metric, one info line. Subscribers made until then
      // subscribe on it (the switch listeners).
      const install = (first: { readonly client: client.Client; readonly address: Address }) =>
        Effect.gen(function*() {
          current = { ...first, generation: 0 }
          troubleSince = undefined
          switchListeners.forEach((listener) => listener())
          yield* Deferred.succeed(found, first.address)
          yield* Effect.logInfo(`RedisSentinel: master "${masterName}" found at ${show(first.address)}`)
        })
      // The eager connect, again with backoff until it succeeds. Logged as `client.logConnection` logs an outage: the
      // first failure, then a reminder each `reminderInterval`, not every attempt.
      const search = Effect.gen(function*() {
        let since: number | undefined
        let remindedAt = 0
        for (let attempts = 1;; attempts++) {
          // Once connected, installed before an interruption (the scope closing) can leave the client behind.
          const attempt = yield* Effect.uninterruptibleMask((restore) =>
            Effect.result(restore(connectFirst)).pipe(
              Effect.tap((result) => result._tag === "Success" ? install(result.success) : Effect.void)
            )
          )
          firstSearch?.end()
          if (attempt._tag === "Success") return
          const now = yield* Clock.currentTimeMillis
          if (since === undefined) {
            since = remindedAt = now
            yield* Effect.logWarning(
              `RedisSentinel: cannot find master "${masterName}" yet (${attempt.failure.message}), ` +
                "looking in the background"
            )
          } else if (now - remindedAt >= Duration.toMillis(client.reminderInterval)) {
            remindedAt = now
            yield* Effect.logWarning(
              `RedisSentinel: still no master "${masterName}" after ${Duration.format(Duration.millis(now - since))} ` +
                `(${attempts} attempts, last: ${attempt.failure.message})`
            )
          }
          yield* Effect.sleep(yield* client.reconnectDelay(attempts - 1))
        }
      })
      yield* Effect.forkScoped(search)
    }

    const sentinel = RedisSentinel.of({
      masterName,
      master: Effect.suspend(() => current === undefined ? Deferred.await(found) : Effect.succeed(current.address)),
      failovers: Stream.fromPubSub(failovers),
      lastFailover: Ref.get(lastFailover)
    })
    return Context.make(RedisSentinel, sentinel).pipe(Context.add(Redis.Redis, redis))
  })

// -----------------------------------------------------------------------------
// layers
// -----------------------------------------------------------------------------

/**
 * Provides `Redis` (commands on the current master) and `RedisSentinel` (failovers), connected through the sentinels.
 * Invalid options fail with `PolicyConfigError`; an unreachable master with `RedisSentinelError`, unless `lazy` is
 * set: then it builds at once and commands fail until the master is found.
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
 * @category layers
 */
export const layer = (
  options: Options
): Layer.Layer<Redis.Redis | RedisSentinel, RedisSentinelError | PolicyConfigError> =>
  Layer.effectContext(make(options))
