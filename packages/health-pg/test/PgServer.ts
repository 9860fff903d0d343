/**
 * A throwaway PostgreSQL 15 server for tests that kill and restart it: `initdb` into a temporary directory, `pg_ctl`
 * on a free loopback port, and always stopped and removed when the scope closes.
 *
 * Run as root, the server runs as the `postgres` user (PostgreSQL refuses to run as root).
 */
import { Data, Effect, FileSystem, Path } from "effect"
import type { Scope } from "effect"
import { execFile } from "node:child_process"
import { createServer } from "node:net"

/** Where the PostgreSQL 15 binaries are (Debian/Ubuntu layout); `PG_BIN_DIR` overrides it. */
export const binDir = process.env["PG_BIN_DIR"] ?? "/usr/lib/postgresql/15/bin"

/** A step of the server's life failed. */
export class PgServerError extends Data.TaggedError("PgServerError")<{ readonly message: string }> {}

/** A running server of our own. */
export interface PgServer {
  readonly port: number
  /** Starts the server again (`pg_ctl start -w`): it accepts connections once this succeeds. */
  readonly start: Effect.Effect<void, PgServerError>
  /** Stops the server the hard way (`pg_ctl stop -m immediate`): backends die, clients see their sockets close. */
  readonly kill: Effect.Effect<void, PgServerError>
  /**
   * Makes a hung server: `SIGSTOP`s the postmaster and every backend until the scope closes (then `SIGCONT`s them).
   * Sockets stay open and new connections are accepted by the kernel, but nothing answers.
   */
  readonly freeze: Effect.Effect<void, PgServerError, Scope.Scope>
}

interface RunAs {
  readonly uid?: number
  readonly gid?: number
}

const run = (file: string, args: ReadonlyArray<string>, options: RunAs & { readonly cwd?: string } = {}) =>
  Effect.callback<string, PgServerError>((resume) => {
    const child = execFile(file, args, { ...options, timeout: 15_000 }, (error, stdout, stderr) => {
      resume(
        error === null
          ? Effect.succeed(stdout)
          : Effect.fail(new PgServerError({ message: `${file} ${args.join(" ")} failed: ${error.message}\n${stderr}` }))
      )
    })
    return Effect.sync(() => child.kill("SIGKILL"))
  })

/** A port nobody listens on right now: bind port 0 on the loopback, read it, close. */
export const freePort: Effect.Effect<number, PgServerError> = Effect.callback((resume) => {
  const server = createServer()
  server.once("error", (error) => resume(Effect.fail(new PgServerError({ message: error.message }))))
  server.listen(0, "127.0.0.1", () => {
    const address = server.address()
    const port = typeof address === "object" && address !== null ? address.port : 0
    server.close(() => resume(Effect.succeed(port)))
  })
})

const requireBinaries = Effect.gen(function*() {
  const fs = yield* FileSystem.FileSystem
  for (const binary of ["initdb", "pg_ctl"]) {
    const found = yield* Effect.orElseSucceed(fs.exists(`${binDir}/${binary}`), () => false)
    if (!found) {
      return yield* new PgServerError({
        message: `${binDir}/${binary} not found: these tests start their own PostgreSQL 15 server. ` +
          `Install it with \`apt-get install -y postgresql-15\` (or point PG_BIN_DIR at its bin directory).`
      })
    }
  }
})

// As root, run the server as `postgres`, which owns the temporary directory.
const runAs: Effect.Effect<RunAs, PgServerError> = Effect.suspend(() => {
  if (process.getuid?.() !== 0) return Effect.succeed({})
  return Effect.all({ uid: run("id", ["-u", "postgres"]), gid: run("id", ["-g", "postgres"]) }).pipe(
    Effect.map(({ gid, uid }) => ({ uid: Number(uid.trim()), gid: Number(gid.trim()) })),
    Effect.mapError(() =>
      new PgServerError({ message: "Running as root, but there is no `postgres` user to run PostgreSQL as" })
    )
  )
})

const fail = (error: { readonly message: string }) => new PgServerError({ message: error.message })

const signalAll = (pids: ReadonlyArray<number>, signal: NodeJS.Signals) =>
  Effect.try({
    try: () => pids.forEach((pid) => process.kill(pid, signal)),
    catch: (error) => new PgServerError({ message: `kill -${signal} ${pids.join(" ")}: ${String(error)}` })
  })

/**
 * Creates a temporary directory, `initdb`s a cluster in it and starts it on a free port. Closing the scope stops the
 * server (`-m immediate`) and removes the directory, whatever happened.
 */
export const make: Effect.Effect<PgServer, PgServerError, Scope.Scope | FileSystem.FileSystem | Path.Path> = Effect
  .gen(function*() {
    yield* requireBinaries
    const fs = yield* FileSystem.FileSystem
    const path = yield* Path.Path
    const as = yield* runAs

    const dir = yield* Effect.acquireRelease(
      fs.makeTempDirectory({ prefix: "health-pg-" }).pipe(Effect.mapError(fail)),
      (created) => Effect.ignore(fs.remove(created, { recursive: true }))
    )
    if (as.uid !== undefined && as.gid !== undefined) {
      yield* fs.chown(dir, as.uid, as.gid).pipe(Effect.mapError(fail))
    }
    const data = path.join(dir, "data")
    yield* run(`${binDir}/initdb`, [
      "-D",
      data,
      "--auth=trust",
      "--username=postgres",
      "--locale=C",
      "--encoding=UTF8",
      "--no-sync",
      "--no-instructions"
    ], { ...as, cwd: dir })
    const port = yield* freePort
    // Appending keeps the file's owner. Loopback only, sockets in our directory, no durability needed.
    yield* fs.writeFileString(
      path.join(data, "postgresql.conf"),
      `\nport = ${port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '${dir}'\nfsync = off\n`,
      { flag: "a" }
    ).pipe(Effect.mapError(fail))

    const pgCtl = (args: ReadonlyArray<string>) => run(`${binDir}/pg_ctl`, ["-D", data, ...args], { ...as, cwd: dir })
    const start = Effect.asVoid(pgCtl(["-l", path.join(dir, "server.log"), "-w", "-t", "10", "start"]))
    const kill = Effect.asVoid(pgCtl(["-m", "immediate", "-w", "-t", "10", "stop"]))
    const serverPids = fs.readFileString(path.join(data, "postmaster.pid")).pipe(
      Effect.mapError(fail),
      Effect.flatMap((pidFile) => {
        const postmaster = Number(pidFile.split("\n")[0])
        return run("ps", ["-o", "pid=", "--ppid", String(postmaster)]).pipe(
          Effect.map((out) => [postmaster, ...out.split("\n").filter((line) => line.trim() !== "").map(Number)])
        )
      })
    )
    const freeze = Effect.asVoid(Effect.acquireRelease(
      Effect.tap(serverPids, (pids) => signalAll(pids, "SIGSTOP")),
      (pids) => Effect.ignore(signalAll(pids, "SIGCONT"))
    ))

    // The stop goes in first, so that a start that fails half-way (say, `-w` timing out) is stopped too.
    yield* Effect.addFinalizer(() => Effect.ignore(kill))
    yield* start
    return { port, start, kill, freeze }
  })
