/**
 * Loads the agent service with autocannon on loopback: requests/s, p50/p99 latency and non-2xx responses with every
 * upstream healthy, the same handlers with no resilience at all (`bare.ts`), with Exa failing (its breaker open,
 * Tavily serving) and with Claude failing (the apology path), and the time from an upstream turned good to it
 * serving traffic again. Never asserted: `node examples/agent-service/src/bench.ts` (BENCH_SECONDS, default 5).
 * The results, with the targets met or missed, replace the agent-service section of docs/benchmarks.md.
 */
import { NodeRuntime } from "@effect/platform-node"
import autocannon from "autocannon"
import { Console, Effect } from "effect"
import { existsSync, readFileSync, writeFileSync } from "node:fs"
import { cpus } from "node:os"
import { join } from "node:path"
import * as AgentProcess from "./Process.ts"

const seconds = Number(process.env["BENCH_SECONDS"] ?? 5)
const connections = Number(process.env["BENCH_CONNECTIONS"] ?? 10)
const token = "bench-admin-token"

interface Row {
  readonly run: string
  readonly requestsPerSecond: number
  readonly p50: number
  readonly p99: number
  readonly non2xx: number
  readonly errors: number
}

const load = (run: string, url: string, body?: unknown) =>
  Effect.promise(() =>
    autocannon({
      url,
      connections,
      duration: seconds,
      ...(body === undefined
        ? {}
        : { method: "POST" as const, body: JSON.stringify(body), headers: { "content-type": "application/json" } })
    })
  ).pipe(Effect.map((result): Row => ({
    run,
    requestsPerSecond: Math.round(result.requests.average),
    p50: result.latency.p50,
    p99: result.latency.p99,
    non2xx: result.non2xx,
    errors: result.errors + result.timeouts
  })))

const start = (entry?: string) =>
  Effect.gen(function*() {
    const port = yield* AgentProcess.freePort
    return yield* AgentProcess.start({
      env: {
        PORT: String(port),
        DATA_DIR: yield* AgentProcess.tempDir("agent-bench-"),
        RESILIENCE_ADMIN_TOKEN: token
      },
      ...(entry === undefined ? {} : { command: [process.execPath, entry] })
    })
  })

const chaos = (agent: AgentProcess.Instance, service: string, failureRate: number) =>
  agent.request("POST", `/chaos/${service}`, { body: { failure_rate: failureRate }, token })

const chat = { user_id: "bench", message: "what do you remember about effect?" }

const program = Effect.gen(function*() {
  const rows: Array<Row> = []

  const bare = yield* start(join(AgentProcess.entry, "..", "bare.ts"))
  rows.push(yield* load("bare: search", `${bare.base}/search?q=effect`))
  rows.push(yield* load("bare: chat", `${bare.base}/chat`, chat))
  yield* bare.stop("SIGTERM")

  const agent = yield* start()
  rows.push(yield* load("resilient: search, healthy", `${agent.base}/search?q=effect`))
  rows.push(yield* load("resilient: chat, healthy", `${agent.base}/chat`, chat))

  yield* chaos(agent, "exa", 1)
  for (let i = 0; i < 3; i++) yield* agent.request("GET", `/search?q=warm-${i}`)
  rows.push(yield* load("resilient: search, Exa failing (Tavily serving)", `${agent.base}/search?q=effect`))
  yield* chaos(agent, "exa", 0)
  const turnedGood = Date.now()
  yield* AgentProcess.eventually(
    Effect.flatMap(agent.request("GET", "/search?q=effect"), (r) =>
      r.body.served_by === "exa_api"
        ? Effect.void
        : Effect.fail(new AgentProcess.ProcessError({ message: r.body.served_by }))),
    "30 seconds"
  )
  const recoveryMillis = Date.now() - turnedGood

  yield* chaos(agent, "claude", 1)
  for (let i = 0; i < 3; i++) yield* agent.request("POST", "/chat", { body: { user_id: "warm", message: `m${i}` } })
  rows.push(yield* load("resilient: chat, Claude failing (apology)", `${agent.base}/chat`, chat))
  yield* agent.stop("SIGTERM")

  const rate = (name: string) => rows.find((r) => r.run === name)?.requestsPerSecond ?? 0
  yield* Console.log(`autocannon: ${connections} connections, ${seconds} s per run, loopback\n`)
  yield* Console.log("| run | req/s | p50 ms | p99 ms | non-2xx | errors |")
  yield* Console.log("| --- | ---: | ---: | ---: | ---: | ---: |")
  for (const r of rows) {
    yield* Console.log(`| ${r.run} | ${r.requestsPerSecond} | ${r.p50} | ${r.p99} | ${r.non2xx} | ${r.errors} |`)
  }
  const cost = (bareRun: string, resilientRun: string) =>
    `${Math.round((1 - rate(resilientRun) / rate(bareRun)) * 1000) / 10}%`
  yield* Console.log(
    `\nresilience cost: search ${cost("bare: search", "resilient: search, healthy")}, chat ${
      cost("bare: chat", "resilient: chat, healthy")
    } of the bare throughput`
  )
  yield* Console.log(`time from Exa turned good to Exa serving again: ${recoveryMillis} ms`)
  yield* Effect.sync(() => report(rows, rate, recoveryMillis))
}).pipe(Effect.scoped)

