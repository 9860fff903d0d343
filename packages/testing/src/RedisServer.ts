/**
 * A throwaway `redis-server` (and sentinels) for the redis tests and the bench: started on a free loopback port, no
 * persistence (`--save "" --appendonly no`) unless asked for one in a temporary directory, and always SIGKILLed (and
 * the directory removed) when the scope closes, whatever happened. Should the process go first (an uncaught error,
 * SIGINT, SIGTERM, SIGHUP), its exit kills every server it started too, so none outlives it.
 *
 * A missing binary fails (never skips) with how to install it; `REDIS_SERVER` points at another one.
 */
import { Data, Effect, Schedule } from "effect"
import type { Scope } from "effect"
import { type ChildProcess, spawn } from "node:child_process"
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs"
import { createConnection, createServer, type Socket } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"

/** Where `redis-server` is; `REDIS_SERVER` overrides it. */
export const binary = process.env["REDIS_SERVER"] ?? "/usr/bin/redis-server"

/** A step of the server's life failed. */
export class RedisServerError extends Data.TaggedError("RedisServerError")<{ readonly message: string }> {}

/** A running server of our own. */
export interface RedisServer {
  readonly port: number
  /** `redis://127.0.0.1:<port>` */
  readonly url: string
  /** SIGKILLs the server and waits for it to exit: clients see their sockets close. */
  readonly kill: Effect.Effect<void>
  /** Kills the server if it runs, then starts it again on the same port; it answers PING once this succeeds. */
  readonly restart: Effect.Effect<void, RedisServerError>
  /**
   * Kills the server if it runs, empties its directory, then starts it again on the same port: a server that lost its
   * disk (no append-only file, no RDB) and comes back with no data, not even with `persistence`.
   */
  readonly restartEmpty: Effect.Effect<void, RedisServerError>
  /** SIGSTOPs the server until the scope closes (then SIGCONTs it): sockets stay open, nothing answers. */
  readonly freeze: Effect.Effect<void, never, Scope.Scope>
}

/** A port nobody listens on right now: bind port 0 on the loopback, read it, close. */
export const freePort: Effect.Effect<number, RedisServerError> = Effect.callback((resume) => {
  const server = createServer()
  server.once("error", (error) => resume(Effect.fail(new RedisServerError({ message: error.message }))))
  server.listen(0, "127.0.0.1", () => {
    const address = server.address()
    const port = typeof address === "object" && address !== null ? address.port : 0
    server.close(() => resume(Effect.succeed(port)))
  })
})

/** One raw `PING` over a fresh socket: succeeds on `+PONG`. */
const ping = (port: number): Effect.Effect<void, RedisServerError> =>
  Effect.callback((resume) => {
    const socket = createConnection({ host: "127.0.0.1", port })
    const fail = (message: string) => {
      socket.destroy()
      resume(Effect.fail(new RedisServerError({ message })))
    }
    socket.setTimeout(500, () => fail("PING timed out"))
    socket.once("error", (error) => fail(error.message))
    socket.once("connect", () => socket.write("PING\r\n"))
    socket.once("data", (data) => {
      socket.destroy()
      const reply = data.toString()
      // A server that wants a password answers all the same: it is up.
      const up = reply.startsWith("+PONG") || reply.startsWith("-NOAUTH")
      resume(up ? Effect.void : Effect.fail(new RedisServerError({ message: reply })))
    })
    return Effect.sync(() => socket.destroy())
  })

const requireBinary = (file: string) =>
  Effect.suspend(() =>
    existsSync(file) ? Effect.void : Effect.fail(
      new RedisServerError({
        message: `${file} not found: the Redis tests and benchmarks start their own Redis server. ` +
          "Install it with `apt-get install -y redis-server` (or point REDIS_SERVER at the binary)."
      })
    )
  )

// Every server and directory of this process, for the exit hook: a scope that never closes (the process was killed,
// or exited on an uncaught error) must not leave servers behind.
const running = new Set<ChildProcess>()
const directories = new Set<string>()

const killAll = () => {
  for (const child of running) child.kill("SIGKILL")
  running.clear()
  for (const dir of directories) rmSync(dir, { recursive: true, force: true })
  directories.clear()
}

let hooked = false

