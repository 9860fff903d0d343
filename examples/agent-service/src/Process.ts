/**
 * Runs the agent service as a child process, the way a user does (`node src/main.ts`), and talks to it over HTTP:
 * what the integration tests, the walkthrough and the benchmarks drive.
 */
import { Data, Duration, Effect, Schedule } from "effect"
import type { Scope } from "effect"
import { type ChildProcess, spawn } from "node:child_process"
import { mkdtempSync, rmSync } from "node:fs"
import { createServer } from "node:net"
import { tmpdir } from "node:os"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"

/** The service's entry point. */
export const entry = join(dirname(fileURLToPath(import.meta.url)), "main.ts")

export class ProcessError extends Data.TaggedError("ProcessError")<{ readonly message: string }> {}

/** A fresh directory under the system's temporary directory, removed when the scope closes. */
export const tempDir = (prefix: string): Effect.Effect<string, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.sync(() => mkdtempSync(join(tmpdir(), prefix))),
    (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
  )

/** A port nobody listens on right now. */
export const freePort: Effect.Effect<number, ProcessError> = Effect.callback((resume) => {
  const server = createServer()
  server.once("error", (error) => resume(Effect.fail(new ProcessError({ message: error.message }))))
  server.listen(0, "127.0.0.1", () => {
    const address = server.address()
    const port = typeof address === "object" && address !== null ? address.port : 0
    server.close(() => resume(Effect.succeed(port)))
  })
})

/** A parsed JSON body (or the text, when it is not JSON), for the assertions of whoever reads it. */
// oxlint-disable-next-line no-explicit-any -- parsed JSON, checked by the callers' assertions
export type Json = any

export interface Response {
  readonly status: number
  readonly body: Json
  readonly headers: Headers
}

export interface Instance {
  readonly port: number
  readonly base: string
  readonly child: ChildProcess
  /** Everything the process printed so far (stdout and stderr). */
  readonly output: () => string
  readonly request: (
    method: "GET" | "POST",
    path: string,
    options?: {
      readonly body?: unknown
      readonly token?: string | undefined
      readonly raw?: string
      /** Added to (or replacing) `content-type` and the token's `authorization`. */
      readonly headers?: Record<string, string>
    }
  ) => Effect.Effect<Response, ProcessError>
  /** Sends a signal and waits for the exit: the exit code, or the signal that ended it. */
  readonly stop: (signal: NodeJS.Signals) => Effect.Effect<number | NodeJS.Signals>
  /**
   * Sends a signal to the service itself (the pid it printed), not to a wrapper such as `pnpm start` (pnpm exits 143
   * on a SIGTERM of its own, whatever its child does), and waits for the process started to exit.
   */
  readonly stopService: (signal: NodeJS.Signals) => Effect.Effect<number | NodeJS.Signals>
  /** Waits for the process to exit by itself. */
  readonly exited: Effect.Effect<number | NodeJS.Signals>
}

export interface StartOptions {
  readonly env: Record<string, string>
  /** Wait for the listening line (default), or only for the process to be spawned (a config error test). */
  readonly waitForListening?: boolean | undefined
  readonly command?: ReadonlyArray<string> | undefined
  readonly cwd?: string | undefined
}

