/**
 * Turns a run's results into the console table, the target checks, `docs/benchmarks.md` and the JSON line.
 *
 * Every figure is a median across rounds. Ratios are taken between medians of the same run; a target also says
 * in how many rounds it held when the two cases are paired round by round, which shows whether a PASS or MISS
 * is clear-cut or within the noise.
 */
import * as os from "node:os"
import { median, quantile, type Result, type Settings } from "./harness.ts"

// -----------------------------------------------------------------------------
// summaries
// -----------------------------------------------------------------------------

export interface Summary {
  readonly result: Result
  readonly median: number
  readonly p25: number
  readonly p75: number
}

/**
 * A latency measured outside the per-call rounds, one sample per event, in milliseconds: how long a trip takes to
 * reach another process (`measurePropagation` in `redis.ts`).
 */
export interface LatencyResult {
  readonly name: string
  readonly description: string
  /** Milliseconds, one per event, in the order measured. */
  readonly samples: ReadonlyArray<number>
}

export const summarize = (results: ReadonlyArray<Result>): Map<string, Summary> =>
  new Map(results.map((result) => [result.name, {
    result,
    median: median(result.samples),
    p25: quantile(result.samples, 0.25),
    p75: quantile(result.samples, 0.75)
  }]))

// -----------------------------------------------------------------------------
// targets
// -----------------------------------------------------------------------------

/** A goal for one case: its median at most `limit` times another case's median, or at most `limit` bytes. */
export interface Target {
  readonly subject: string
  /** The case compared against; absent for an absolute bound. */
  readonly reference?: string | undefined
  readonly limit: number
  /** `<` rather than `≤`. */
  readonly strict?: boolean | undefined
  /** How the bound reads, before the reference's name: "≤ 1/4 of" (effect:closed). */
  readonly claim: string
}

export const targets: ReadonlyArray<Target> = [
  { subject: "ours:closed", reference: "effect:closed", limit: 1 / 4, claim: "≤ 1/4 of" },
  { subject: "ours:closed", reference: "baseline:effect", limit: 15, claim: "≤ 15×" },
  { subject: "ours:open", reference: "effect:open", limit: 1 / 10, claim: "≤ 1/10 of" },
  { subject: "ours:open", reference: "cockatiel:open", limit: 1, strict: true, claim: "<" },
  { subject: "ours:open", reference: "opossum:open", limit: 1, strict: true, claim: "<" },
  { subject: "ours:open", reference: "baseline:effect", limit: 15, claim: "≤ 15×" },
  { subject: "ours:pipeline", reference: "ours:closed", limit: 3, claim: "≤ 3×" },
  // A new key at the cap while every key is open: a search past the open keys each time would be O(keys).
  { subject: "ours:keyed-cap-open", reference: "ours:closed", limit: 5, claim: "≤ 5×" },
  { subject: "ours:keyed-memory", limit: 512, claim: "≤ 512 bytes/key" },
  { subject: "ours:keyed-memory", reference: "effect:keyed-memory", limit: 1.5, claim: "≤ 1.5×" },
  // Local counting keeps Redis off the call path; global counting makes one round trip where Effect's store makes two.
  { subject: "ours:redis-local", reference: "ours:closed", limit: 1.5, claim: "≤ 1.5×" },
  { subject: "ours:redis-global", reference: "effect:redis", limit: 1, strict: true, claim: "<" }
]

export interface Check {
  readonly target: Target
  /** The ratio of medians, or the median itself for an absolute bound; NaN when a case did not run. */
  readonly measured: number
  readonly pass: boolean
  /** Rounds in which the bound held, pairing the two cases round by round. */
  readonly heldRounds: number
  readonly rounds: number
}

const holds = (value: number, target: Target) => target.strict === true ? value < target.limit : value <= target.limit

export const checkTargets = (summaries: Map<string, Summary>): Array<Check> =>
  targets.map((target) => {
    const subject = summaries.get(target.subject)
    const reference = target.reference === undefined ? undefined : summaries.get(target.reference)
    if (subject === undefined || (target.reference !== undefined && reference === undefined)) {
      return { target, measured: NaN, pass: false, heldRounds: 0, rounds: 0 }
    }
    const measured = reference === undefined ? subject.median : subject.median / reference.median
    const samples = subject.result.samples
    let heldRounds = 0
    for (let i = 0; i < samples.length; i++) {
      const value = reference === undefined ? samples[i] : samples[i] / reference.result.samples[i]
      if (holds(value, target)) heldRounds++
    }
    return { target, measured, pass: holds(measured, target), heldRounds, rounds: samples.length }
  })