// Once: kill every server when the process goes, and let a signal go on to do what it would have done.
const hookExit = () => {
  if (hooked) return
  hooked = true
  process.on("exit", killAll)
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    process.once(signal, () => {
      killAll()
      process.kill(process.pid, signal)
    })
  }
}

const waitForExit = (child: ChildProcess): Effect.Effect<void> =>
  Effect.callback<void>((resume) => {
    if (child.exitCode !== null || child.signalCode !== null) return resume(Effect.void)
    child.once("exit", () => resume(Effect.void))
  })

// The start of the error when the server dies before it answers (see `make`, which retries then).
const exitedOnStart = "redis-server exited on start"

/** What `launch` starts: the binary, its arguments (a config file first, if any), and where it listens. */
interface Launch {
  readonly file: string
  readonly port: number
  readonly dir: string
  readonly args: ReadonlyArray<string>
}

/**
 * Spawns the process, waits until it answers `PING` (or fails if it exits first), and SIGKILLs it when the scope
 * closes. Returns `kill` and `start` for restarts on the same port.
 */
const launch = (launched: Launch): Effect.Effect<
  {
    readonly kill: Effect.Effect<void>
    readonly start: Effect.Effect<void, RedisServerError>
    readonly signal: (name: NodeJS.Signals) => Effect.Effect<void>
  },
  RedisServerError,
  Scope.Scope
> =>
  Effect.gen(function*() {
    let current: ChildProcess | undefined

    const kill = Effect.suspend(() => {
      const child = current
      current = undefined
      if (child === undefined) return Effect.void
      // Unreferenced, the child would not keep the process alive long enough to see it exit.
      child.ref()
      child.kill("SIGKILL")
      return waitForExit(child)
    })

    const start = Effect.gen(function*() {
      const child = yield* Effect.sync(() => {
        hookExit()
        const spawned = spawn(launched.file, [...launched.args], { cwd: launched.dir, stdio: "ignore" })
        running.add(spawned)
        spawned.once("exit", () => running.delete(spawned))
        // A process done with its work may exit with a server still running: the exit hook kills it.
        spawned.unref()
        return spawned
      })
      current = child
      // Fails the wait below if the server dies on start (say, the port was taken in between).
      const exited = Effect.flatMap(
        waitForExit(child),
        () => Effect.fail(new RedisServerError({ message: `${exitedOnStart} (code ${child.exitCode})` }))
      )
      yield* Effect.raceFirst(
        ping(launched.port).pipe(Effect.retry(Schedule.spaced("20 millis").pipe(Schedule.upTo({ times: 250 })))),
        exited
      )
    })

    // The kill goes in first, so that a start that fails half-way is cleaned up too.
    yield* Effect.addFinalizer(() => kill)
    yield* start
    const signal = (name: NodeJS.Signals) => Effect.sync(() => void current?.kill(name))
    return { kill, start, signal }
  })

const tempDir = (prefix: string) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const created = mkdtempSync(join(tmpdir(), prefix))
      directories.add(created)
      return created
    }),
    (created) =>
      Effect.sync(() => {
        directories.delete(created)
        rmSync(created, { recursive: true, force: true })
      })
  )

/** Options shared by `make`, `makeOnPort` and `makeReplica`. */
export interface Options {
  readonly persistence?: boolean
  readonly binary?: string
  /** `requirepass`, and `masterauth` for a replica (the same password on every server). */
  readonly password?: string
}

const serve = (
  port: number,
  options: Options,
  extraArgs: ReadonlyArray<string>
): Effect.Effect<RedisServer, RedisServerError, Scope.Scope> =>
  Effect.gen(function*() {
    const file = options.binary ?? binary
    yield* requireBinary(file)
    const dir = yield* tempDir("redis-server-")
    const args = [
      "--port",
      String(port),
      "--bind",
      "127.0.0.1",
      "--dir",
      dir,
      "--save",
      "",
      "--appendonly",
      options.persistence === true ? "yes" : "no",
      "--appendfsync",
      "always",
      "--daemonize",
      "no",
      "--loglevel",
      "warning",
      // A replica syncs at once instead of after the 5 s a diskless sync waits by default for more replicas.
      "--repl-diskless-sync-delay",
      "0",
      ...(options.password === undefined ? [] : ["--requirepass", options.password, "--masterauth", options.password]),
      ...extraArgs
    ]
    const { kill, signal, start } = yield* launch({ file, port, dir, args })
    const freeze = Effect.asVoid(Effect.acquireRelease(signal("SIGSTOP"), () => signal("SIGCONT")))
    // The server is dead (`kill` waits for its exit) before its files go, so nothing writes into the emptied directory.
    const empty = Effect.sync(() => {
      for (const entry of readdirSync(dir)) rmSync(join(dir, entry), { recursive: true, force: true })
    })
    return {
      port,
      url: `redis://127.0.0.1:${port}`,
      kill,
      restart: Effect.andThen(kill, start),
      restartEmpty: kill.pipe(Effect.andThen(empty), Effect.andThen(start)),
      freeze
    }
  })

