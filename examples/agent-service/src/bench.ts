/**
 * Loads the agent service with autocannon on loopback: requests/s, p50/p99 latency, non-2xx responses and the server's
 * CPU time per request (user and system) with every upstream healthy, the same handlers with no resilience at all
 * (`bare.ts`), with Exa failing (its breaker open, Tavily serving) and with Claude failing (the apology path), and the
 * time from an upstream turned good to it serving traffic again. Never asserted:
 * `node examples/agent-service/src/bench.ts` (BENCH_SECONDS, default 5; BENCH_ROUNDS, default 5). The bare and the
 * resilient service run side by side and are loaded in turn (which goes first alternates by round), and each figure
 * is the median of its rounds: on a shared machine one run alone can be off by a third. Where valgrind is installed,
 * callgrind then counts the instructions per request of both services (BENCH_COUNTS times each, default 3: the
 * median), a figure that does not move with the machine's load. The results, with the issue's targets met or missed,
 * replace the agent-service section of docs/benchmarks.md. `BENCH_ONLY=instructions` runs the counts alone and prints
 * them, leaving the page as it is: the figure to compare two commits by.
 */
import { NodeRuntime } from "@effect/platform-node"
import autocannon from "autocannon"
import { Console, Context, Duration, Effect, Layer } from "effect"
import { spawnSync } from "node:child_process"
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs"
import { cpus } from "node:os"
import { join } from "node:path"
import { setFlagsFromString } from "node:v8"
import { runInNewContext } from "node:vm"
import * as Agent from "./Agent.ts"
import * as AgentProcess from "./Process.ts"
import * as Upstreams from "./Upstreams.ts"

const seconds = Number(process.env["BENCH_SECONDS"] ?? 5)
const rounds = Number(process.env["BENCH_ROUNDS"] ?? 5)
const connections = Number(process.env["BENCH_CONNECTIONS"] ?? 10)
const countRuns = Number(process.env["BENCH_COUNTS"] ?? 3)
const only = process.env["BENCH_ONLY"]
const token = "bench-admin-token"

interface Row {
  readonly run: string
  readonly requests: number
  readonly requestsPerSecond: number
  readonly p50: number
  readonly p99: number
  readonly non2xx: number
  readonly errors: number
  /** The server's CPU time per request, in microseconds; undefined where /proc is not there. */
  readonly cpu: Cpu | undefined
}

/** CPU time, in user space (the service's JavaScript, V8, Node) and in the kernel (the sockets). */
interface Cpu {
  readonly user: number
  readonly system: number
}

// The process's CPU time in clock ticks (Linux), from /proc/<pid>/stat: utime and stime.
const cpuTicks = (pid: number | undefined): Cpu | undefined => {
  if (pid === undefined || !existsSync(`/proc/${pid}/stat`)) return undefined
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ")
  return { user: Number(fields[11]), system: Number(fields[12]) }
}
const ticksPerSecond = 100

const tenths = (x: number) => Math.round(x * 10) / 10
const totalOf = (cpu: Cpu) => tenths(cpu.user + cpu.system)

const median = (values: ReadonlyArray<number>): number => {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)]!
}

const loadOnce = (run: string, agent: AgentProcess.Instance, path: string, body?: unknown) =>
  Effect.suspend(() => {
    const before = cpuTicks(agent.child.pid)
    return Effect.map(loadUrl(run, `${agent.base}${path}`, body), (row): Row => {
      const after = cpuTicks(agent.child.pid)
      const perRequest = (ticks: number) => tenths(ticks / ticksPerSecond * 1e6 / row.requests)
      return {
        ...row,
        cpu: before === undefined || after === undefined || row.requests === 0
          ? undefined
          : { user: perRequest(after.user - before.user), system: perRequest(after.system - before.system) }
      }
    })
  })

// The median of the rounds, figure by figure; non-2xx and errors are summed (any one counts).
const combine = (runs: ReadonlyArray<Row>): Row => {
  const cpu = runs.flatMap((r) => r.cpu === undefined ? [] : [r.cpu])
  return {
    run: runs[0]!.run,
    requests: runs.reduce((n, r) => n + r.requests, 0),
    requestsPerSecond: median(runs.map((r) => r.requestsPerSecond)),
    p50: median(runs.map((r) => r.p50)),
    p99: median(runs.map((r) => r.p99)),
    non2xx: runs.reduce((n, r) => n + r.non2xx, 0),
    errors: runs.reduce((n, r) => n + r.errors, 0),
    cpu: cpu.length === 0
      ? undefined
      : { user: median(cpu.map((c) => c.user)), system: median(cpu.map((c) => c.system)) }
  }
}