// -----------------------------------------------------------------------------
// formatting
// -----------------------------------------------------------------------------

const plain = (name: string) => name
const inlineCode = (name: string) => `\`${name}\``
const oneDecimal = (x: number) => Math.round(x * 10) / 10
const ns = (x: number) => Number.isNaN(x) ? "n/a" : x >= 100 ? x.toFixed(0) : x.toFixed(1)
const bytes = (x: number) => Number.isNaN(x) ? "n/a" : x.toFixed(0)
const ratio = (x: number) => Number.isNaN(x) ? "n/a" : x >= 10 ? `${x.toFixed(1)}×` : `${x.toFixed(2)}×`

const measuredText = (check: Check) =>
  check.target.reference === undefined ? `${bytes(check.measured)} bytes/key` : ratio(check.measured)

const limitText = (target: Target) =>
  target.reference === undefined ?
    `${target.limit} bytes/key` :
    `${target.strict === true ? "<" : "≤"} ${
      target.limit < 1 && target.limit > 0
        ? `1/${Math.round(1 / target.limit)} (${target.limit.toFixed(2)}×)`
        : `${target.limit}×`
    }`

const verdict = (check: Check) => Number.isNaN(check.measured) ? "n/a (not run)" : check.pass ? "PASS" : "MISS"

/** Rows of a plain-text table, columns padded to width. */
const textTable = (header: ReadonlyArray<string>, rows: ReadonlyArray<ReadonlyArray<string>>): string => {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)))
  const line = (cells: ReadonlyArray<string>) =>
    cells.map((cell, i) => i === 0 ? cell.padEnd(widths[i]) : cell.padStart(widths[i])).join("  ")
  return [line(header), widths.map((w) => "-".repeat(w)).join("  "), ...rows.map(line)].join("\n")
}

/** A Markdown table, first column left-aligned and the others right-aligned, padded as dprint formats it. */
const markdownTable = (header: ReadonlyArray<string>, rows: ReadonlyArray<ReadonlyArray<string>>): string => {
  const widths = header.map((h, i) => Math.max(3, h.length, ...rows.map((row) => row[i].length)))
  const line = (cells: ReadonlyArray<string>) =>
    `| ${cells.map((cell, i) => i === 0 ? cell.padEnd(widths[i]) : cell.padStart(widths[i])).join(" | ")} |`
  const rule = `| ${widths.map((w, i) => i === 0 ? "-".repeat(w) : `${"-".repeat(w - 1)}:`).join(" | ")} |`
  return [line(header), rule, ...rows.map(line)].join("\n")
}

const timeRows = (summaries: Map<string, Summary>, code: (name: string) => string) => {
  const promise = summaries.get("baseline:promise")?.median ?? NaN
  const effect = summaries.get("baseline:effect")?.median ?? NaN
  const rows: Array<Array<string>> = []
  for (const s of summaries.values()) {
    if (s.result.kind !== "time") continue
    rows.push([
      code(s.result.name),
      ns(s.median),
      `${ns(s.p25)}–${ns(s.p75)}`,
      ratio(s.median / promise),
      ratio(s.median / effect),
      String(s.result.iterations)
    ])
  }
  return rows
}

const timeHeader = ["case", "ns/call", "p25–p75", "× baseline:promise", "× baseline:effect", "calls/sample"]

const memoryRows = (summaries: Map<string, Summary>, code: (name: string) => string) => {
  const rows: Array<Array<string>> = []
  for (const s of summaries.values()) {
    if (s.result.kind !== "memory") continue
    rows.push([code(s.result.name), bytes(s.median), `${bytes(s.p25)}–${bytes(s.p75)}`, String(s.result.keys)])
  }
  return rows
}

const memoryHeader = ["case", "bytes/key", "p25–p75", "keys"]