/**
 * Starts `redis-server` on a free loopback port. With `persistence`, it keeps an append-only file in a temporary
 * directory, so that a restart finds the data again. A missing binary fails (never skips) with how to install it.
 */
export const make = (options: Options = {}): Effect.Effect<RedisServer, RedisServerError, Scope.Scope> =>
  Effect.flatMap(freePort, (port) => serve(port, options, [])).pipe(
    // Another process may take the free port before the server binds it: then it exits at once, and a new port will do.
    Effect.retry({ times: 2, while: (error) => error.message.startsWith(exitedOnStart) })
  )

/**
 * Starts `redis-server` on the given port (say, one from `freePort` that a client already tries to reach).
 */
export const makeOnPort = (
  port: number,
  options: Options = {}
): Effect.Effect<RedisServer, RedisServerError, Scope.Scope> => serve(port, options, [])

/**
 * Starts a replica of `primary` on a free port (`--replicaof 127.0.0.1 <port>`) and waits until its link to the
 * primary is up (`master_link_status:up`), so that a write acknowledged by `WAIT 1 0` on the primary is on it.
 */
export const makeReplica = (
  primary: { readonly port: number },
  options: Options = {}
): Effect.Effect<RedisServer, RedisServerError, Scope.Scope> =>
  Effect.gen(function*() {
    const port = yield* freePort
    const replica = yield* serve(port, options, ["--replicaof", "127.0.0.1", String(primary.port)])
    yield* command(port, ["INFO", "replication"], { password: options.password }).pipe(
      Effect.flatMap((info) =>
        info.includes("master_link_status:up")
          ? Effect.void
          : Effect.fail(new RedisServerError({ message: `replica on ${port} not in sync yet` }))
      ),
      Effect.retry(Schedule.spaced("20 millis").pipe(Schedule.upTo({ duration: "5 seconds" })))
    )
    return replica
  })

/** One client's network path to a server, which a test can cut and restore. */
export interface RedisProxy {
  readonly port: number
  /** `redis://127.0.0.1:<port>` */
  readonly url: string
  /** Destroys every connection through it and refuses new ones: the client is cut off, the server runs on. */
  readonly cut: Effect.Effect<void>
  /** Lets connections through again. */
  readonly restore: Effect.Effect<void>
  /**
   * Arms a hold: the first connection whose client then sends `marker` (bytes of a command: a channel name, say)
   * gets nothing back from the server, from that chunk's replies on, until `release`: what a slow client would read
   * at once.
   */
  readonly holdRepliesAfter: (marker: string) => Effect.Effect<void>
  /** Writes what the held connection was kept from in one write (so in one read of the client's); ends the hold. */
  readonly release: Effect.Effect<void>
}

/**
 * A TCP proxy on a free loopback port to the server on `target`, closed with the scope: a client connected through it
 * can be cut off from the server (a partition) while others still reach it.
 */