// A POST of `body` as JSON, or a GET.
const requestOf = (body: unknown) =>
  body === undefined
    ? {}
    : { method: "POST" as const, body: JSON.stringify(body), headers: { "content-type": "application/json" } }

const loadUrl = (run: string, url: string, body?: unknown) =>
  Effect.promise(() => autocannon({ url, connections, duration: seconds, ...requestOf(body) })).pipe(
    Effect.map((result): Row => ({
      run,
      requests: result.requests.total,
      cpu: undefined,
      requestsPerSecond: Math.round(result.requests.average),
      p50: result.latency.p50,
      p99: result.latency.p99,
      non2xx: result.non2xx,
      errors: result.errors + result.timeouts
    }))
  )

/**
 * The agent's own cost per call, without HTTP: the resilient and the bare agent called in this process. `addsMicros`
 * is the median of the rounds' differences (each round times both), not the difference of the medians.
 */
interface InProcess {
  readonly call: "search" | "chat"
  readonly bareMicros: number
  readonly resilientMicros: number
  readonly addsMicros: number
}

// A full collection before each timed batch: the simulated upstreams' state and a chat's garbage fill the old
// generation, and a major collection landing in one agent's batch and not the other's moved a round's difference by
// more than the stack costs.
setFlagsFromString("--expose-gc")
const collect = runInNewContext("gc") as () => void

// Microseconds per call of `call`, the best of three batches after a warm-up one (the best: a batch is short, and
// only something else on the machine makes one slower).
const perCall = (agent: Agent.Agent, call: InProcess["call"]) => {
  const n = call === "search" ? 100_000 : 10_000
  const once = call === "search" ? agent.search("effect") : agent.chat("bench-in-process", chat.message)
  return Effect.gen(function*() {
    let best = Infinity
    for (let batch = 0; batch < 4; batch++) {
      collect()
      const started = process.hrtime.bigint()
      for (let i = 0; i < n; i++) yield* once
      const micros = Number(process.hrtime.bigint() - started) / 1000 / n
      if (batch > 0) best = Math.min(best, micros)
    }
    return Math.round(best * 100) / 100
  })
}

const inProcess = Effect.gen(function*() {
  const dataDir = yield* AgentProcess.tempDir("agent-bench-")
  const resilient = yield* Layer.build(
    Agent.layerRunning({ dataDir, openDuration: Duration.seconds(2) }, Agent.layerSearchCacheLocal)
  )
  const bare = yield* Layer.build(Agent.layerBare.pipe(Layer.provide(Upstreams.layer)))
  const agents = { bare: Context.get(bare, Agent.AgentService), resilient: Context.get(resilient, Agent.AgentService) }
  const results: Array<InProcess> = []
  for (const call of ["search", "chat"] as const) {
    const bareRuns: Array<number> = []
    const resilientRuns: Array<number> = []
    for (let round = 0; round < rounds; round++) {
      bareRuns.push(yield* perCall(agents.bare, call))
      resilientRuns.push(yield* perCall(agents.resilient, call))
    }
    results.push({
      call,
      bareMicros: median(bareRuns),
      resilientMicros: median(resilientRuns),
      addsMicros: Math.round(median(resilientRuns.map((r, i) => r - bareRuns[i]!)) * 100) / 100
    })
  }
  return results
})

/**
 * User-space instructions per request, bare and resilient, counted by callgrind (valgrind): a count, not a time, so
 * it hardly moves with whatever else the machine runs. V8 does not always compile the same code the same way, though
 * (whether the fiber loop's code was optimised moved a resilient search's count by a tenth), so each service is
 * counted `countRuns` times and the median is the figure. The kernel's share of a request (the socket reads and
 * writes) is not in it.
 */
interface Counted {
  readonly call: "search" | "chat"
  /** The medians of the runs. */
  readonly bare: number
  readonly resilient: number
  readonly bareRuns: ReadonlyArray<number>
  readonly resilientRuns: ReadonlyArray<number>
}

const hasValgrind = (): boolean => spawnSync("valgrind", ["--version"]).status === 0