const begin = "<!-- agent-service:start -->"
const end = "<!-- agent-service:end -->"

const percent = (x: number) => `${Math.round(x * 1000) / 10}%`
const verdict = (met: boolean) => met ? "met" : "**missed**"

// Writes the run into docs/benchmarks.md between the markers (appended the first time), so that `pnpm bench`, which
// rewrites the rest of the page first, leaves both parts current.
const report = (rows: ReadonlyArray<Row>, rate: (name: string) => number, recoveryMillis: number) => {
  const page = join(AgentProcess.entry, "..", "..", "..", "..", "docs", "benchmarks.md")
  const costOf = (bareRun: string, run: string) => 1 - rate(run) / rate(bareRun)
  const search = costOf("bare: search", "resilient: search, healthy")
  const chatCost = costOf("bare: chat", "resilient: chat, healthy")
  const degradedOk = rate("resilient: search, Exa failing (Tavily serving)") >=
      0.9 * rate("resilient: search, healthy") &&
    rate("resilient: chat, Claude failing (apology)") >= 0.9 * rate("resilient: chat, healthy")
  const non2xx = rows.reduce((n, r) => n + r.non2xx + r.errors, 0)
  const section = [
    begin,
    "## The agent service under load",
    "",
    `autocannon, ${connections} connections, ${seconds} s per run, loopback; Node ${process.version}, ${cpus().length} cores; ${
      new Date().toISOString().slice(0, 10)
    }. \`bare\` serves the same handlers with no resilience at all (\`examples/agent-service/src/bare.ts\`).`,
    "",
    "| run | req/s | p50 ms | p99 ms | non-2xx | errors |",
    "| --- | ---: | ---: | ---: | ---: | ---: |",
    ...rows.map((r) => `| ${r.run} | ${r.requestsPerSecond} | ${r.p50} | ${r.p99} | ${r.non2xx} | ${r.errors} |`),
    "",
    "| target | measured | |",
    "| --- | --- | --- |",
    `| the resilience stack costs under 5% of the bare throughput | search ${percent(search)}, chat ${
      percent(chatCost)
    } | ${verdict(search < 0.05 && chatCost < 0.05)} |`,
    `| degraded paths no slower than the healthy one (within 10%) | see the table | ${verdict(degradedOk)} |`,
    `| 0 non-2xx responses in every run | ${non2xx} | ${verdict(non2xx === 0)} |`,
    `| an upstream turned good serves again within 5 s | ${recoveryMillis} ms | ${verdict(recoveryMillis < 5000)} |`,
    end
  ].join("\n")
  const text = existsSync(page) ? readFileSync(page, "utf8") : ""
  const at = text.indexOf(begin)
  const next = at < 0
    ? `${text.trimEnd()}\n\n${section}\n`
    : `${text.slice(0, at)}${section}${text.slice(text.indexOf(end) + end.length)}`
  writeFileSync(page, next)
}

NodeRuntime.runMain(program)