export const makeProxy = (target: { readonly port: number }): Effect.Effect<RedisProxy, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.callback<{ readonly proxy: RedisProxy; readonly close: () => void }>((resume) => {
      const sockets = new Set<Socket>()
      let up = true
      const dropAll = () => {
        for (const socket of sockets) socket.destroy()
        sockets.clear()
      }
      // The hold: armed with a marker, then on the connection that sent it, with the replies kept meanwhile.
      let marker: string | undefined
      let held: { readonly client: Socket; readonly replies: Array<Buffer> } | undefined
      const server = createServer((client) => {
        if (!up) return client.destroy()
        const upstream = createConnection({ host: "127.0.0.1", port: target.port })
        sockets.add(client)
        sockets.add(upstream)
        client.on("data", (chunk: Buffer) => {
          if (marker !== undefined && held === undefined && chunk.includes(marker)) {
            marker = undefined
            held = { client, replies: [] }
          }
          upstream.write(chunk)
        })
        upstream.on("data", (chunk: Buffer) => {
          if (held !== undefined && held.client === client) held.replies.push(chunk)
          else client.write(chunk)
        })
        // Either side going closes both, as a lost path would.
        const end = () => {
          client.destroy()
          upstream.destroy()
          sockets.delete(client)
          sockets.delete(upstream)
        }
        for (const socket of [client, upstream]) {
          socket.on("error", end)
          socket.on("close", end)
        }
      })
      server.listen(0, "127.0.0.1", () => {
        const address = server.address()
        const port = typeof address === "object" && address !== null ? address.port : 0
        resume(Effect.succeed({
          proxy: {
            port,
            url: `redis://127.0.0.1:${port}`,
            cut: Effect.sync(() => {
              up = false
              dropAll()
            }),
            restore: Effect.sync(() => {
              up = true
            }),
            holdRepliesAfter: (text) =>
              Effect.sync(() => {
                marker = text
              }),
            release: Effect.sync(() => {
              if (held === undefined) return
              const { client, replies } = held
              held = undefined
              if (replies.length > 0) client.write(Buffer.concat(replies))
            })
          },
          close: () => {
            up = false
            dropAll()
            server.close()
          }
        }))
      })
    }),
    ({ close }) => Effect.sync(close)
  ).pipe(Effect.map(({ proxy }) => proxy))

/** A running sentinel of our own. */
export interface RedisSentinelServer {
  readonly port: number
  /** SIGKILLs the sentinel and waits for it to exit. */
  readonly kill: Effect.Effect<void>
}

/** Options for `makeSentinel`. */
export interface SentinelOptions {
  /** The master's name, as clients ask for it. */
  readonly masterName: string
  /** The port of the master it monitors (on 127.0.0.1). */
  readonly masterPort: number
  /** How many sentinels must agree that the master is down. Default: 1. */
  readonly quorum?: number
  /** `down-after-milliseconds`: how long the master may not answer before it is down. Default: 500. */
  readonly downAfterMillis?: number
  /** `failover-timeout`, in milliseconds. Default: 2000. */
  readonly failoverTimeoutMillis?: number
  /** `auth-pass`: the password of the master and its replicas. */
  readonly authPass?: string
  readonly binary?: string
  /** The port to listen on (say, one from `freePort` that a client already asks); `makeSentinel` only. Default: free. */
  readonly port?: number
}

/**
 * Starts a sentinel (`redis-server FILE --sentinel`) monitoring the master on a free port, with its config file in a
 * temporary directory (sentinels rewrite it). It returns once the sentinel answers and knows the master's replicas
 * (`SENTINEL replicas`), which it learns from the master's `INFO`: a failover needs one.
 */
export const makeSentinel = (
  options: SentinelOptions
): Effect.Effect<RedisSentinelServer, RedisServerError, Scope.Scope> =>
  Effect.gen(function*() {
    const file = options.binary ?? binary
    yield* requireBinary(file)
    const dir = yield* tempDir("redis-sentinel-")
    const port = options.port ?? (yield* freePort)
    const config = join(dir, "sentinel.conf")
    yield* Effect.sync(() =>
      writeFileSync(
        config,
        [
          `port ${port}`,
          "bind 127.0.0.1",
          "daemonize no",
          "loglevel warning",
          `dir ${dir}`,
          "sentinel resolve-hostnames no",
          `sentinel monitor ${options.masterName} 127.0.0.1 ${options.masterPort} ${options.quorum ?? 1}`,
          `sentinel down-after-milliseconds ${options.masterName} ${options.downAfterMillis ?? 500}`,
          `sentinel failover-timeout ${options.masterName} ${options.failoverTimeoutMillis ?? 2000}`,
          `sentinel parallel-syncs ${options.masterName} 1`,
          ...(options.authPass === undefined ? [] : [`sentinel auth-pass ${options.masterName} ${options.authPass}`]),
          ""
        ].join("\n")
      )
    )
    const { kill } = yield* launch({ file, port, dir, args: [config, "--sentinel"] })
    yield* command(port, ["SENTINEL", "replicas", options.masterName]).pipe(
      Effect.flatMap((reply) =>
        reply.startsWith("*0")
          ? Effect.fail(new RedisServerError({ message: `sentinel on ${port} knows no replica yet` }))
          : Effect.void
      ),
      Effect.retry(Schedule.spaced("50 millis").pipe(Schedule.upTo({ duration: "15 seconds" })))
    )
    return { port, kill }
  })