const checkRows = (checks: ReadonlyArray<Check>, code: (name: string) => string) =>
  checks.map((check) => [
    [
      code(check.target.subject),
      check.target.claim,
      ...(check.target.reference === undefined ? [] : [
        code(check.target.reference)
      ])
    ].join(" "),
    measuredText(check),
    limitText(check.target),
    verdict(check),
    `${check.heldRounds}/${check.rounds}`
  ])

const checkHeader = ["target", "measured", "limit", "result", "held in rounds"]

/** Differences of medians that say where a path's time goes; rows whose cases did not run are left out. */
const breakdown: ReadonlyArray<{ readonly label: string; readonly minuend: string; readonly subtrahend: string }> = [
  {
    label: "exit hook (withFiber + Clock + onExitPrimitive)",
    minuend: "baseline:exit-hook",
    subtrahend: "baseline:effect"
  },
  { label: "our breaker's own logic, closed", minuend: "ours:closed", subtrahend: "baseline:exit-hook" },
  { label: "our rejection beyond a bare Effect.fail", minuend: "ours:open", subtrahend: "baseline:fail" },
  { label: "rolling window update", minuend: "ours:window", subtrahend: "ours:closed" },
  { label: "retry + timeout + bulkhead (ours, via Policy)", minuend: "ours:pipeline", subtrahend: "ours:closed" },
  { label: "retry + timeout + semaphore (Effect's)", minuend: "combinator:pipeline", subtrahend: "ours:closed" },
  { label: "of which Effect.retry, alone", minuend: "combinator:retry", subtrahend: "baseline:effect" },
  { label: "of which Effect.timeout, alone", minuend: "combinator:timeout", subtrahend: "baseline:effect" },
  { label: "of which Semaphore.withPermit, alone", minuend: "combinator:semaphore", subtrahend: "baseline:effect" },
  { label: "Effect's Redis store (2 round trips per call)", minuend: "effect:redis", subtrahend: "effect:closed" },
  { label: "joining a RedisFleet, local counting", minuend: "ours:redis-local", subtrahend: "ours:closed" },
  {
    label: "joining a RedisFleet, global counting (1 round trip)",
    minuend: "ours:redis-global",
    subtrahend: "ours:closed"
  }
]

const breakdownRows = (summaries: Map<string, Summary>, code: (name: string) => string) =>
  breakdown.flatMap(({ label, minuend, subtrahend }) => {
    const a = summaries.get(minuend)
    const b = summaries.get(subtrahend)
    return a === undefined || b === undefined
      ? []
      : [[label, `${code(minuend)} − ${code(subtrahend)}`, ns(a.median - b.median)]]
  })

const breakdownHeader = ["part", "as", "ns/call"]

const millis = (x: number) => Number.isNaN(x) ? "n/a" : x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2)

const latencyRows = (latencies: ReadonlyArray<LatencyResult>, code: (name: string) => string) =>
  latencies.map((l) => [
    code(l.name),
    millis(quantile(l.samples, 0.5)),
    millis(quantile(l.samples, 0.99)),
    millis(Math.min(...l.samples)),
    millis(Math.max(...l.samples)),
    String(l.samples.length)
  ])

const latencyHeader = ["case", "p50 ms", "p99 ms", "min ms", "max ms", "samples"]

/** What the console shows after a run. */
export const consoleReport = (
  summaries: Map<string, Summary>,
  checks: ReadonlyArray<Check>,
  latencies: ReadonlyArray<LatencyResult> = []
): string => {
  const sections: Array<[string, ReadonlyArray<string>, ReadonlyArray<ReadonlyArray<string>>]> = [
    ["Time per call (median across rounds)", timeHeader, timeRows(summaries, plain)],
    ["Where the time goes (differences of medians)", breakdownHeader, breakdownRows(summaries, plain)],
    ["Retained heap per key (median across rounds)", memoryHeader, memoryRows(summaries, plain)],
    ["Trip propagation across processes", latencyHeader, latencyRows(latencies, plain)],
    ["Targets (reported, never enforced)", checkHeader, checkRows(checks, plain)]
  ]
  return sections
    .filter(([, , rows]) => rows.length > 0)
    .map(([title, header, rows]) => `${title}\n${textTable(header, rows)}`)
    .join("\n\n")
}

// -----------------------------------------------------------------------------
// the page and the JSON line
// -----------------------------------------------------------------------------

export interface Machine {
  readonly cpu: string
  readonly cores: number
  readonly memoryGiB: number
  readonly os: string
  readonly node: string
  readonly date: string
}

