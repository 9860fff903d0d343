/**
 * `pnpm bench`: runs every benchmark case in this process, interleaved over several rounds, prints the medians,
 * the ratios and the target checks, and (on a full run) writes `docs/benchmarks.md`.
 *
 * Flags:
 * - `--quick`: fewer rounds and shorter samples (well under a minute); leaves `docs/benchmarks.md` alone.
 * - `--json`: also prints the results as one JSON object, as the last line of stdout.
 * - `--rounds=N`, `--seed=N`: override the number of rounds and the shuffle seed.
 * - `--only=A,B`: run only the cases whose names contain one of these strings (targets needing others read n/a).
 *   `--only=redis` runs the Redis cases and the trip propagation; `--only=propagation` the propagation alone.
 *
 * The Redis cases start their own `redis-server` (`/usr/bin/redis-server`, or `$REDIS_SERVER`). The trip
 * propagation across processes is not a time per call: it runs after the rounds, on its own (`measurePropagation`).
 *
 * To add cases, add them to a group module (or a new one) and list the group in `cases` below. Progress goes to
 * stderr; the tables and the JSON go to stdout.
 */
import { writeFileSync } from "node:fs"
import { fileURLToPath } from "node:url"
import { baselines } from "./baselines.ts"
import { cockatiel } from "./cockatiel.ts"
import { combinators } from "./combinators.ts"
import { effect } from "./effect.ts"
import { type Case, runAll, type Settings } from "./harness.ts"
import { memory } from "./memory.ts"
import { opossum } from "./opossum.ts"
import { ours } from "./ours.ts"
import { measurePropagation, propagationCase, redis } from "./redis.ts"
import {
  checkTargets,
  consoleReport,
  jsonLine,
  type LatencyResult,
  machine,
  markdownPage,
  summarize
} from "./report.ts"

/** Every case, in the order the tables list them. */
export const cases: ReadonlyArray<Case> = [
  ...baselines,
  ...ours,
  ...combinators,
  ...effect,
  ...cockatiel,
  ...opossum,
  ...redis,
  ...memory
]

const full: Settings = { rounds: 41, sampleMillis: 50, warmupMillis: 300, keys: 100_000, memoryRounds: 9, seed: 1 }
const quick: Settings = { rounds: 7, sampleMillis: 15, warmupMillis: 100, keys: 100_000, memoryRounds: 2, seed: 1 }

/** Trips timed by the propagation measurement, after `warmup` untimed ones. */
const propagation = { full: { iterations: 200, warmup: 10 }, quick: { iterations: 50, warmup: 10 } }

const usage = "Usage: pnpm bench [--quick] [--json] [--rounds=N] [--seed=N] [--only=NAME,...]"

const parseArgs = (argv: ReadonlyArray<string>) => {
  let isQuick = false
  let json = false
  let only: ReadonlyArray<string> | undefined
  const overrides: { rounds?: number; seed?: number } = {}
  for (const arg of argv) {
    const [flag, value] = arg.split("=", 2)
    if (arg === "--") continue
    else if (flag === "--only" && value !== undefined && value !== "") only = value.split(",")
    else if (arg === "--quick") isQuick = true
    else if (arg === "--json") json = true
    else if ((flag === "--rounds" || flag === "--seed") && value !== undefined && /^\d+$/.test(value)) {
      overrides[flag === "--rounds" ? "rounds" : "seed"] = Number(value)
    } else {
      console.error(`Unknown argument: ${arg}\n${usage}`)
      process.exit(2)
    }
  }
  return { isQuick, json, only, settings: { ...(isQuick ? quick : full), ...overrides } }
}

const log = (line: string) => console.error(line)

const main = async () => {
  const { isQuick, json, only, settings } = parseArgs(process.argv.slice(2))
  const selected = only === undefined ? cases : cases.filter((c) => only.some((part) => c.name.includes(part)))
  const withPropagation = only === undefined || only.some((part) => propagationCase.name.includes(part))
  const partial = selected.length < cases.length || !withPropagation
  const mode = isQuick ? "Quick" : "Full"
  log(`${mode} run: ${selected.length} cases, ${settings.rounds} rounds, ~${settings.sampleMillis} ms per sample`)
  const started = performance.now()
  const results = await runAll(selected, settings, log)
  // After the rounds, so that its child processes never share the machine with a timed sample.
  const trips = isQuick ? propagation.quick : propagation.full
  const latencies: Array<LatencyResult> = []
  if (withPropagation) {
    log(`Trip propagation: ${trips.warmup} + ${trips.iterations} trips across two processes`)
    latencies.push(await measurePropagation(trips, log))
  }
  const seconds = (performance.now() - started) / 1000

  const summaries = summarize(results)
  const checks = checkTargets(summaries)
  console.log(consoleReport(summaries, checks, latencies))
  console.log(`\n${seconds.toFixed(1)} s`)

  if (isQuick || partial) {
    log(`${isQuick ? "Quick" : "Partial"} run: docs/benchmarks.md left as it is.`)
  } else {
    const page = fileURLToPath(new URL("../../../docs/benchmarks.md", import.meta.url))
    writeFileSync(
      page,
      markdownPage({
        summaries,
        checks,
        machine: machine(),
        settings,
        seconds,
        latencies,
        propagationIterations: trips.iterations
      })
    )
    log(`Wrote ${page}`)
  }
  if (json) console.log(jsonLine(summaries, latencies))
}

await main()