/** Where the RESP reply starting at `at` ends, or -1 while it is incomplete. */
const replyEnd = (reply: string, at: number): number => {
  const line = reply.indexOf("\r\n", at)
  if (line === -1) return -1
  const length = Number(reply.slice(at + 1, line))
  switch (reply[at]) {
    case "$":
      return length < 0 ? line + 2 : reply.length >= line + 2 + length + 2 ? line + 2 + length + 2 : -1
    case "*": {
      let end = line + 2
      for (let i = 0; i < length && end !== -1; i++) end = replyEnd(reply, end)
      return end
    }
    default:
      return line + 2
  }
}

const encode = (args: ReadonlyArray<string>): string =>
  `*${args.length}\r\n${args.map((arg) => `$${Buffer.byteLength(arg)}\r\n${arg}\r\n`).join("")}`

/**
 * Sends one command over a fresh socket and returns the raw RESP reply (enough for tests that look for a substring);
 * with `password`, an `AUTH` goes first on the same socket, and its reply is not part of the result.
 */
export const command = (
  port: number,
  args: ReadonlyArray<string>,
  options?: { readonly password?: string | undefined }
): Effect.Effect<string, RedisServerError> =>
  Effect.callback((resume) => {
    const socket = createConnection({ host: "127.0.0.1", port })
    const auth = options?.password === undefined ? "" : encode(["AUTH", options.password])
    let reply = ""
    const done = (effect: Effect.Effect<string, RedisServerError>) => {
      socket.destroy()
      resume(effect)
    }
    socket.setTimeout(1000, () => done(Effect.fail(new RedisServerError({ message: `${args[0]} timed out` }))))
    socket.once("error", (error) => done(Effect.fail(new RedisServerError({ message: error.message }))))
    socket.once("connect", () => socket.write(auth + encode(args)))
    socket.on("data", (data) => {
      reply += data.toString()
      const start = auth === "" ? 0 : replyEnd(reply, 0)
      if (start === -1) return
      if (auth !== "" && !reply.startsWith("+OK")) {
        return done(Effect.fail(new RedisServerError({ message: `AUTH: ${reply.slice(0, start).trim()}` })))
      }
      if (replyEnd(reply, start) !== -1) done(Effect.succeed(reply.slice(start)))
    })
    return Effect.sync(() => socket.destroy())
  })

/**
 * Starts `count` sentinels monitoring the same master and waits until each knows the others (they find each other
 * through the master's hello channel, every 2 seconds): a quorum above 1 needs them to.
 */
export const makeSentinels = (
  count: number,
  options: SentinelOptions
): Effect.Effect<ReadonlyArray<RedisSentinelServer>, RedisServerError, Scope.Scope> =>
  Effect.gen(function*() {
    const sentinels = yield* Effect.forEach(Array.from({ length: count }), () => makeSentinel(options), {
      concurrency: "unbounded"
    })
    yield* Effect.forEach(sentinels, (sentinel) =>
      command(sentinel.port, ["SENTINEL", "sentinels", options.masterName]).pipe(
        Effect.flatMap((reply) =>
          reply.startsWith(`*${count - 1}\r\n`)
            ? Effect.void
            : Effect.fail(
              new RedisServerError({ message: `sentinel on ${sentinel.port} does not know the others yet` })
            )
        ),
        Effect.retry(Schedule.spaced("100 millis").pipe(Schedule.upTo({ duration: "15 seconds" })))
      ), { concurrency: "unbounded", discard: true })
    return sentinels
  })

/**
 * Calls per command since the server started, from `INFO commandstats` (lower-case names: `evalsha`, `get`): what a
 * server says it ran, to check a claim of so many round trips per call.
 */
export const commandCalls = (port: number): Effect.Effect<Record<string, number>, RedisServerError> =>
  Effect.map(command(port, ["INFO", "commandstats"]), (info) => {
    const calls: Record<string, number> = {}
    for (const line of info.split("\r\n")) {
      const match = /^cmdstat_([^:]+):calls=(\d+)/.exec(line)
      if (match !== null) calls[match[1]] = Number(match[2])
    }
    return calls
  })
