/**
 * A throwaway `redis-server` for tests that kill and restart it: started on a free loopback port, no persistence
 * (`--save "" --appendonly no`) unless asked for one in a temporary directory, and always SIGKILLed (and the directory
 * removed) when the scope closes, whatever happened.
 */
import { Data, Effect, Schedule } from "effect"
import type { Scope } from "effect"
import { type ChildProcess, spawn } from "node:child_process"
import { existsSync, mkdtempSync, rmSync } from "node:fs"
import { createConnection, createServer } from "node:net"
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
      resume(reply.startsWith("+PONG") ? Effect.void : Effect.fail(new RedisServerError({ message: reply })))
    })
    return Effect.sync(() => socket.destroy())
  })

const requireBinary = (file: string) =>
  Effect.suspend(() =>
    existsSync(file) ? Effect.void : Effect.fail(
      new RedisServerError({
        message: `${file} not found: these tests start their own Redis server. ` +
          "Install it with `apt-get install -y redis-server` (or point REDIS_SERVER at the binary)."
      })
    )
  )

const waitForExit = (child: ChildProcess): Effect.Effect<void> =>
  Effect.callback<void>((resume) => {
    if (child.exitCode !== null || child.signalCode !== null) return resume(Effect.void)
    child.once("exit", () => resume(Effect.void))
  })

/**
 * Starts `redis-server` on a free loopback port. With `persistence`, it keeps an append-only file in a temporary
 * directory, so that a restart finds the data again. A missing binary fails (never skips) with how to install it.
 */
export const make = (
  options: { readonly persistence?: boolean; readonly binary?: string } = {}
): Effect.Effect<RedisServer, RedisServerError, Scope.Scope> =>
  Effect.gen(function*() {
    const file = options.binary ?? binary
    yield* requireBinary(file)
    const dir = yield* Effect.acquireRelease(
      Effect.sync(() => mkdtempSync(join(tmpdir(), "redis-server-"))),
      (created) => Effect.sync(() => rmSync(created, { recursive: true, force: true }))
    )
    const port = yield* freePort
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
      "warning"
    ]
    let current: ChildProcess | undefined

    const kill = Effect.suspend(() => {
      const child = current
      current = undefined
      if (child === undefined) return Effect.void
      child.kill("SIGKILL")
      return waitForExit(child)
    })

    const start = Effect.gen(function*() {
      const child = yield* Effect.sync(() => spawn(file, args, { cwd: dir, stdio: "ignore" }))
      current = child
      // Fails the wait below if the server dies on start (say, the port was taken in between).
      const exited = Effect.flatMap(
        waitForExit(child),
        () => Effect.fail(new RedisServerError({ message: `redis-server exited on start (code ${child.exitCode})` }))
      )
      yield* Effect.raceFirst(
        ping(port).pipe(Effect.retry(Schedule.spaced("20 millis").pipe(Schedule.upTo({ times: 250 })))),
        exited
      )
    })

    // The kill goes in first, so that a start that fails half-way is cleaned up too.
    yield* Effect.addFinalizer(() => kill)
    yield* start
    const signal = (name: NodeJS.Signals) => Effect.sync(() => current?.kill(name))
    const freeze = Effect.asVoid(Effect.acquireRelease(signal("SIGSTOP"), () => signal("SIGCONT")))
    return { port, url: `redis://127.0.0.1:${port}`, kill, restart: Effect.andThen(kill, start), freeze }
  })
