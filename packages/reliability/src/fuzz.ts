/**
 * Fuzzing (issue 17): the agent service as a child process, a few thousand generated requests against every
 * endpoint (paths, methods, headers, bodies: see fuzz/Generate.ts), from a seeded generator so that a failure
 * replays with `RELIABILITY_SEED`. Fails on a 500, a stack trace or the admin token in a response, a guarded
 * (admin or chaos) route answering 2xx without the right token, a connection closed (or reset, or left hanging)
 * without a response, a change of the breakers' or the chaos state, or the service dying.
 */
import { Effect, Ref } from "effect"
import { join } from "node:path"
import * as Client from "./fuzz/Client.ts"
import * as Generate from "./fuzz/Generate.ts"
import * as Prng from "./fuzz/Prng.ts"
import * as Harness from "./Harness.ts"
import { none, type Result, type Row, type Scenario } from "./Scenario.ts"

// A stack frame as V8 prints it (also inside a JSON string, where its newline is `\n`).
const stackFrame = /\bat (?:async )?(?:[^\s()]+ \()?(?:file:\/\/|node:|\/)[^\s)"]*:\d+:\d+/

const services = ["exa", "tavily", "claude", "telegram", "firebase", "qdrant"]

interface Tally {
  readonly byStatus: Map<string, number>
  readonly byEndpoint: Map<string, number>
  readonly failures: Array<string>
  readonly reasons: Map<string, number>
  guardedRejected: number
  unanswered: number
  sent: number
}

const status = (r: Client.RawResponse) => (r._tag === "Response" ? r.status : r._tag)

const parseJson = (text: string): object | undefined => {
  try {
    const parsed: unknown = JSON.parse(text)
    return typeof parsed === "object" && parsed !== null ? parsed : undefined
  } catch {
    return undefined
  }
}

const bump = (map: Map<string, number>, key: string) => map.set(key, (map.get(key) ?? 0) + 1)

const describe = (c: Generate.Case) =>
  `${c.method} ${c.path.length > 120 ? `${c.path.slice(0, 120)}… (${c.path.length} chars)` : c.path}`

export const fuzz: Scenario = {
  name: "fuzz",
  title: "HTTP fuzzing: every endpoint, generated paths, methods, headers and bodies",
  quick: true,
  run: (ctx) =>
    Effect.gen(function*() {
      const seed = Prng.seed()
      const prng = Prng.make(seed)
      const cases = ctx.quick ? 5000 : 30_000
      const instance = yield* Harness.startService({ dataDir: join(ctx.workDir, "fuzz-data") })
      const agent = Client.makeAgent()
      yield* Effect.addFinalizer(() => Effect.sync(() => agent.destroy()))
      const token = Harness.token
      const plain = (method: string, path: string, headers: Record<string, string> = {}, body?: string) =>
        Client.send(agent, instance.port, { method, path, headers, body })

      // What an attack would change: each breaker's state and transitions, and the chaos settings.
      const guardedState = Effect.gen(function*() {
        const breakers = yield* plain("GET", "/api/v1/resilience/circuit-breakers")
        const chaos = yield* plain("GET", "/chaos", { authorization: `Bearer ${token}` })
        if (breakers._tag !== "Response" || chaos._tag !== "Response") return "unreadable"
        const parsed = parseJson(breakers.body) as Record<string, { state: string; state_changes: number }>
        const states = Object.entries(parsed ?? {}).map(([name, b]) => `${name}:${b.state}:${b.state_changes}`).sort()
        return `${states.join(",")} | ${chaos.body}`
      })

      // The controls work with the right token (otherwise every refusal below proves nothing).
      const failures: Array<string> = []
      const list = yield* plain("GET", "/api/v1/resilience/circuit-breakers")
      const breakers = list._tag === "Response" ? Object.keys(parseJson(list.body) ?? {}) : []
      if (breakers.length === 0) failures.push("could not list the circuit breakers")
      const withToken = yield* plain("GET", "/chaos", { authorization: `Bearer ${token}` })
      const withoutToken = yield* plain("GET", "/chaos")
      const reset = yield* plain(
        "POST",
        `/api/v1/resilience/circuit-breakers/${breakers[0] ?? "none"}/reset`,
        { authorization: `Bearer ${token}` }
      )
      if (status(withToken) !== 200) failures.push(`control: GET /chaos with the token gave ${status(withToken)}`)
      if (status(withoutToken) !== 401) {
        failures.push(`control: GET /chaos without a token gave ${status(withoutToken)}`)
      }
      if (status(reset) !== 200) failures.push(`control: reset with the token gave ${status(reset)}`)
      const before = yield* guardedState
      if (before === "unreadable") failures.push("could not read the breakers' and the chaos state")

      const tally: Tally = {
        byStatus: new Map(),
        byEndpoint: new Map(),
        reasons: new Map(),
        failures,
        guardedRejected: 0,
        unanswered: 0,
        sent: 0
      }
      const universe: Generate.Universe = { token, breakers, services }
      const started = yield* Harness.now
      const stateChecks = yield* Ref.make(0)
      yield* Effect.forEach(
        Array.from({ length: cases }, (_, i) => i),
        (i) =>
          Effect.gen(function*() {
            // Generated when its turn comes (cases start in order, so a seed gives the same cases): some bodies
            // are megabytes, which thirty thousand cases made up front would hold at once.
            const c = Generate.generate(prng, universe)
            const response = yield* Client.send(agent, instance.port, c)
            tally.sent++
            bump(tally.byEndpoint, c.endpoint)
            if (response._tag !== "Response") {
              bump(tally.byStatus, response._tag)
              bump(tally.reasons, `${response._tag}: ${response.message.slice(0, 80)}`)
              // Whatever was sent, the client is owed an answer (a 4xx at worst): silence is a defect.
              if (response._tag === "NoAnswer") {
                tally.unanswered++
                failures.push(
                  `no response to ${describe(c)} (body: ${c.body === undefined ? "none" : `${c.body.length} chars`}): `
                    + response.message
                )
              }
              return
            }
            bump(tally.byStatus, String(response.status))
            const what = describe(c)
            if (response.status === 500) failures.push(`500 on ${what}: ${response.body.slice(0, 200)}`)
            const headerText = Object.entries(response.headers).map(([k, v]) => `${k}: ${String(v)}`).join("\n")
            if (response.body.includes(token) || headerText.includes(token)) {
              failures.push(`the admin token in the response to ${what}`)
            }
            if (stackFrame.test(response.body) || stackFrame.test(headerText)) {
              failures.push(`a stack trace in the response to ${what}: ${stackFrame.exec(response.body)?.[0]}`)
            }
            if (c.guarded) {
              if (response.status >= 200 && response.status < 300) {
                failures.push(`${response.status} without the right token on ${what}`)
              } else tally.guardedRejected++
            }
            // Every 500 cases, the guarded state must be what it was.
            if (i % 500 === 499) {
              yield* Ref.update(stateChecks, (n) => n + 1)
              const now = yield* guardedState
              if (now !== before) failures.push(`guarded state changed by case ${i}: ${before} -> ${now}`)
            }
          }),
        { concurrency: 8, discard: true }
      )
      const elapsed = yield* Harness.since(started)
      const after = yield* guardedState
      if (after !== before) failures.push(`guarded state changed: ${before} -> ${after}`)
      const alive = instance.child.exitCode === null && instance.child.signalCode === null
      if (!alive) failures.push(`the service died: ${instance.output().slice(-2000)}`)
      const health = yield* plain("GET", "/health/live")
      if (status(health) !== 200) failures.push(`/health/live after the fuzzing: ${status(health)}`)

      // Defects the service logged while answering something else than a 500 (reported, not failed on).
      const errorLines = instance.output().split("\n").filter((line) =>
        /\bERROR\b|\bFATAL\b|level=(error|fatal)/i.test(line)
      )

      const statuses = [...tally.byStatus.entries()].sort(([a], [b]) => a.localeCompare(b))
      const count500 = tally.byStatus.get("500") ?? 0
      const rows: Array<Row> = [
        { metric: "cases sent", value: String(tally.sent) },
        { metric: "endpoints covered", value: String(tally.byEndpoint.size) },
        { metric: "rate", value: `${Math.round((tally.sent / elapsed) * 1000)} req/s (8 in flight)` },
        none("500 responses", count500),
        none("connections closed without a response", tally.unanswered),
        {
          metric: "guarded routes (admin, chaos) without the right token",
          value: `${tally.guardedRejected} refused, ${
            failures.filter((f) => f.includes("without the right token")).length
          } answered 2xx`,
          target: "all refused",
          ok: !failures.some((f) => f.includes("without the right token"))
        },
        {
          metric: "stack traces or the token in responses",
          value: String(failures.filter((f) => f.includes("stack trace") || f.includes("admin token")).length),
          target: "0",
          ok: !failures.some((f) => f.includes("stack trace") || f.includes("admin token"))
        },
        {
          metric: "breaker and chaos state unchanged",
          value: `${(yield* Ref.get(stateChecks)) + 1} checks`,
          target: "unchanged",
          ok: !failures.some((f) => f.includes("state changed"))
        },
        { metric: "service log lines at ERROR or FATAL", value: String(errorLines.length) },
        { metric: "service alive and live afterwards", value: String(alive && status(health) === 200), ok: alive },
        ...statuses.map(([s, n]): Row => ({ metric: `status ${s}`, value: String(n) }))
      ]
      const result: Result = {
        rows,
        failed: failures.slice(0, 50),
        figures: {
          seed,
          cases: tally.sent,
          elapsed_ms: elapsed,
          service_error_lines: errorLines.length,
          status_500: count500,
          unanswered: tally.unanswered,
          guarded_refused: tally.guardedRejected,
          ...Object.fromEntries(statuses.map(([s, n]) => [`status_${s}`, n]))
        },
        notes: [
          `Seed ${seed} (replay with RELIABILITY_SEED=${seed}). Credentials sent were never the right one (wrong, `
          + `prefixed, suffixed, truncated, upper-cased, base64, other schemes, repeated headers); the controls were `
          + `checked with it first (GET /chaos 200 with it, 401 without; a reset 200).`,
          `ClientRefused: cases node:http would not send (invalid header or path characters), not counted; `
          + `NoAnswer: reset, closed or timed out without a response, a failure of the run.`,
          ...[...tally.reasons.entries()].map(([reason, n]) => `${n} × ${reason}`),
          ...errorLines.slice(0, 5).map((line) => `service log: ${line.slice(0, 300)}`)
        ]
      }
      yield* ctx.log(
        `fuzz: ${tally.sent} cases in ${elapsed} ms, ${count500} 500s, ${tally.unanswered} unanswered, `
          + `${failures.length} failures`
      )
      return result
    })
}

/** The runner's name for it. */
export const scenario: Scenario = fuzz

export const scenarios: ReadonlyArray<Scenario> = [fuzz]
