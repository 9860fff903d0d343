/**
 * The `Redis` service over node-redis clients that `NodeRedis` does not make: a lazy one (built at once, connecting in
 * the background) and one whose server changes under it (a Sentinel failover). `NodeRedis`' findings hold here:
 *
 * - No `socketTimeout`: on a socket timeout node-redis stops reconnecting for good.
 * - An `error` listener on every client: node-redis rethrows `error` events nobody listens to, which would crash the
 *   process on a transient socket failure.
 * - Subscribers and reserved connections are `duplicate()`s of the client commands go to, so they reach the same
 *   server with the same credentials.
 *
 * @internal
 */
import type * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Data from "effect/Data"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Exit from "effect/Exit"
import * as Redis from "effect/persistence/Redis"
import * as Queue from "effect/Queue"
import * as Random from "effect/Random"
import * as Scope from "effect/Scope"
import { createClient, ErrorReply } from "redis"

/** @internal */
export type Client = ReturnType<typeof createClient>

/** @internal */
export type ClientOptions = NonNullable<Parameters<typeof createClient>[0]>

/** @internal */
export type SocketOptions = NonNullable<ClientOptions["socket"]>

/** @internal */
export type RunSync = <A>(effect: Effect.Effect<A>) => A

/**
 * When to give up reconnecting: `"never"` keeps retrying (a lazy client, a new master), `"beforeReady"` gives up on
 * the first failure until the client was ready once (an eager connect that should fail the layer), as `NodeRedis`.
 *
 * @internal
 */
export type Retry = "never" | "beforeReady"

/**
 * The delay before reconnect attempt `retries`: `NodeRedis`' curve, min(2^n * 50, 2000) ms, plus up to 200 ms of
 * jitter so that clients do not reconnect in lockstep.
 *
 * @internal
 */
export const reconnectDelay = (retries: number): Effect.Effect<number> =>
  Effect.map(Random.nextIntBetween(0, 200), (jitter) => Math.min(2 ** retries * 50, 2000) + jitter)

/**
 * A `socket` with a reconnect strategy as `retry` says. `isReady` tells whether the client was ready once.
 *
 * @internal
 */
export const withReconnect = (
  socket: SocketOptions,
  retry: Retry,
  isReady: () => boolean,
  runSync: RunSync
): SocketOptions => ({
  ...socket,
  reconnectStrategy: (retries: number, cause: Error) =>
    retry === "beforeReady" && !isReady() ? cause : runSync(reconnectDelay(retries))
})

// Rejects once `client`'s `connectTimeout` has passed without `promise` settling.
const withinConnectTimeout = <A>(client: Client, promise: Promise<A>): Promise<A> => {
  const millis = socketOf(client).connectTimeout ?? defaultConnectTimeoutMillis
  let timer: ReturnType<typeof setTimeout> | undefined
  const timedOut = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`the server accepted the connection but did not answer within ${millis} ms`)),
      millis
    )
  })
  return Promise.race([promise, timedOut]).finally(() => clearTimeout(timer))
}

// node-redis' own default.
const defaultConnectTimeoutMillis = 5000

/**
 * How often an outage is recalled in the log while it lasts.
 *
 * @internal
 */
export const reminderInterval = Duration.minutes(1)

/**
 * Where a client connects, for messages: `host:port` or the socket path, never the URL (it may carry a password).
 *
 * @internal
 */
export const addressOf = (client: Client): string => {
  const socket: { readonly host?: unknown; readonly port?: unknown; readonly path?: unknown } = socketOf(client)
  if (typeof socket.path === "string") return socket.path
  return `${typeof socket.host === "string" ? socket.host : "localhost"}:${
    typeof socket.port === "number" ? socket.port : 6379
  }`
}

/**
 * A connection error on one line: node's socket errors carry their `code` (an `AggregateError` for a host with
 * several addresses has an empty message), node-redis' their class name.
 *
 * @internal
 */
export const describeError = (cause: unknown): string => {
  if (typeof cause !== "object" || cause === null) return String(cause)
  const code = "code" in cause && typeof cause.code === "string" ? cause.code : undefined
  const message = "message" in cause && typeof cause.message === "string" ? cause.message.split("\n")[0]! : ""
  const name = "name" in cause && typeof cause.name === "string" && cause.name !== "Error"
    ? cause.name
    : cause.constructor.name
  if (code !== undefined) return message.includes(code) ? message : message === "" ? code : `${code}: ${message}`
  return `${name}: ${message}`
}