// `callgrind_control` reaches the process through valgrind's gdbserver and returns once the command ran.
const callgrindControl = (pid: number, command: string) =>
  Effect.suspend(() => {
    const done = spawnSync("callgrind_control", [command, String(pid)], { encoding: "utf8" })
    return done.status === 0
      ? Effect.void
      : Effect.fail(
        new AgentProcess.ProcessError({ message: `callgrind_control ${command}: ${done.stderr || done.stdout}` })
      )
  })

const loadAmount = (url: string, amount: number, body?: unknown) =>
  Effect.promise(() => autocannon({ url, connections, amount, ...requestOf(body) }))

// Runs the server under callgrind with counting off, warms it up (V8 compiles the hot path), then counts `amount`
// requests only: start-up and compilation stay out of the figure.
const instructionsPerRequest = (
  entry: string | undefined,
  path: string,
  body: unknown,
  warm: number,
  amount: number
) =>
  Effect.scoped(Effect.gen(function*() {
    const dir = yield* AgentProcess.tempDir("agent-callgrind-")
    const agent = yield* AgentProcess.startFresh(token, {}, {
      command: [
        "valgrind",
        "--tool=callgrind",
        "--instr-atstart=no",
        `--callgrind-out-file=${dir}/callgrind.%p`,
        process.execPath,
        // V8 then compiles on the main thread, at the same point of every run: with background compilation, when the
        // optimised code arrives (and so the count) moves with the machine's load.
        "--single-threaded",
        entry ?? AgentProcess.entry
      ],
      waitForListening: false
    })
    const ready = body === undefined
      ? agent.request("GET", path)
      : agent.request("POST", path, { body })
    yield* AgentProcess.eventually(
      Effect.flatMap(ready, (r) =>
        r.status === 200 ? Effect.void : Effect.fail(new AgentProcess.ProcessError({ message: `${r.status}` }))),
      "5 minutes"
    )
    yield* loadAmount(`${agent.base}${path}`, warm, body)
    const pid = agent.child.pid!
    yield* callgrindControl(pid, "--zero")
    yield* callgrindControl(pid, "--instr=on")
    const started = Date.now()
    yield* loadAmount(`${agent.base}${path}`, amount, body)
    const loaded = Date.now() - started
    // A dump zeroes the counts: the second part is as long again with no requests. Under valgrind a request takes
    // some 50 times as long, so the service's timers (health checks every few seconds) would weigh 50 times as much
    // per request as they do in production: their part is counted idle and taken out.
    yield* callgrindControl(pid, "--dump")
    yield* Effect.sleep(Duration.millis(loaded))
    yield* callgrindControl(pid, "--dump")
    yield* callgrindControl(pid, "--instr=off")
    const load = yield* dumped(dir, 1)
    const idle = yield* dumped(dir, 2)
    yield* agent.stop("SIGTERM")
    return Math.round((load - idle) / amount)
  }))

// The instructions in part `part` of the callgrind dump under `dir`, once it is written.
const dumped = (dir: string, part: number) =>
  AgentProcess.eventually(
    Effect.suspend(() => {
      const dump = readdirSync(dir).find((file) => new RegExp(`\\.\\d+\\.${part}$`).test(file))
      const found = dump === undefined ? null : /^totals: (\d+)$/m.exec(readFileSync(join(dir, dump), "utf8"))
      return found === null
        ? Effect.fail(new AgentProcess.ProcessError({ message: `no callgrind dump ${part} yet` }))
        : Effect.succeed(Number(found[1]))
    }),
    "1 minute"
  )

const counted = Effect.gen(function*() {
  if (!hasValgrind()) {
    yield* Console.log("callgrind: valgrind is not installed (apt-get install valgrind); instruction counts left out")
    return []
  }
  const bareEntry = join(AgentProcess.entry, "..", "bare.ts")
  const results: Array<Counted> = []
  for (
    const [call, path, body, warm, amount] of [
      // Long enough that V8 has finished optimising before the count starts: after 20,000 searches or 5,000 chats
      // its optimising compiler still ran during the count, a tenth of a search's count and a fifth of a chat's.
      ["search", "/search?q=effect", undefined, 60_000, 5_000],
      ["chat", "/chat", chat, 40_000, 1_000]
    ] as const
  ) {
    const bareRuns: Array<number> = []
    const resilientRuns: Array<number> = []
    for (let run = 0; run < countRuns; run++) {
      // The two side by side: a count does not depend on what else runs (the idle part is taken out as it is).
      const [bare, resilient] = yield* Effect.all([
        instructionsPerRequest(bareEntry, path, body, warm, amount),
        instructionsPerRequest(undefined, path, body, warm, amount)
      ], { concurrency: 2 })
      bareRuns.push(bare)
      resilientRuns.push(resilient)
    }
    results.push({ call, bare: median(bareRuns), resilient: median(resilientRuns), bareRuns, resilientRuns })
  }
  return results
})