/** Starts the service; the scope SIGKILLs it if it still runs. */
export const start = (options: StartOptions): Effect.Effect<Instance, ProcessError, Scope.Scope> =>
  Effect.gen(function*() {
    const [command, ...args] = options.command ?? [process.execPath, entry]
    const child = yield* Effect.acquireRelease(
      Effect.sync(() =>
        spawn(command!, args, {
          cwd: options.cwd ?? dirname(dirname(entry)),
          env: { ...process.env, ...options.env },
          stdio: ["ignore", "pipe", "pipe"]
        })
      ),
      (spawned) =>
        Effect.sync(() => spawned.exitCode === null && spawned.signalCode === null && spawned.kill("SIGKILL"))
    )
    let output = ""
    child.stdout!.on("data", (chunk) => (output += String(chunk)))
    child.stderr!.on("data", (chunk) => (output += String(chunk)))
    const exit = new Promise<number | NodeJS.Signals>((resolve) =>
      child.once("exit", (code, signal) => resolve(code ?? signal ?? -1))
    )
    const exited = Effect.promise(() => exit)
    const port = Number(options.env["PORT"] ?? 3000)
    const base = `http://127.0.0.1:${port}`
    if (options.waitForListening !== false) {
      yield* Effect.suspend(() =>
        output.includes("listening on")
          ? Effect.void
          : child.exitCode !== null
          ? Effect.fail(new ProcessError({ message: `exited ${child.exitCode}:\n${output}` }))
          : Effect.fail(new ProcessError({ message: "not listening yet" }))
      ).pipe(
        Effect.retry({
          schedule: Schedule.spaced("50 millis"),
          while: (e) => e.message === "not listening yet",
          times: 600
        })
      )
    }
    const request: Instance["request"] = (method, path, opts) =>
      Effect.tryPromise({
        try: async () => {
          const headers: Record<string, string> = { "content-type": "application/json" }
          if (opts?.token !== undefined) headers["authorization"] = `Bearer ${opts.token}`
          Object.assign(headers, opts?.headers)
          const response = await fetch(`${base}${path}`, {
            method,
            headers,
            ...(opts?.raw !== undefined
              ? { body: opts.raw }
              : opts?.body !== undefined
              ? { body: JSON.stringify(opts.body) }
              : {})
          })
          const text = await response.text()
          let body: unknown = text
          try {
            body = JSON.parse(text)
          } catch {
            // not JSON: kept as text
          }
          return { status: response.status, body, headers: response.headers }
        },
        catch: (cause) => new ProcessError({ message: `${method} ${path}: ${String(cause)}` })
      })
    const stop = (signal: NodeJS.Signals) =>
      Effect.andThen(Effect.sync(() => child.kill(signal)), exited).pipe(
        Effect.timeoutOrElse({
          duration: Duration.seconds(30),
          orElse: () => Effect.sync(() => child.kill("SIGKILL")).pipe(Effect.andThen(exited))
        })
      )
    const stopService = (signal: NodeJS.Signals) =>
      Effect.suspend(() => {
        const pid = Number(/listening on \S+ \(pid (\d+)\)/.exec(output)?.[1] ?? child.pid)
        return Effect.andThen(Effect.sync(() => process.kill(pid, signal)), exited)
      }).pipe(
        Effect.timeoutOrElse({
          duration: Duration.seconds(30),
          orElse: () => Effect.sync(() => child.kill("SIGKILL")).pipe(Effect.andThen(exited))
        })
      )
    return { port, base, child, output: () => output, request, stop, stopService, exited }
  })

/**
 * Starts the service on a free port with a fresh `DATA_DIR` and `token` as its admin token; `env` adds to that or
 * overrides it.
 */
export const startFresh = (
  token: string,
  env: Record<string, string> = {},
  options: Omit<StartOptions, "env"> = {}
): Effect.Effect<Instance, ProcessError, Scope.Scope> =>
  Effect.gen(function*() {
    const port = yield* freePort
    const dataDir = yield* tempDir("agent-service-")
    return yield* start({
      ...options,
      env: { PORT: String(port), DATA_DIR: dataDir, RESILIENCE_ADMIN_TOKEN: token, ...env }
    })
  })

/** Polls `f` until it gives a value, at most `within`. */
export const eventually = <A, E, R>(
  f: Effect.Effect<A, E, R>,
  within: Duration.Input = "10 seconds"
): Effect.Effect<A, E | ProcessError, R> =>
  f.pipe(
    Effect.retry({ schedule: Schedule.spaced("100 millis") }),
    Effect.timeoutOrElse({
      duration: within,
      orElse: () =>
        Effect.fail(new ProcessError({ message: `not within ${Duration.format(Duration.fromInputUnsafe(within))}` }))
    })
  )

/** The admin token the service printed, when it generated one. */
export const printedToken = (output: string): string | undefined =>
  /admin token \(generated, shown once\): ([0-9a-f]+)/.exec(output)?.[1]
