/**
 * The writer child process (writer.ts) as the FallbackStore scenarios drive it: its stdout lines as they come, a
 * wait for a line, SIGKILL, and the exit.
 */
import { Data, Duration, Effect, Schedule } from "effect"
import type { Scope } from "effect"
import { type ChildProcess, spawn } from "node:child_process"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"

const writer = join(dirname(fileURLToPath(import.meta.url)), "writer.ts")

export class ChildError extends Data.TaggedError("ChildError")<{ readonly message: string }> {}

export interface Writer {
  readonly child: ChildProcess
  readonly pid: number
  /** The stdout lines so far. */
  readonly lines: () => ReadonlyArray<string>
  readonly stderr: () => string
  /** The first line matching, within `within`. */
  readonly waitFor: (match: RegExp, within?: Duration.Input) => Effect.Effect<RegExpExecArray, ChildError>
  readonly kill: (signal: NodeJS.Signals) => Effect.Effect<number | NodeJS.Signals>
  readonly exited: Effect.Effect<number | NodeJS.Signals>
}

/** Starts `writer.ts` with the arguments; the scope SIGKILLs it if it still runs. */
export const start = (args: ReadonlyArray<string>): Effect.Effect<Writer, never, Scope.Scope> =>
  Effect.gen(function*() {
    const child = yield* Effect.acquireRelease(
      Effect.sync(() => spawn(process.execPath, [writer, ...args], { stdio: ["ignore", "pipe", "pipe"] })),
      (spawned) =>
        Effect.sync(() => spawned.exitCode === null && spawned.signalCode === null && spawned.kill("SIGKILL"))
    )
    const lines: Array<string> = []
    let partial = ""
    let stderr = ""
    child.stdout!.on("data", (chunk) => {
      const parts = (partial + String(chunk)).split("\n")
      partial = parts.pop() ?? ""
      lines.push(...parts)
    })
    child.stderr!.on("data", (chunk) => (stderr += String(chunk)))
    // "close", not "exit": every line the process wrote has been read by then.
    const exit = new Promise<number | NodeJS.Signals>((resolve) =>
      child.once("close", (code, signal) => resolve(code ?? signal ?? -1))
    )
    const exited = Effect.promise(() => exit)
    const waitFor = (match: RegExp, within: Duration.Input = "20 seconds") =>
      Effect.suspend(() => {
        for (const line of lines) {
          const found = match.exec(line)
          if (found !== null) return Effect.succeed(found)
        }
        return child.exitCode !== null || child.signalCode !== null
          ? Effect.fail(new ChildError({ message: `writer exited (${child.exitCode ?? child.signalCode}): ${stderr}` }))
          : Effect.fail(new ChildError({ message: "not yet" }))
      }).pipe(
        Effect.retry({ schedule: Schedule.spaced("10 millis"), while: (e) => e.message === "not yet" }),
        Effect.timeoutOrElse({
          duration: within,
          orElse: () =>
            Effect.fail(
              new ChildError({
                message: `no line ${match} within ${Duration.format(Duration.fromInputUnsafe(within))}: ${stderr}`
              })
            )
        })
      )
    const kill = (signal: NodeJS.Signals) => Effect.andThen(Effect.sync(() => child.kill(signal)), exited)
    return { child, pid: child.pid ?? -1, lines: () => lines, stderr: () => stderr, waitFor, kill, exited }
  })