const start = (entry?: string) =>
  AgentProcess.startFresh(token, {}, entry === undefined ? {} : { command: [process.execPath, entry] })

const chaos = (agent: AgentProcess.Instance, service: string, failureRate: number) =>
  agent.request("POST", `/chaos/${service}`, { body: { failure_rate: failureRate }, token })

const chat = { user_id: "bench", message: "what do you remember about effect?" }
const exaFailing = "resilient: search, Exa failing (Tavily serving)"
const claudeFailing = "resilient: chat, Claude failing (apology)"

// `BENCH_ONLY=instructions`: the counts alone, printed.
const countsOnly = Effect.gen(function*() {
  for (const line of countedTable(yield* counted)) yield* Console.log(line)
})

const program = Effect.gen(function*() {
  const rows: Array<Row> = []

  const bare = yield* start(join(AgentProcess.entry, "..", "bare.ts"))
  const agent = yield* start()
  const pairs = [
    ["search", "/search?q=effect", undefined],
    ["chat", "/chat", chat]
  ] as const
  const runs = new Map<string, Array<Row>>()
  const record = (run: string, row: Row) => void runs.set(run, [...(runs.get(run) ?? []), row])
  const recoveries: Array<number> = []
  for (let round = 0; round < rounds; round++) {
    for (const [name, path, body] of pairs) {
      // Which service goes first alternates from round to round: a machine that drifts over a pair (another job
      // starting, a CPU's clock changing) then weighs on each service in turn rather than always on the second.
      const order = [["bare", bare], ["resilient", agent]] as const
      for (const [label, instance] of round % 2 === 0 ? order : [order[1], order[0]]) {
        const run = label === "bare" ? `bare: ${name}` : `resilient: ${name}, healthy`
        record(run, yield* loadOnce(run, instance, path, body))
      }
    }
    // The degraded paths in the same round as the healthy ones, so that both meet the machine and the process at the
    // same age (run after every healthy round, they met a process that had served some minutes of chats more).
    yield* chaos(agent, "exa", 1)
    for (let i = 0; i < 3; i++) yield* agent.request("GET", `/search?q=warm-${i}`)
    record(exaFailing, yield* loadOnce(exaFailing, agent, "/search?q=effect"))
    yield* chaos(agent, "exa", 0)
    const turnedGood = Date.now()
    yield* AgentProcess.eventually(
      Effect.flatMap(agent.request("GET", "/search?q=effect"), (r) =>
        r.body.served_by === "exa_api"
          ? Effect.void
          : Effect.fail(new AgentProcess.ProcessError({ message: r.body.served_by }))),
      "30 seconds"
    )
    recoveries.push(Date.now() - turnedGood)

    yield* chaos(agent, "claude", 1)
    for (let i = 0; i < 3; i++) yield* agent.request("POST", "/chat", { body: { user_id: "warm", message: `m${i}` } })
    record(claudeFailing, yield* loadOnce(claudeFailing, agent, "/chat", chat))
    yield* chaos(agent, "claude", 0)
    // The next round's healthy chats are answered by Claude again, its breaker closed.
    yield* AgentProcess.eventually(
      Effect.flatMap(agent.request("POST", "/chat", { body: chat }), (r) =>
        r.body.claude === "answered"
          ? Effect.void
          : Effect.fail(new AgentProcess.ProcessError({ message: String(r.body.claude) }))),
      "30 seconds"
    )
  }
  for (const run of runs.values()) rows.push(combine(run))
  // Each round loads the bare and the resilient service back to back: the share of each round's pair is the cost
  // measured with the least drift between its two halves, and the spread of the rounds says how noisy the machine was.
  const sharesOf = (base: string, other: string): Shares => {
    const baseRuns = runs.get(base)!
    const otherRuns = runs.get(other)!
    const each = baseRuns.map((b, i) => 1 - otherRuns[i]!.requestsPerSecond / b.requestsPerSecond)
    return { median: median(each), min: Math.min(...each), max: Math.max(...each) }
  }
  const cost = {
    search: sharesOf("bare: search", "resilient: search, healthy"),
    chat: sharesOf("bare: chat", "resilient: chat, healthy")
  }
  // The same, of each degraded run against its round's healthy one.
  const slower = {
    search: sharesOf("resilient: search, healthy", exaFailing),
    chat: sharesOf("resilient: chat, healthy", claudeFailing)
  }
  const recovery = { median: median(recoveries), max: Math.max(...recoveries) }
  yield* bare.stop("SIGTERM")
  yield* agent.stop("SIGTERM")

  const agentCost = yield* Effect.scoped(inProcess)
  const instructions = yield* counted

  yield* Console.log(`autocannon: ${connections} connections, ${seconds} s per run, ${rounds} rounds, loopback\n`)
  for (const line of table(rows)) yield* Console.log(line)
  yield* Console.log(`\n${costLine(rows, cost)}`)
  yield* Console.log(`degraded paths slower than the healthy ones: ${slowerText(slower)}`)
  yield* Console.log(`time from Exa turned good to Exa serving again: ${recoveryText(recovery)}\n`)
  for (const line of inProcessTable(agentCost)) yield* Console.log(line)
  for (const line of countedTable(instructions)) yield* Console.log(line)
  yield* Effect.sync(() => report(rows, cost, slower, recovery, agentCost, instructions))
}).pipe(Effect.scoped)

