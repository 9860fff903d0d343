/**
 * `pnpm reliability [--quick] [--minutes N] [--long] [--only name[,name]] [--report file.md]`: runs the scenarios one
 * after the other (each in its own scope: its servers and processes are stopped when it ends), writes
 * docs/reliability.md (or the --report file) and prints one JSON line on stdout. Exit 1 when a scenario failed (a
 * lost acknowledged write, a 500, an auth bypass) or could not run.
 */
import { NodeRuntime } from "@effect/platform-node"
import { Cause, Clock, Effect, Exit } from "effect"
import { spawnSync } from "node:child_process"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import * as diskFull from "./diskFull.ts"
import * as fleet from "./fleet.ts"
import * as fleet3 from "./fleet3.ts"
import * as processKill from "./processKill.ts"
import * as redisKill from "./redisKill.ts"
import * as Report from "./Report.ts"
import type { Result, Scenario } from "./Scenario.ts"
import * as sentinel from "./sentinel.ts"
import * as soak from "./soak.ts"
import * as upstream from "./upstream.ts"

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..")

export const scenarios: ReadonlyArray<Scenario> = [
  redisKill.scenario,
  processKill.scenario,
  upstream.scenario,
  fleet.scenario,
  fleet3.scenario,
  sentinel.scenario,
  diskFull.scenario,
  soak.scenario
]

// The HTTP fuzzing and FallbackStore's crash and corruption runs. Loaded apart, so that one that cannot load is a
// failure of the run (reported) rather than a runner that cannot start the other scenarios.
const more = ["./fuzz.ts", "./fallbackStore.ts"] as const

const loadMore = Effect.forEach(
  more,
  (path) =>
    Effect.tryPromise(() => import(path) as Promise<{ readonly scenarios: ReadonlyArray<Scenario> }>).pipe(
      Effect.map((module) => ({ path, scenarios: module.scenarios, error: undefined })),
      Effect.catch((error) => Effect.succeed({ path, scenarios: [] as ReadonlyArray<Scenario>, error: String(error) }))
    )
)

const usage = "usage: pnpm reliability [--quick] [--minutes N] [--long] [--only name[,name...]] [--report file.md]"

const parse = (argv: ReadonlyArray<string>) => {
  let quick = false
  let long = false
  let minutes: number | undefined
  let only: ReadonlyArray<string> | undefined
  let report = join(root, "docs", "reliability.md")
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]
    if (arg === "--quick") quick = true
    else if (arg === "--long") long = true
    else if (arg === "--minutes") {
      minutes = Number(argv[++i])
      if (!(minutes > 0)) throw new Error(`--minutes: expected a positive number\n${usage}`)
    } else if (arg === "--only") only = (argv[++i] ?? "").split(",").filter((s) => s !== "")
    else if (arg === "--report") report = argv[++i] ?? report
    else if (arg === "--") continue
    else throw new Error(`unknown argument ${arg}\n${usage}`)
  }
  return { quick, long, minutes, only, report }
}

const log = (message: string) => Effect.sync(() => process.stderr.write(`reliability: ${message}\n`))

const program = Effect.gen(function*() {
  const flags = yield* Effect.try({ try: () => parse(process.argv.slice(2)), catch: (e) => e as Error })
  const loaded = yield* loadMore
  const all = [...scenarios, ...loaded.flatMap((m) => m.scenarios)]
  const loadErrors = loaded.flatMap((m) => m.error === undefined ? [] : [`${m.path} could not be loaded: ${m.error}`])
  const selected = all.filter((s) =>
    flags.only !== undefined ? flags.only.includes(s.name) : flags.quick ? s.quick : true
  )
  const unknown = (flags.only ?? []).filter((name) => !all.some((s) => s.name === name))
  if (unknown.length > 0) {
    const known = `the scenarios: ${all.map((s) => s.name).join(", ")}`
    return yield* Effect.fail(
      new Error([`--only: unknown scenario ${unknown.join(", ")}; ${known}`, ...loadErrors].join("\n"))
    )
  }
  const mode = flags.quick
    ? "quick"
    : flags.long
    ? "long"
    : flags.minutes !== undefined
    ? `${flags.minutes} min`
    : "full"
  const started = yield* Clock.currentTimeMillis
  const ran: Array<Report.Ran> = []
  // Without --only, a module that did not load fails the run.
  if (flags.only === undefined && loadErrors.length > 0) {
    ran.push({
      scenario: {
        name: "load",
        title: "Scenario modules that could not be loaded",
        quick: true,
        run: () => Effect.die("")
      },
      result: { rows: [], failed: loadErrors, figures: {} },
      seconds: 0
    })
    for (const error of loadErrors) yield* log(error)
  }
  for (const scenario of selected) {
    yield* log(`${scenario.name}: ${scenario.title}`)
    const workDir = mkdtempSync(join(tmpdir(), `reliability-${scenario.name}-`))
    const from = yield* Clock.currentTimeMillis
    const exit = yield* Effect.exit(
      Effect.scoped(scenario.run({ quick: flags.quick, long: flags.long, minutes: flags.minutes, workDir, log }))
    )
    const seconds = ((yield* Clock.currentTimeMillis) - from) / 1000
    const result: Result = Exit.isSuccess(exit) ? exit.value : {
      rows: [],
      failed: [`${scenario.name} could not run: ${Cause.pretty(exit.cause).split("\n").slice(0, 8).join(" ")}`],
      figures: {}
    }
    if (result.failed.length === 0) rmSync(workDir, { recursive: true, force: true })
    else yield* log(`${scenario.name}: kept ${workDir}`)
    yield* log(`${scenario.name}: ${result.failed.length === 0 ? "passed" : "FAILED"} in ${seconds.toFixed(0)} s`)
    for (const failure of result.failed) yield* log(`  ${failure}`)
    ran.push({ scenario, result, seconds })
  }
  const seconds = ((yield* Clock.currentTimeMillis) - started) / 1000
  const command = `pnpm reliability ${process.argv.slice(2).filter((a) => a !== "--").join(" ")}`.trim()
  const page = Report.markdown(ran, { mode, date: new Date().toISOString(), seconds, command })
  yield* Effect.sync(() => {
    writeFileSync(flags.report, page)
    // The workspace's formatter aligns the tables, so that `pnpm lint` (dprint check) accepts the page as written.
    const formatted = spawnSync(join(root, "node_modules", ".bin", "dprint"), ["fmt", flags.report], {
      cwd: root,
      encoding: "utf8"
    })
    if (formatted.status !== 0) process.stderr.write(`reliability: dprint fmt failed: ${formatted.stderr}\n`)
  })
  yield* Effect.sync(() => process.stdout.write(Report.jsonLine(ran, { mode, seconds }) + "\n"))
  const failed = ran.some((r) => r.result.failed.length > 0)
  yield* log(`${failed ? "FAILED" : "passed"} in ${seconds.toFixed(0)} s; ${flags.report} written`)
  if (failed) yield* Effect.sync(() => (process.exitCode = 1))
})

NodeRuntime.runMain(program)
