/**
 * The bench's own `redis-server`: started on a free loopback port with no persistence (`--save "" --appendonly no`),
 * and SIGKILLed when the bench process exits, however it exits (normally, by an uncaught error, or by SIGINT /
 * SIGTERM / SIGHUP). A missing binary fails loudly, with how to install it; `REDIS_SERVER` points at another one.
 *
 * Each Redis case starts a server of its own, so that the server's command counters (`INFO commandstats`), which
 * the cases read to verify how many commands a sample sent, count that case's commands only.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { existsSync, mkdtempSync, rmSync } from "node:fs"
import { createConnection, createServer } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"

/** Where `redis-server` is; `REDIS_SERVER` overrides it. */
export const binary = process.env["REDIS_SERVER"] ?? "/usr/bin/redis-server"

/** A running server of the bench. */
export interface BenchRedis {
  readonly port: number
  /** `redis://127.0.0.1:<port>` */
  readonly url: string
  /** Calls per command since the server started, from `INFO commandstats` (lower-case names: `evalsha`, `get`). */
  readonly commandCalls: () => Promise<Record<string, number>>
  /** SIGKILLs the server and waits for it to exit. */
  readonly stop: () => Promise<void>
}

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

/** A port nobody listens on right now: bind port 0 on the loopback, read it, close. */
const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = createServer()
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      const port = typeof address === "object" && address !== null ? address.port : 0
      server.close(() => resolve(port))
    })
  })

/** One inline command over a fresh socket; resolves with the raw reply once it is complete (simple or bulk). */
const command = (port: number, line: string): Promise<string> =>
  new Promise((resolve, reject) => {
    const socket = createConnection({ host: "127.0.0.1", port })
    let buffer = Buffer.alloc(0)
    const done = (error: Error | undefined, reply?: string) => {
      socket.destroy()
      if (error === undefined) resolve(reply!)
      else reject(error)
    }
    socket.setTimeout(2000, () => done(new Error(`redis-server on port ${port}: "${line}" timed out`)))
    socket.once("error", (error) => done(error))
    socket.once("connect", () => socket.write(`${line}\r\n`))
    socket.on("data", (data) => {
      buffer = Buffer.concat([buffer, data])
      const header = buffer.indexOf("\r\n")
      if (header < 0) return
      const first = buffer.subarray(0, header).toString()
      if (first.startsWith("-")) return done(new Error(`redis-server on port ${port}: ${first}`))
      if (!first.startsWith("$")) return done(undefined, first)
      const length = Number(first.slice(1))
      if (buffer.length >= header + 2 + length + 2) {
        done(undefined, buffer.subarray(header + 2, header + 2 + length).toString())
      }
    })
  })

const sleep = (millis: number) => new Promise((resolve) => setTimeout(resolve, millis))

const waitForExit = (child: ChildProcess): Promise<void> =>
  child.exitCode !== null || child.signalCode !== null
    ? Promise.resolve()
    : new Promise((resolve) => child.once("exit", () => resolve()))

/** Parses `INFO commandstats`: `cmdstat_evalsha:calls=12,usec=...` lines into `{ evalsha: 12 }`. */
const parseCommandStats = (info: string): Record<string, number> => {
  const calls: Record<string, number> = {}
  for (const line of info.split("\r\n")) {
    const match = /^cmdstat_([^:]+):calls=(\d+)/.exec(line)
    if (match !== null) calls[match[1]] = Number(match[2])
  }
  return calls
}

const startOnce = async (dir: string): Promise<BenchRedis | undefined> => {
  const port = await freePort()
  const child = spawn(
    binary,
    [
      "--port",
      String(port),
      "--bind",
      "127.0.0.1",
      "--dir",
      dir,
      "--save",
      "",
      "--appendonly",
      "no",
      "--daemonize",
      "no",
      "--loglevel",
      "warning"
    ],
    { cwd: dir, stdio: "ignore" }
  )
  running.add(child)
  // The bench may exit with servers still running: the exit hook kills them.
  child.unref()
  child.once("exit", () => running.delete(child))
  const alive = () => child.exitCode === null && child.signalCode === null
  for (let attempt = 0; attempt < 250 && alive(); attempt++) {
    const pong = await command(port, "PING").catch(() => undefined)
    if (pong === "+PONG") {
      return {
        port,
        url: `redis://127.0.0.1:${port}`,
        commandCalls: async () => parseCommandStats(await command(port, "INFO commandstats")),
        stop: async () => {
          // Unreferenced, the child would not keep the process alive long enough to see it exit.
          child.ref()
          child.kill("SIGKILL")
          await waitForExit(child)
        }
      }
    }
    await sleep(20)
  }
  // It died on start (the port was taken in between, say) or never answered.
  child.kill("SIGKILL")
  await waitForExit(child)
  return undefined
}

/**
 * Starts a `redis-server` for the bench on a free loopback port, answering PING once this resolves. Throws, saying
 * how to install it, when the binary is missing.
 */
export const startRedisServer = async (): Promise<BenchRedis> => {
  if (!existsSync(binary)) {
    throw new Error(
      `${binary} not found: the Redis benchmark cases start their own Redis server. ` +
        "Install it with `apt-get install -y redis-server` (or point REDIS_SERVER at the binary), " +
        "or leave the Redis cases out with --only."
    )
  }
  hookExit()
  const dir = mkdtempSync(join(tmpdir(), "bench-redis-"))
  directories.add(dir)
  for (let attempt = 0; attempt < 3; attempt++) {
    const server = await startOnce(dir)
    if (server !== undefined) return server
  }
  throw new Error(`${binary} did not start (3 attempts on free loopback ports)`)
}