const cpuOf = (rows: ReadonlyArray<Row>, name: string) => rows.find((r) => r.run === name)?.cpu

const table = (rows: ReadonlyArray<Row>) => [
  "| run | req/s | p50 ms | p99 ms | server CPU per request | of which user | of which system | non-2xx | errors |",
  "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
  ...rows.map((r) =>
    `| ${r.run} | ${r.requestsPerSecond} | ${r.p50} | ${r.p99} | ${
      r.cpu === undefined ? "n/a | n/a | n/a" : `${totalOf(r.cpu)} µs | ${r.cpu.user} µs | ${r.cpu.system} µs`
    } | ${r.non2xx} | ${r.errors} |`
  )
]

const inProcessTable = (results: ReadonlyArray<InProcess>) => [
  "| call, in-process | bare | resilient | the stack adds |",
  "| --- | ---: | ---: | ---: |",
  ...results.map((r) => `| ${r.call} | ${r.bareMicros} µs | ${r.resilientMicros} µs | ${r.addsMicros} µs |`)
]

const thousands = (n: number) => `${Math.round(n / 100) / 10}k`

const countedTable = (results: ReadonlyArray<Counted>) =>
  results.length === 0 ? [] : [
    "",
    "| request, callgrind | bare | resilient | the stack adds | runs: bare | runs: resilient |",
    "| --- | ---: | ---: | ---: | ---: | ---: |",
    ...results.map((r) =>
      `| ${r.call} | ${thousands(r.bare)} | ${thousands(r.resilient)} | ${thousands(r.resilient - r.bare)} (${
        percent(r.resilient / r.bare - 1)
      }) | ${r.bareRuns.map(thousands).join(", ")} | ${r.resilientRuns.map(thousands).join(", ")} |`
    )
  ]

// The bare and the resilient service's CPU per `call` with every upstream healthy, where /proc gave both.
const cpuPair = (rows: ReadonlyArray<Row>, call: "search" | "chat") => {
  const bare = cpuOf(rows, `bare: ${call}`)
  const resilient = cpuOf(rows, `resilient: ${call}, healthy`)
  return bare === undefined || resilient === undefined ? undefined : { bare, resilient }
}

// The stack's share of the user CPU under load beside its share of the instructions, request by request.
const userShares = (rows: ReadonlyArray<Row>, instructions: ReadonlyArray<Counted>): ReadonlyArray<string> => {
  const shares = instructions.flatMap((r) => {
    const cpu = cpuPair(rows, r.call)
    if (cpu === undefined || cpu.bare.user === 0) return []
    const { bare, resilient } = cpu
    const user = `${percent(resilient.user / bare.user - 1)} more user CPU under load`
    const instructionShare = `${percent(r.resilient / r.bare - 1)} more instructions`
    return [`${r.call}: ${user} (from ${bare.user} to ${resilient.user} µs), ${instructionShare}`]
  })
  return shares.length === 0 ? [] : ["", `The stack's share, per request: ${shares.join("; ")}.`]
}

