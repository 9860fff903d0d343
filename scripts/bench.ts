/**
 * `pnpm bench`: the breaker comparison (`packages/bench`), then the agent service's load test, which takes about a
 * quarter of an hour. The comparison's flags go to it (a `&&` chain in package.json would hand them to the last
 * command only), and a short or partial run (`--quick`, `--only=...`) is the comparison alone:
 *
 *   pnpm bench                        # everything; rewrites docs/benchmarks.md
 *   pnpm bench --quick --json         # the comparison, short, as JSON on the last line
 *   pnpm bench --quick --only=redis   # the Redis cases only
 */
import { spawnSync } from "node:child_process"

const args = process.argv.slice(2)
const run = (filter: string, extra: ReadonlyArray<string>): void => {
  const done = spawnSync("pnpm", ["--filter", filter, "bench", ...extra], { stdio: "inherit" })
  if (done.status !== 0) process.exit(done.status ?? 1)
}

run("@effect-resilience/bench", args)
const partial = args.some((arg) => arg === "--quick" || arg.startsWith("--only"))
if (!partial) run("@effect-resilience/example-agent-service", [])
