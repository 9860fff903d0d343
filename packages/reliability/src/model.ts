/**
 * The breaker's model-based test (packages/core/test/CircuitBreaker.model.test.ts) at 10,000 sequences per
 * property (`MODEL_RUNS`) in `--long`, run by vitest in a child process; a full run without `--long` runs it at the unit
 * suite's 1,000 (about a minute at 10,000 on two cores); `--quick` leaves it out.
 */
import { Effect } from "effect"
import { spawn } from "node:child_process"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import * as Harness from "./Harness.ts"
import type { Result, Scenario } from "./Scenario.ts"

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..")
const file = "packages/core/test/CircuitBreaker.model.test.ts"

const runVitest = (runs: number) =>
  Effect.callback<{ readonly code: number | null; readonly output: string }>((resume) => {
    const child = spawn(process.execPath, [join(root, "node_modules", "vitest", "vitest.mjs"), "run", file], {
      cwd: root,
      env: { ...process.env, MODEL_RUNS: String(runs), CI: "1", NO_COLOR: "1" },
      stdio: ["ignore", "pipe", "pipe"]
    })
    let output = ""
    child.stdout.on("data", (chunk) => (output += String(chunk)))
    child.stderr.on("data", (chunk) => (output += String(chunk)))
    child.once("close", (code) => resume(Effect.succeed({ code, output })))
    return Effect.sync(() => child.kill("SIGKILL"))
  })

export const model: Scenario = {
  name: "breaker-model",
  title: "The circuit breaker's model-based test (10,000 sequences per property in --long)",
  quick: false,
  run: (ctx) =>
    Effect.gen(function*() {
      const runs = ctx.long ? 10_000 : 1_000
      const started = yield* Harness.now
      yield* ctx.log(`breaker-model: vitest run ${file} with MODEL_RUNS=${runs}`)
      const { code, output } = yield* runVitest(runs)
      const elapsed = yield* Harness.since(started)
      const passed = Number(/Tests\s+.*?(\d+) passed/.exec(output)?.[1] ?? 0)
      const failedTests = Number(/Tests\s+(?:.*?)(\d+) failed/.exec(output)?.[1] ?? 0)
      const ok = code === 0 && passed > 0 && failedTests === 0
      return {
        rows: [
          { metric: "sequences per property", value: String(runs) },
          { metric: "properties passed", value: String(passed) },
          { metric: "properties failed", value: String(failedTests), target: "0", ok },
          { metric: "time", value: Harness.ms(elapsed) }
        ],
        failed: ok
          ? []
          : [`model test: exit ${code}, ${passed} passed, ${failedTests} failed:\n${output.slice(-3000)}`],
        figures: { runs, passed, failed: failedTests, elapsed_ms: elapsed }
      } satisfies Result
    })
}

/** The runner's name for it. */
export const scenario: Scenario = model

export const scenarios: ReadonlyArray<Scenario> = [model]