const notRedisHint = "; the server accepted the connection but did not answer the Redis handshake, so it is likely " +
  "not a Redis server (or one that expects TLS: use a rediss:// URL)"

// Aborting the socket's signal is the only way to stop a socket that is still connecting: `destroy` cannot.
const aborts = new WeakMap<Client, AbortController>()

/**
 * Logs a client's connection as it changes: one line when it is lost (or cannot be made), a one-line reminder each
 * `reminderInterval` while the outage lasts, one line when it is back with the outage's duration. Not every attempt:
 * node-redis reports each one as an `error`, thousands an hour. Errors while `quiet()` are left to the caller.
 *
 * @internal
 */
export const logConnection = (client: Client, label: string, runSync: RunSync, quiet: () => boolean): void => {
  let outage: { readonly since: number; remindedAt: number; attempts: number } | undefined
  let wasReady = false
  // A socket that connected and then failed before `ready`: the handshake broke, so something else may listen there.
  let handshaking = false
  client.on("connect", () => {
    handshaking = true
  })
  client.on("ready", () => {
    wasReady = true
    handshaking = false
    if (outage === undefined) return
    const lasted = Duration.format(Duration.millis(runSync(Clock.currentTimeMillis) - outage.since))
    outage = undefined
    runSync(Effect.logInfo(`${label}: connection to ${addressOf(client)} is back after ${lasted}`))
  })
  client.on("error", (cause) => {
    const notRedis = handshaking && !(cause instanceof ErrorReply)
    handshaking = false
    if (quiet()) return
    const now = runSync(Clock.currentTimeMillis)
    if (outage === undefined) {
      outage = { since: now, remindedAt: now, attempts: 1 }
      return runSync(Effect.logWarning(
        `${label}: ${wasReady ? "lost the connection to" : "cannot connect to"} ${addressOf(client)} (${
          describeError(cause)
        }${notRedis ? notRedisHint : ""}), reconnecting in the background`
      ))
    }
    outage.attempts++
    if (now - outage.remindedAt < Duration.toMillis(reminderInterval)) return
    outage.remindedAt = now
    runSync(Effect.logWarning(
      `${label}: still no connection to ${addressOf(client)} after ${
        Duration.format(Duration.millis(now - outage.since))
      } (${outage.attempts} attempts, last: ${describeError(cause)})`
    ))
  })
}

/**
 * Creates (does not connect) a client that reconnects as `retry` says and logs its connection (`logConnection`)
 * instead of crashing. A client that gives up before it was ready (`"beforeReady"`) logs nothing: its caller reports.
 *
 * @internal
 */
export const makeClient = (options: ClientOptions, retry: Retry, runSync: RunSync, label: string): Client => {
  let ready = false
  const abort = new AbortController()
  const socket = options.socket ?? {}
  const callerSignal = "signal" in socket ? socket.signal : undefined
  const client: Client = createClient({
    ...options,
    socket: withReconnect(
      // node-redis' TLS option type omits `signal`, which `tls.connect` accepts.
      Object.assign({}, socket, {
        signal: callerSignal ? AbortSignal.any([callerSignal, abort.signal]) : abort.signal
      }),
      retry,
      () => ready,
      runSync
    )
  })
  aborts.set(client, abort)
  client.once("ready", () => {
    ready = true
  })
  logConnection(client, label, runSync, () => abort.signal.aborted || (retry === "beforeReady" && !ready))
  return client
}

/**
 * Closes a client whatever its state (never connected, connecting, reconnecting, open): in-flight commands fail
 * instead of holding the scope open behind a server that does not answer. Never awaits `close`, which a server that
 * does not answer never lets settle.
 *
 * @internal
 */
export const destroyClient = (client: Client): void => {
  if (client.isOpen) client.destroy()
  // After `destroy`, so that the abort only meets a still-connecting socket nobody tracks (no client error).
  aborts.get(client)?.abort()
}

/**
 * An eager connection failed: `message` says where to and why.
 *
 * @internal
 */