export const machine = (): Machine => {
  const cpus = os.cpus()
  return {
    cpu: cpus[0]?.model.trim() ?? "unknown",
    cores: cpus.length,
    memoryGiB: Math.round(os.totalmem() / 2 ** 30 * 10) / 10,
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    node: process.version,
    date: new Date().toISOString()
  }
}

const runLine = (settings: Settings, seconds: number) =>
  [
    `${settings.rounds} rounds`,
    `~${settings.sampleMillis} ms per timing sample`,
    `${settings.warmupMillis} ms of warm-up per case after calibration`,
    `${settings.keys} keys per memory sample in ${Math.min(settings.memoryRounds, settings.rounds)} rounds`,
    `shuffle seed ${settings.seed}`
  ].join(", ") + `; ${seconds.toFixed(0)} s in all.`

export const markdownPage = (options: {
  readonly summaries: Map<string, Summary>
  readonly checks: ReadonlyArray<Check>
  readonly machine: Machine
  readonly settings: Settings
  readonly seconds: number
  readonly latencies?: ReadonlyArray<LatencyResult> | undefined
  /** Trips timed per latency case (after the warm-up ones). */
  readonly propagationIterations?: number | undefined
}): string => {
  const { checks, machine: m, seconds, settings, summaries } = options
  const latencies = options.latencies ?? []
  const passed = checks.filter((check) => check.pass).length
  const cases = [...summaries.values(), ...latencies.map((result) => ({ result }))].map((s) =>
    `- ${inlineCode(s.result.name)}: ${s.result.description}.`
  )
  return `# Benchmarks

Generated by \`pnpm bench\` (\`packages/bench\`); do not edit by hand, run it again.

## Machine

- CPU: ${m.cpu}, ${m.cores} cores
- Memory: ${m.memoryGiB} GiB
- OS: ${m.os}
- Node: ${m.node}
- Date: ${m.date}
- Run: ${runLine(settings, seconds)}

## Time per call

Median ns per call across rounds; p25–p75 is the spread across rounds. Ratios are to the baselines of this run.

${markdownTable(timeHeader, timeRows(summaries, inlineCode))}

### Where the time goes

Differences of the medians above, to see which layer a path's cost sits in.

${markdownTable(breakdownHeader, breakdownRows(summaries, inlineCode))}

## Retained heap per key

${markdownTable(memoryHeader, memoryRows(summaries, inlineCode))}
${
    latencies.length === 0 ? "" : `
## Trip propagation across processes

Milliseconds from the start of the failing call in one process to the Open on another process's
\`breaker.transitions\`, over ${latencies[0].samples.length} trips.

${markdownTable(latencyHeader, latencyRows(latencies, inlineCode))}
`
  }
## Targets

Reported, never enforced: ${passed} of ${checks.length} pass. "Measured" is the ratio of the two medians (or the
median itself); "held in rounds" counts the rounds in which the bound held with the two cases paired round by round.

${markdownTable(checkHeader, checkRows(checks, inlineCode))}

## Cases

${cases.join("\n")}

## How it is measured