// What the stack adds per request: CPU time over the bare service's, where /proc gave it.
const added = (rows: ReadonlyArray<Row>, name: "search" | "chat"): Cpu | undefined => {
  const cpu = cpuPair(rows, name)
  return cpu === undefined ? undefined : {
    user: tenths(cpu.resilient.user - cpu.bare.user),
    system: tenths(cpu.resilient.system - cpu.bare.system)
  }
}

const signed = (x: number) => `${x < 0 ? "" : "+"}${x}`
// "+8 µs CPU per request: user +7.9, system +0.1"
const addedText = (cpu: Cpu) =>
  `${signed(totalOf(cpu))} µs CPU per request: user ${signed(cpu.user)}, system ${signed(cpu.system)}`

/** The throughput the stack costs: the median of the rounds' shares, and the lowest and highest round's. */
interface Shares {
  readonly median: number
  readonly min: number
  readonly max: number
}

/** The time from Exa turned good to it serving again, over the rounds. */
interface Recovery {
  readonly median: number
  readonly max: number
}

const recoveryText = (recovery: Recovery) => `${recovery.median} ms (median of the rounds; slowest ${recovery.max} ms)`

// How much less a degraded path serves than the healthy one in its round (negative: it serves more).
const slowerText = (slower: Record<"search" | "chat", Shares>) =>
  `search with Exa failing ${sharesText(slower.search)}; chat with Claude failing ${sharesText(slower.chat)}`

const sharesText = (shares: Shares) =>
  `${percent(shares.median)} (rounds: ${percent(shares.min)} to ${percent(shares.max)})`

const costLine = (rows: ReadonlyArray<Row>, cost: Record<"search" | "chat", Shares>) => {
  const text = (name: "search" | "chat") => {
    const cpu = added(rows, name)
    return `${sharesText(cost[name])}${cpu === undefined ? "" : `, ${addedText(cpu)}`}`
  }
  return `resilience cost: search ${text("search")}; chat ${text("chat")} of the bare throughput`
}

// What 5% of the bare throughput leaves the stack per search, in CPU: the bare service's CPU per request is the
// budget's base, and every microsecond the stack adds costs the throughput its share of that.
const budget = (rows: ReadonlyArray<Row>, agentCost: ReadonlyArray<InProcess>): ReadonlyArray<string> => {
  const bareCpu = cpuOf(rows, "bare: search")
  const search = agentCost.find((r) => r.call === "search")
  if (bareCpu === undefined || search === undefined) return []
  const bare = totalOf(bareCpu)
  const allowed = Math.round(bare * 0.05 / 0.95 * 100) / 100
  const adds = search.addsMicros
  return [
    "",
    `Within 5% of the bare throughput, the stack may add about ${allowed} µs of CPU per search (the bare search takes ` +
    `${bare} µs); in-process it adds ${adds} µs: a breaker, a retry and a timeout around Exa, and the fallback chain.`
  ]
}

// The cost target again in instructions, where valgrind counted them: a figure the machine's load does not move, but
// of user space only (see the note above the counts).
const instructionsTarget = (instructions: ReadonlyArray<Counted>): ReadonlyArray<string> =>
  instructions.length === 0 ? [] : [
    `| the same in instructions per request (callgrind, user space) | ${
      instructions.map((r) => `${r.call} ${percent(r.resilient / r.bare - 1)}`).join("; ")
    } | ${verdict(instructions.every((r) => r.resilient / r.bare - 1 < 0.05))} |`
  ]

const begin = "<!-- agent-service:start -->"
const end = "<!-- agent-service:end -->"

const percent = (x: number) => `${Math.round(x * 1000) / 10}%`
const micros = (cpu: Cpu | undefined) => cpu === undefined ? "" : ` (${addedText(cpu)})`
const verdict = (met: boolean) => met ? "met" : "**missed**"