export class ConnectError extends Data.TaggedError("ConnectError")<{
  readonly message: string
  readonly cause: unknown
}> {}

/**
 * `makeClient`, with a throw of node-redis' `createClient` (options it refuses, such as a URL it cannot parse) as a
 * `ConnectError` rather than a defect. Its message may quote the URL, which may carry a password: never passed on.
 *
 * @internal
 */
export const makeClientChecked = (
  options: ClientOptions,
  retry: Retry,
  runSync: RunSync,
  label: string
): Effect.Effect<Client, ConnectError> =>
  Effect.try({
    try: () => makeClient(options, retry, runSync, label),
    catch: (cause) => {
      const described = describeError(cause)
      return new ConnectError({
        message: `${label}: node-redis refused the client options (${
          options.url === undefined ? described : described.replaceAll(options.url, "<url>")
        })`,
        cause: undefined
      })
    }
  })

// node-redis wraps the failure that made the strategy give up.
const unwrap = (cause: unknown): unknown =>
  typeof cause === "object" && cause !== null && "originalError" in cause ? cause.originalError : cause

/**
 * An eager connection: connects while it builds, and fails with `ConnectError` when Redis is unreachable, refuses
 * the handshake, or has not completed it within `connectTimeout`. node-redis' own `connectTimeout` bounds only the
 * TCP connect: a server that accepts connections but never answers (stopped, overloaded) would hang `connect()`
 * forever, so the whole handshake is bounded here, and the client destroyed on failure.
 *
 * @internal
 */
export const makeEager = (
  options: ClientOptions & { readonly pool?: Redis.PoolOptions | undefined },
  connectTimeout: Duration.Duration,
  label: string
): Effect.Effect<Redis.Redis["Service"], ConnectError, Scope.Scope> =>
  Effect.gen(function*() {
    const runSync: RunSync = Effect.runSyncWith(yield* Effect.context<never>())
    const { pool, ...clientOptions } = options
    const client = yield* Effect.acquireRelease(
      makeClientChecked(clientOptions, "beforeReady", runSync, label),
      (created) => Effect.sync(() => destroyClient(created))
    )
    let reached = false
    client.once("connect", () => {
      reached = true
    })
    const address = addressOf(client)
    yield* Effect.tryPromise({
      try: () => client.connect(),
      catch: (error) => {
        const cause = unwrap(error)
        return new ConnectError({
          message: reached && !(cause instanceof ErrorReply)
            // The TCP connection was made, then the handshake broke: something else listens there.
            ? `Redis connect to ${address} failed: ${describeError(cause)}${notRedisHint}`
            : `Redis connect to ${address} failed: ${describeError(cause)}`,
          cause
        })
      }
    }).pipe(Effect.timeoutOrElse({
      duration: connectTimeout,
      orElse: () =>
        Effect.fail(
          new ConnectError({
            message: `Redis connect to ${address} timed out after ${Duration.format(connectTimeout)}: ${
              reached
                ? "the server accepted the connection but did not answer (stopped or overloaded?)"
                : "no connection was made"
            }`,
            cause: undefined
          })
        )
    }))
    return yield* makeRedis(fixed(client), { label, pool })
  })

/**
 * Where commands go: the current client and its generation, which a switch to another server (a failover) bumps.
 * No client yet (a lazy Sentinel that has not found the master): commands fail at once with `offline`, subscribers
 * wait for the first switch.
 *
 * @internal
 */
export interface Source {
  readonly current: () => { readonly client: Client | undefined; readonly generation: number }
  /** Why commands fail while `current` has no client. */
  readonly offline?: string | undefined
  /** Registers `listener`, run after each switch; returns a function that unregisters it. */
  readonly onSwitch: (listener: () => void) => () => void
  /** Sees every command's outcome with the generation it was sent to. */
  readonly observe?:
    | ((generation: number, exit: Exit.Exit<unknown, Redis.RedisError>) => Effect.Effect<void>)
    | undefined
  /** While the first connect is under way, what a command waits for before it is sent; `undefined` after. */
  readonly connecting?: (() => Effect.Effect<void> | undefined) | undefined
}

/**
 * A `Source` that never switches: one client for the layer's lifetime.
 *
 * @internal
 */
export const fixed = (client: Client): Source => ({
  current: () => ({ client, generation: 0 }),
  onSwitch: () => () => {}
})