- Every case runs in one Node process (\`node --expose-gc\`). Each timed case is set up once, calibrated so that one
  sample takes about ${settings.sampleMillis} ms, and warmed up; then every round runs every case once, in a freshly
  shuffled order, and each case reports the median of its rounds. Interleaving spreads drift over all cases alike,
  so ratios from one run hold even when the absolute numbers move from run to run.
- A sample is the wall time (\`performance.now()\`) around N calls, divided by N, subtracting nothing. The Effect
  cases make the N calls inside one Effect program and time the whole \`Effect.runPromise\`; the Promise cases
  \`await\` N calls in a loop.
- The Effect cases build the protected effect per call (\`breaker.protect(noop)\` inside the loop), as application
  code does.
- The open cases are opened by real failures (opossum by \`breaker.open()\`) and check, outside the timing, that
  every call of every sample was rejected and that the breaker is still open; the closed cases check that it is
  still closed.
- \`ours:pipeline\` is our breaker, retry, timeout and bulkhead composed by \`Policy.make\`;
  \`combinator:pipeline\` is the same order with Effect's own \`Effect.retry\`, \`Effect.timeout\` and
  \`Semaphore\` inside our breaker. The \`combinator:*\` cases time each of those combinators alone.
  \`Effect.timeout\` races the call against a sleep, so it forks fibers and arms a timer on every call.
- \`ours:keyed-cap-open\` holds 10,000 keys opened by real failures, then calls a new key each time: at the cap the
  least recently used Closed key goes (the previous new key), and no open one after the first new key (which found
  none Closed), as the sample's check verifies.
- Memory cases run in the first ${Math.min(settings.memoryRounds, settings.rounds)} rounds only (their figures
  barely move). Each builds a fresh keyed breaker, forces GC before and after touching every key once, and divides
  the growth of \`heapUsed\` by the number of keys. The key strings are made before the first reading and are not
  counted for either breaker.
- The Redis cases (\`effect:redis\`, \`ours:redis-*\`) each start their own \`redis-server\` on a free loopback
  port (\`--save "" --appendonly no\`), so a call's Redis round trips cross the loopback only. After every sample
  they read the server's \`INFO commandstats\`: \`effect:redis\` must have run exactly two scripts per call (admit and
  record), \`ours:redis-global\` one per call and \`ours:redis-local\` none, give or take the fleet's own heartbeat
  and resync. Before timing, the \`ours:redis-*\` breakers trip a side key, which a second fleet member must see:
  a breaker that stayed solo would pass the round-trip check of \`ours:redis-local\` as well.
- \`ours:redis-propagation\` runs two child Node processes, each with its own connection, joined to one
  \`RedisFleet\` (\`local\` counting). They take turns: one trips the breaker with a single failure
  (\`consecutive(1)\`) and notes the time just before the call; the other notes the time its \`transitions\` stream
  shows the Open, and checks that it came from the fleet, from that process, for that cause. Both read the system's
  monotonic clock (\`process.hrtime\`), which every process on the machine shares. Then the breaker is reset, and
  the next trip waits until both processes are Closed${
    options.propagationIterations === undefined
      ? ""
      : `; ${options.propagationIterations} trips are timed, after a few untimed ones`
  }.
- opossum runs with \`timeout: false\`, \`rollingPercentilesEnabled: false\` and \`enableSnapshots: false\`;
  cockatiel with \`ConsecutiveBreaker(5)\` and \`halfOpenAfter\` of one hour.

## Reproduce

\`\`\`sh
pnpm install
apt-get install -y redis-server   # the Redis cases start /usr/bin/redis-server (or $REDIS_SERVER)
pnpm bench                  # full run (about ${Math.ceil(seconds / 60)} min here), rewrites this page
pnpm bench --quick --json   # well under a minute; results as JSON on the last line; leaves this page alone
pnpm bench --only=ours:,baseline:effect --quick   # a subset (never rewrites this page)
pnpm bench --only=redis --quick   # the Redis cases and the trip propagation
\`\`\`

Absolute numbers depend on the machine and on what else runs on it; compare ratios from the same run.
`
}

/** The results as one JSON object: medians per case, plus the spread and sizes behind them. */
export const jsonLine = (summaries: Map<string, Summary>, latencies: ReadonlyArray<LatencyResult> = []): string => {
  const cases: Record<string, Record<string, number | null>> = {}
  for (const s of summaries.values()) {
    cases[s.result.name] = s.result.kind === "time"
      ? {
        ns_per_call: oneDecimal(s.median),
        p25: oneDecimal(s.p25),
        p75: oneDecimal(s.p75),
        iterations: s.result.iterations,
        rounds: s.result.samples.length
      }
      : {
        ns_per_call: null,
        bytes_per_key: oneDecimal(s.median),
        p25: oneDecimal(s.p25),
        p75: oneDecimal(s.p75),
        keys: s.result.keys,
        rounds: s.result.samples.length
      }
  }
  for (const l of latencies) {
    cases[l.name] = {
      ns_per_call: null,
      p50_ms: Math.round(quantile(l.samples, 0.5) * 1000) / 1000,
      p99_ms: Math.round(quantile(l.samples, 0.99) * 1000) / 1000,
      min_ms: Math.round(Math.min(...l.samples) * 1000) / 1000,
      max_ms: Math.round(Math.max(...l.samples) * 1000) / 1000,
      samples: l.samples.length
    }
  }
  return JSON.stringify({ cases, node: process.version })
}