// Writes the run into docs/benchmarks.md between the markers (appended the first time), so that `pnpm bench`, which
// rewrites the rest of the page first, leaves both parts current.
const report = (
  rows: ReadonlyArray<Row>,
  cost: Record<"search" | "chat", Shares>,
  slower: Record<"search" | "chat", Shares>,
  recovery: Recovery,
  agentCost: ReadonlyArray<InProcess>,
  instructions: ReadonlyArray<Counted>
) => {
  const page = join(AgentProcess.entry, "..", "..", "..", "..", "docs", "benchmarks.md")
  const degradedOk = slower.search.median <= 0.1 && slower.chat.median <= 0.1
  const non2xx = rows.reduce((n, r) => n + r.non2xx + r.errors, 0)
  const section = [
    begin,
    "## The agent service under load",
    "",
    `autocannon, ${connections} connections, ${seconds} s per run, the median of ${rounds} rounds (bare and resilient ` +
    "loaded in turn, the first of each pair alternating by round; the cost is the median of each round's pair; each " +
    "round then loads the degraded paths, compared with its own healthy runs, and times Exa's recovery); " +
    `Node ${process.version}, ${cpus().length} cores; ${new Date().toISOString().slice(0, 10)}. ` +
    "`bare` serves the same handlers with no resilience at all (`examples/agent-service/src/bare.ts`); the server's " +
    "CPU time per request is read from /proc.",
    "",
    ...table(rows),
    "",
    "| target | measured | |",
    "| --- | --- | --- |",
    `| the resilience stack costs under 5% of the bare throughput | search ${sharesText(cost.search)}${
      micros(added(rows, "search"))
    }; chat ${sharesText(cost.chat)}${micros(added(rows, "chat"))} | ${
      verdict(cost.search.median < 0.05 && cost.chat.median < 0.05)
    } |`,
    ...instructionsTarget(instructions),
    `| degraded paths no slower than the healthy one (within 10%) | ${slowerText(slower)} | ${verdict(degradedOk)} |`,
    `| 0 non-2xx responses in every run | ${non2xx} | ${verdict(non2xx === 0)} |`,
    `| an upstream turned good serves again within 5 s | ${recoveryText(recovery)} | ${verdict(recovery.max < 5000)} |`,
    "",
    "The agent's own cost per call, without HTTP: `agent.search` and `agent.chat` called in one process, the resilient " +
    "agent (`Agent.layerRunning`, as `main.ts` serves it) against the bare one, each the median of the rounds of the " +
    "best of three batches (each batch after a full garbage collection); the stack's part is the median of the rounds' " +
    "differences.",
    "",
    ...inProcessTable(agentCost),
    ...budget(rows, agentCost),
    ...(instructions.length === 0 ? [] : [
      "",
      "Instructions per request, counted by callgrind (valgrind) in user space: each server warmed up with " +
      "autocannon (60,000 searches or 40,000 chats, after which V8's optimising compiler no longer runs), then " +
      "5,000 searches or 1,000 chats counted, less what the service runs idle in as long (its timers: under " +
      "valgrind a request takes some 50 times as long, so they would weigh 50 times as much per request); " +
      `each service counted ${countRuns} times, the median taken (the runs are listed: V8 does not compile the ` +
      "same code the same way every time). Unlike " +
      "the times above, a count hardly depends on the machine's load, so it is the figure to compare commits by. " +
      "The kernel's part of a request (reading and writing the socket, the system column above) is not counted. A " +
      "count is not a time either: an instruction that misses the processor's caches takes longer than one that " +
      "hits, so the same share of instructions can be a different share of user CPU (compared below the table)."
    ]),
    ...countedTable(instructions),
    ...userShares(rows, instructions),
    end
  ].join("\n")
  const text = existsSync(page) ? readFileSync(page, "utf8") : ""
  const at = text.indexOf(begin)
  const next = at < 0
    ? `${text.trimEnd()}\n\n${section}\n`
    : `${text.slice(0, at)}${section}${text.slice(text.indexOf(end) + end.length)}`
  writeFileSync(page, next)
  // The workspace's formatter aligns the tables, so that `pnpm lint` (dprint check) accepts the page as written.
  const root = join(page, "..", "..")
  const formatted = spawnSync(join(root, "node_modules", ".bin", "dprint"), ["fmt", page], {
    cwd: root,
    encoding: "utf8"
  })
  if (formatted.status !== 0) process.stderr.write(`bench: dprint fmt failed: ${formatted.stderr}\n`)
}

if (only !== undefined && only !== "instructions") {
  process.stderr.write(`bench: BENCH_ONLY: expected "instructions" (or unset), got ${JSON.stringify(only)}\n`)
  process.exit(1)
}
NodeRuntime.runMain(only === "instructions" ? countsOnly : program)