const sendWith =
  (client: Client) =>
  <A = unknown>(command: string, ...args: ReadonlyArray<string>): Effect.Effect<A, Redis.RedisError> =>
    Effect.tryPromise({
      try: () => client.sendCommand([command, ...args]) as Promise<A>,
      catch: (cause) => new Redis.RedisError({ cause })
    })

// node-redis' command timeout only covers the wait to be written: on the shared connection, a server that took the
// command and never answers (stopped, overloaded) would hold it, and a health check's `PING`, for ever. Not on a
// reserved connection, which is there for blocking commands (`BLPOP key 30`).
const sendBounded =
  (client: Client) =>
  <A = unknown>(command: string, ...args: ReadonlyArray<string>): Effect.Effect<A, Redis.RedisError> => {
    const sent = sendWith(client)<A>(command, ...args)
    const millis = client.options?.commandOptions?.timeout
    return millis === undefined || !(millis > 0) ? sent : Effect.timeoutOrElse(sent, {
      duration: Duration.millis(millis),
      orElse: () => Effect.fail(new Redis.RedisError({ cause: new ReplyTimeoutError(command, millis) }))
    })
  }

class ReplyTimeoutError extends Error {
  constructor(command: string, millis: number) {
    super(`${command} got no reply within ${millis} ms`)
    this.name = "ReplyTimeoutError"
  }
}

// The socket options a client was made with (host and port included, also when they came from a URL): a duplicate
// that overrides `socket` must carry them over, or it would connect to the default 127.0.0.1:6379.
const socketOf = (client: Client): SocketOptions => ({ ...client.options?.socket })

class NoServerError extends Error {
  constructor(message: string) {
    super(message)
    this.name = "NoServerError"
  }
}

class SwitchedError extends Error {
  constructor() {
    super("The master changed while this connection was reserved; reserve another")
    this.name = "SwitchedError"
  }
}

/**
 * Put in a subscription's queue (by `subscribeResubscribing`) each time the subscriber is subscribed again after a
 * gap: a reconnect, or a switch to another server. Told apart by identity, never by content.
 *
 * @internal
 */
export const resubscribed: Redis.RedisMessage = Object.freeze({ channel: "", message: "" })

/**
 * `Redis.subscribe`, but the queue also gets `resubscribed` after each gap, when messages may have been lost.
 *
 * @internal
 */
export type SubscribeResubscribing = (
  channel: string
) => Effect.Effect<Queue.Dequeue<Redis.RedisMessage, Redis.RedisError>, never, Scope.Scope>

// The `Redis` services made here, with their signalling subscribe: the `Redis` interface has no room for it.
const resubscribing = new WeakMap<Redis.Redis["Service"], SubscribeResubscribing>()

/**
 * The signalling subscribe of a `Redis` service made by `makeRedis`; `undefined` for any other (say, `NodeRedis`'),
 * which does not tell when it reconnects.
 *
 * @internal
 */
export const subscribeResubscribing = (redis: Redis.Redis["Service"]): SubscribeResubscribing | undefined =>
  resubscribing.get(redis)

/**
 * The `Redis` service over `source`: commands on the current client, subscribers and reserved connections on
 * duplicates of it. After a switch, subscribers move to the new server (messages published in between are lost, as
 * with any reconnect) and reserved connections to the old one fail, so the pool drops them. `subscribeResubscribing`
 * finds its subscribe that says when a subscriber is back after a gap.
 *
 * @internal
 */
