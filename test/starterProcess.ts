/**
 * Runs the starter program as a user would: a `node` process of its own, its output collected, killed if it does not
 * stop by itself within `timeoutMillis`; and what it prints whatever Redis does.
 */
import { assert } from "@effect/vitest"
import { Effect } from "effect"
import { spawn } from "node:child_process"

/** How a run ended: its exit code (null when killed), output and wall-clock duration. */
export interface Run {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
  readonly millis: number
}

/** Runs `command <args>` in `cwd` with `env` added to this process' environment. */
export const runProcess = (options: {
  readonly command: string
  readonly args: ReadonlyArray<string>
  readonly cwd: string
  readonly env?: Record<string, string> | undefined
  readonly timeoutMillis: number
}): Effect.Effect<Run> =>
  Effect.callback<Run>((resume) => {
    const startedAt = performance.now()
    const child = spawn(options.command, [...options.args], {
      cwd: options.cwd,
      env: { ...process.env, ...options.env },
      stdio: ["ignore", "pipe", "pipe"]
    })
    let stdout = ""
    let stderr = ""
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()))
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()))
    const timer = setTimeout(() => child.kill("SIGKILL"), options.timeoutMillis)
    child.once("close", (code) => {
      clearTimeout(timer)
      resume(Effect.succeed({ code, stdout, stderr, millis: performance.now() - startedAt }))
    })
    return Effect.sync(() => {
      clearTimeout(timer)
      child.kill("SIGKILL")
    })
  })

/** Runs `node <args>` with the node that runs the tests. */
export const runNode = (options: {
  readonly args: ReadonlyArray<string>
  readonly cwd: string
  readonly env?: Record<string, string> | undefined
  readonly timeoutMillis: number
}): Effect.Effect<Run> => runProcess({ ...options, command: process.execPath })

/** What the starter prints whatever Redis does: the breakers' story. */
export const assertStory = (stdout: string) => {
  const lines = stdout.trim().split("\n")
  assert.strictEqual(lines.filter((line) => line.startsWith("round ")).length, 9, stdout)
  // The quote API goes down: the last good quote answers, from the API's error and then from the open breaker.
  assert.include(stdout, "round 4: EFCT 100.30 (last good, QuoteError)")
  assert.include(stdout, "round 7: EFCT 100.30 (last good, CircuitBreakerError)")
  // The breaker let a probe through once its half second was up, and the API answered: closed again.
  assert.include(stdout, "round 9: EFCT 101.40")
  assert.include(stdout, "quotes breaker: Closed")
  // The keyed breaker: only the "us" circuit opened.
  assert.include(stdout, "round 3: EFCT 100.30; shipped via eu, us: rejected (CircuitOpen)")
  assert.include(stdout, "shipping: eu Closed, us Open")
}