export const makeRedis = (
  source: Source,
  options: { readonly label: string; readonly pool?: Redis.PoolOptions | undefined }
): Effect.Effect<Redis.Redis["Service"], never, Scope.Scope> =>
  Effect.gen(function*() {
    const runSync: RunSync = Effect.runSyncWith(yield* Effect.context<never>())
    const observe = source.observe
    const noServer = Effect.suspend(() =>
      Effect.fail(
        new Redis.RedisError({ cause: new NoServerError(source.offline ?? `${options.label}: no server yet`) })
      )
    )

    const send = <A = unknown>(command: string, ...args: ReadonlyArray<string>): Effect.Effect<A, Redis.RedisError> =>
      Effect.suspend(() => {
        const connecting = source.connecting?.()
        if (connecting !== undefined) return Effect.andThen(connecting, send<A>(command, ...args))
        const { client, generation } = source.current()
        const sent = client === undefined ? noServer : sendBounded(client)<A>(command, ...args)
        return observe === undefined ? sent : Effect.onExit(sent, (exit) => observe(generation, exit))
      })

    // Reserved connections do not reconnect: a dropped socket fails the in-flight command and the connection leaves
    // the pool (as in `NodeRedis`).
    const connect = Effect.suspend(() => {
      const { client, generation } = source.current()
      if (client === undefined) return noServer
      return Effect.tryPromise({
        try: async () => {
          const connection = client.duplicate({ socket: { ...socketOf(client), reconnectStrategy: false } })
          connection.on("error", (cause) => {
            runSync(Effect.logWarning(`${options.label} reserved connection error`, cause))
          })
          try {
            await connection.connect()
            return connection
          } catch (cause) {
            destroyClient(connection)
            throw cause
          }
        },
        catch: (cause) => new Redis.RedisError({ cause })
      }).pipe(Effect.map((connection) => ({
        send: <A = unknown>(command: string, ...args: ReadonlyArray<string>) =>
          source.current().generation === generation
            ? sendWith(connection)<A>(command, ...args)
            : Effect.fail(new Redis.RedisError({ cause: new SwitchedError() })),
        close: Effect.sync(() => destroyClient(connection))
      })))
    })

    const subscribe = Effect.fnUntraced(function*(
      channel: string,
      onMessage: (message: Redis.RedisMessage) => void,
      onResubscribed: () => void
    ) {
      const terminal = yield* Deferred.make<void, Redis.RedisError>()
      let closed = false
      let subscriber: Client | undefined

      // The first subscriber fails on its first connection error (the caller learns at once that Redis is away, as
      // with `NodeRedis`); one that replaces it after a switch keeps retrying: the new master may still be starting.
      const open = async (from: Client, retry: Retry, created?: (client: Client) => void): Promise<Client> => {
        let ready = false
        const next = from.duplicate({ socket: withReconnect(socketOf(from), retry, () => ready, runSync) })
        created?.(next)
        next.on("ready", () => {
          // A `ready` after the first is a reconnect, emitted once node-redis has subscribed the channel again.
          if (ready && subscriber === next) onResubscribed()
          ready = true
        })
        logConnection(next, `${options.label} subscriber`, runSync, () => closed || (retry === "beforeReady" && !ready))
        next.on("error", (cause) => {
          // Reconnecting clients stay open; a closed one gave up for good.
          if (subscriber === next && !next.isOpen) {
            runSync(Deferred.fail(terminal, new Redis.RedisError({ cause })))
          }
        })
        const subscribed = next.connect().then(() =>
          next.subscribe(channel, (message, received) => {
            if (subscriber === next) onMessage({ channel: received, message })
          })
        )
        try {
          // The first subscriber is bounded by `connectTimeout`, as connecting is: node-redis bounds only the TCP
          // connect, and a server that accepts it but never answers would hold `subscribe` (and the scope that should
          // close it) for ever. One that replaces it after a switch waits: the next switch abandons it.
          await (retry === "beforeReady" ? withinConnectTimeout(next, subscribed) : subscribed)
          return next
        } catch (cause) {
          destroyClient(next)
          throw cause
        }
      }

      // The last switch wins: it abandons an open still under way for an earlier one, which may never connect (a
      // master announced and gone, or never there), rather than wait behind it.
      let opening: Client | undefined
      let latest = 0
      const follow = () => {
        const mine = ++latest
        if (opening !== undefined) destroyClient(opening)
        opening = undefined
        const { client } = source.current()
        if (closed || client === undefined) return
        open(client, "never", (created) => {
          opening = created
        }).then(
          (next) => {
            if (closed || mine !== latest) return destroyClient(next)
            opening = undefined
            const previous = subscriber
            subscriber = next
            if (previous !== undefined) destroyClient(previous)
            onResubscribed()
          },
          (cause) => {
            // An abandoned open fails as it is destroyed: only the latest one's failure is the subscription's.
            if (!closed && mine === latest) runSync(Deferred.fail(terminal, new Redis.RedisError({ cause })))
          }
        )
      }

      yield* Effect.acquireRelease(
        Effect.tryPromise({
          try: async () => {
            const { client } = source.current()
            // No server yet: the first switch (to the first server found) subscribes.
            if (client !== undefined) subscriber = await open(client, "beforeReady")
            return source.onSwitch(follow)
          },
          catch: (cause) => new Redis.RedisError({ cause })
        }),
        (unregister) =>
          Effect.sync(() => {
            closed = true
            unregister()
            if (opening !== undefined) destroyClient(opening)
            if (subscriber !== undefined) destroyClient(subscriber)
          })
      )
      return Deferred.await(terminal)
    })

    const redis = yield* Redis.make({
      send,
      connect,
      subscribe: (channel, onMessage) => subscribe(channel, onMessage, () => {}),
      pool: options.pool
    })
    // As `Redis.make` subscribes, plus the marker after each gap.
    resubscribing.set(
      redis,
      Effect.fnUntraced(function*(channel) {
        const queue = yield* Queue.unbounded<Redis.RedisMessage, Redis.RedisError>()
        yield* Scope.addFinalizer(yield* Effect.scope, Queue.shutdown(queue))
        const onFailure = (cause: Cause.Cause<Redis.RedisError>) => Queue.failCause(queue, cause).pipe(Effect.asVoid)
        yield* subscribe(channel, (message) => {
          Queue.offerUnsafe(queue, message)
        }, () => {
          Queue.offerUnsafe(queue, resubscribed)
        }).pipe(
          Effect.flatMap((listen) => Effect.forkScoped(Effect.catchCause(listen, onFailure))),
          Effect.catchCause(onFailure)
        )
        return queue
      })
    )
    return redis
  })

/**
 * A lazy connection's first attempt, which commands wait for (`Source.connecting`) rather than fail while it is under
 * way: ended by `end` (the attempt's outcome), after `wait` (a server that accepts the connection and never answers),
 * or when the scope closes (a command still waiting then goes on, and fails, rather than wait for ever).
 *
 * @internal
 */
export const firstAttempt = (wait: Duration.Duration): Effect.Effect<
  { readonly end: () => void; readonly connecting: () => Effect.Effect<void> | undefined },
  never,
  Scope.Scope
> =>
  Effect.gen(function*() {
    const done = Deferred.makeUnsafe<void>()
    const end = () => {
      Deferred.doneUnsafe(done, Effect.void)
    }
    yield* Effect.forkScoped(Effect.andThen(Effect.sleep(wait), Effect.sync(end)))
    yield* Effect.addFinalizer(() => Effect.sync(end))
    const waiting = Deferred.await(done)
    return { end, connecting: () => Deferred.isDoneUnsafe(done) ? undefined : waiting }
  })

/**
 * A lazy connection: the client connects in the background and keeps retrying with backoff, so building never waits
 * for Redis. Commands sent while the first connect is under way wait for it (at most `wait`): a program
 * that writes as soon as it starts reaches a Redis that is up. After that the offline queue stays disabled: while the
 * client is not connected every command fails at once with `ClientOfflineError`. Fails only on options node-redis
 * refuses (`makeClientChecked`).
 *
 * @internal
 */
export const makeLazy = (
  options: ClientOptions & { readonly pool?: Redis.PoolOptions | undefined },
  wait: Duration.Duration
): Effect.Effect<Redis.Redis["Service"], ConnectError, Scope.Scope> =>
  Effect.gen(function*() {
    const runSync: RunSync = Effect.runSyncWith(yield* Effect.context<never>())
    const { pool, ...clientOptions } = options
    const client = yield* Effect.acquireRelease(
      makeClientChecked({ ...clientOptions, disableOfflineQueue: true }, "never", runSync, "RedisStore"),
      (created) => Effect.sync(() => destroyClient(created))
    )
    // Ended by the first attempt's outcome: ready, or its first error (refused, say).
    const firstConnect = yield* firstAttempt(wait)
    client.once("ready", firstConnect.end)
    client.once("error", firstConnect.end)
    // Not awaited: the promise settles once connected, or rejects when the client is closed before that.
    client.connect().catch(() => {})
    return yield* makeRedis({ ...fixed(client), connecting: firstConnect.connecting }, { label: "RedisStore", pool })
  })
