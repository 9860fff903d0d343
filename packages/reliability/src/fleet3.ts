/**
 * Three instances on one Redis in quorum mode (`FLEET_COUNTING=quorum`, `FLEET_QUORUM=2`), under load: one instance
 * cut off from its upstream opens its breaker alone (the quorum holds the other two closed); a second one failing
 * opens the breaker everywhere (propagation p50/p99); Redis SIGKILLed while the breaker is open fleet-wide, then
 * restarted empty, then killed and restarted with its data: every instance keeps its own decision through the
 * outage and the state does not flap when Redis returns (each instance sampled every 10 ms, transitions counted).
 */
import * as RedisServer from "@effect-resilience/testing/RedisServer"
import { Effect, Fiber } from "effect"
import * as H from "./Harness.ts"
import { none, type Row, type Scenario } from "./Scenario.ts"

type Instance = Parameters<typeof H.breakerState>[0]

// The breaker tripped by traffic (Exa failing by chaos); `qdrant` carries the operator's controls after a restart.
const breaker = "exa_api"
const marker = "qdrant"

const circuit = (agent: Instance, name = breaker) =>
  Effect.flatMap(
    agent.request("GET", `/api/v1/resilience/circuit-breakers/${name}`),
    (response) =>
      Effect.map(H.now, (now) => ({
        state: String(response.body?.state),
        changes: Number(response.body?.state_changes ?? Number.NaN),
        // When the instance entered its state, by the machine's clock (the suite's and the instances' own).
        enteredAt: now - Number(response.body?.time_in_state_ms ?? Number.NaN)
      }))
  )

const stateOf = (agent: Instance, name = breaker) => Effect.map(circuit(agent, name), (c) => c.state)

const isOpen = (state: string) => state === "open"

const admin = (agent: Instance, action: "reset" | "force-open", name = breaker) =>
  Effect.flatMap(
    agent.request("POST", `/api/v1/resilience/circuit-breakers/${name}/${action}`, { token: H.token }),
    (response) =>
      response.status === 200
        ? Effect.void
        : Effect.fail(new H.ScenarioError({ message: `${action} ${name}: ${response.status}` }))
  )

const reset = (agent: Instance, name = breaker) => admin(agent, "reset", name)

const fleetView = (agent: Instance) => Effect.map(agent.request("GET", "/api/v1/resilience/fleet"), (r) => r.body)

/** Searches on `agent` (each one unique) until its own breaker is open: the ms it took, or undefined. */
const tripBy = (agent: Instance, tag: string) => {
  let n = 0
  return H.timeUntil(
    Effect.suspend(() =>
      Effect.flatMap(agent.request("GET", `/search?q=${tag}-${n++}`), () => Effect.map(stateOf(agent), isOpen))
    ),
    10_000,
    "5 millis"
  )
}

/** Samples each instance's state every `everyMs` until stopped: per instance, the states seen and failed reads. */
const sample = (agents: ReadonlyArray<Instance>, everyMs: number) =>
  Effect.gen(function*() {
    const seen = agents.map(() => ({ states: [] as Array<string>, errors: 0 }))
    const fibers = yield* Effect.forEach(agents, (agent, i) =>
      Effect.forkScoped(
        stateOf(agent).pipe(
          Effect.match({
            onFailure: () => void seen[i].errors++,
            onSuccess: (state) => void seen[i].states.push(state)
          }),
          Effect.andThen(Effect.sleep(`${everyMs} millis`)),
          Effect.forever
        )
      ))
    return Effect.as(Fiber.interruptAll(fibers), seen)
  })

const transitions = (states: ReadonlyArray<string>) => states.filter((s, i) => i > 0 && s !== states[i - 1]).length

/** When (the clock's ms) `agent` is first seen open, polling every 5 ms for at most `within` ms. */
const firstOpen = (agent: Instance, within: number) =>
  Effect.flatMap(
    H.timeUntil(Effect.map(stateOf(agent), isOpen), within, "5 millis"),
    (elapsed) => elapsed === undefined ? Effect.succeed(undefined) : H.now
  )

export const scenario: Scenario = {
  name: "fleet-quorum",
  title: "Three instances in quorum mode on one Redis: a partitioned instance, a fleet-wide trip, Redis killed",
  quick: true,
  run: (ctx) =>
    Effect.gen(function*() {
      const rounds = ctx.quick ? 8 : 30
      const holdMs = ctx.quick ? 1_000 : 3_000
      const outageMs = ctx.quick ? 3_000 : 8_000
      const afterMs = ctx.quick ? 3_000 : 6_000
      // Longer than a kill, its outage and the watch after it: every change seen in that window is a flap, not the
      // opening elapsing.
      const openDuration = ctx.quick ? "15 seconds" : "30 seconds"
      const redis = yield* RedisServer.make({ persistence: true })
      const env = { FLEET_COUNTING: "quorum", FLEET_QUORUM: "2" }
      const [a, b, c] = yield* Effect.forEach(
        ["a", "b", "c"],
        (name) => H.startService({ dataDir: `${ctx.workDir}/${name}`, redisUrl: redis.url, openDuration, env }),
        { concurrency: 3 }
      )
      const all = [a, b, c] as const
      const joined = yield* H.timeUntil(
        Effect.map(
          Effect.forEach(all, fleetView),
          (views) =>
            views.every((v) =>
              v?.live_instances?.length === 3 &&
              v?.breakers?.some((x: { name: string; counting: string }) =>
                x.name === breaker && x.counting === "quorum"
              )
            )
        ),
        20_000,
        "100 millis"
      )
      if (joined === undefined) {
        return yield* Effect.fail(
          new H.ScenarioError({ message: `the fleet never had 3 live instances counting ${breaker} by quorum` })
        )
      }
      const load = yield* H.load({ rate: 30, tag: "fq", targets: () => all })
      const everywhere = (name: string, state: string, within: number) =>
        H.timeUntil(
          Effect.map(
            Effect.forEach(all, (agent) => stateOf(agent, name)),
            (states) => states.every((s) => s === state)
          ),
          within,
          "10 millis"
        )
      const closedEverywhere = (within: number) => everywhere(breaker, "closed", within)
      const heal = Effect.andThen(H.chaos(a, "exa", { failure_rate: 0 }), H.chaos(b, "exa", { failure_rate: 0 }))

      // (a) and (b), `rounds` times: A cut off from Exa opens alone; B cut off too opens the fleet.
      const aloneTrip: Array<number> = []
      let quorumBroken = 0
      let aNotOpen = 0
      const propagation: Array<number> = []
      const applied: Array<number> = []
      let missedFleet = 0
      let notClosedAfterReset = 0
      for (let round = 0; round < rounds; round++) {
        yield* H.chaos(a, "exa", { failure_rate: 1 })
        const tripped = yield* tripBy(a, `fq-a${round}`)
        if (tripped !== undefined) aloneTrip.push(tripped)
        const hold = yield* sample([a, b, c], 10)
        yield* Effect.sleep(holdMs)
        const [onA, onB, onC] = yield* hold
        if (onB.states.some((s) => s !== "closed") || onC.states.some((s) => s !== "closed")) quorumBroken++
        if (onA.states.some((s) => s !== "open")) aNotOpen++

        const seenOnC = yield* Effect.forkChild(firstOpen(c, 5_000))
        const seenOnB = yield* Effect.forkChild(firstOpen(b, 5_000))
        yield* H.chaos(b, "exa", { failure_rate: 1 })
        yield* tripBy(b, `fq-b${round}`)
        const [atB, atC] = [yield* Fiber.join(seenOnB), yield* Fiber.join(seenOnC)]
        if (atB === undefined || atC === undefined) missedFleet++
        else {
          propagation.push(Math.max(0, atC - atB))
          // The same from the instances' own figures: B's trip to C's applying the fleet's opening.
          const [bNow, cNow] = yield* Effect.all([circuit(b), circuit(c)], { concurrency: 2 })
          applied.push(cNow.enteredAt - bNow.enteredAt)
        }

        yield* heal
        yield* reset(c)
        if ((yield* closedEverywhere(5_000)) === undefined) notClosedAfterReset++
        yield* Effect.sleep("100 millis")
      }

      yield* ctx.log(`fleet-quorum: B seen open to C seen open (ms): ${propagation.join(" ")}`)
      yield* ctx.log(`fleet-quorum: B's trip to C's opening, by their time in state (ms): ${applied.join(" ")}`)

      // The marker breaker gets a few fleet epochs, as a breaker an operator has forced open and reset before.
      for (let i = 0; i < 3; i++) {
        yield* admin(a, "force-open", marker)
        yield* everywhere(marker, "forced_open", 5_000)
        yield* reset(a, marker)
        yield* everywhere(marker, "closed", 5_000)
      }

      // (c) Redis killed while the breaker is open fleet-wide, restarted empty, then killed and restarted with its data.
      const outage = (label: string, restart: Effect.Effect<void, RedisServer.RedisServerError>) =>
        Effect.gen(function*() {
          yield* H.chaos(a, "exa", { failure_rate: 1 })
          yield* tripBy(a, `fq-${label}-a`)
          yield* H.chaos(b, "exa", { failure_rate: 1 })
          yield* tripBy(b, `fq-${label}-b`)
          const openEverywhere = yield* H.timeUntil(
            Effect.map(Effect.forEach(all, (agent) => stateOf(agent)), (states) => states.every(isOpen)),
            5_000,
            "10 millis"
          )
          const before = yield* Effect.forEach(all, (agent) => circuit(agent))
          const watch = yield* sample(all, 10)
          yield* Effect.sleep("500 millis")
          yield* redis.kill
          yield* Effect.sleep(outageMs)
          yield* restart
          const restarted = yield* H.now
          // Back in the fleet: every instance sees the three heartbeats again.
          const rejoined = yield* Effect.forEach(all, (agent) =>
            H.timeUntil(
              Effect.map(fleetView(agent), (v) => v?.live_instances?.length === 3),
              15_000,
              "50 millis"
            ), { concurrency: 3 })
          // As soon as the three are back: an operator's force-open on C (another breaker, so that the one watched
          // is left alone) must reach A and B through the restarted Redis.
          yield* admin(c, "force-open", marker)
          const forcedAfter = yield* H.since(restarted)
          const forcedSeen = yield* everywhere(marker, "forced_open", 10_000)
          yield* Effect.sleep(Math.max(0, afterMs - (yield* H.since(restarted))))
          const seen = yield* watch
          const after = yield* Effect.forEach(all, (agent) => circuit(agent))
          yield* heal
          // A reset on C after the restart reaches A and B: the fleet works again (a new incarnation when empty).
          yield* reset(c)
          const resetSeen = yield* closedEverywhere(10_000)
          yield* reset(c, marker)
          yield* everywhere(marker, "closed", 10_000)
          yield* Effect.sleep("100 millis")
          return {
            label,
            openEverywhere,
            samples: seen.map((s) => s.states.length),
            readErrors: seen.reduce((n, s) => n + s.errors, 0),
            sampledTransitions: seen.map((s) => transitions(s.states)),
            notOpen: seen.map((s) => s.states.filter((state) => !isOpen(state)).length),
            stateChanges: after.map((x, i) => x.changes - before[i].changes),
            rejoined,
            forcedAfter,
            forcedSeen,
            resetSeen
          }
        })
      yield* ctx.log("fleet-quorum: Redis killed while open fleet-wide, restarted empty")
      const empty = yield* outage("empty", redis.restartEmpty)
      yield* ctx.log("fleet-quorum: Redis killed while open fleet-wide, restarted with its data")
      const kept = yield* outage("data", redis.restart)

      const sent = yield* load.stop
      const tally = H.tally(sent)
      const p50 = H.percentile(propagation, 50)
      const p99 = H.percentile(propagation, 99)
      const appliedP50 = H.percentile(applied, 50)
      const appliedP99 = H.percentile(applied, 99)
      const slow = propagation.filter((ms) => ms >= 50).length
      const rows: Array<Row> = [
        { metric: "A cut off from Exa: its breaker open after (p50)", value: H.ms(H.percentile(aloneTrip, 50)) },
        none(
          `rounds where B or C left closed while only A was open (${holdMs} ms, every 10 ms)`,
          quorumBroken,
          rounds
        ),
        none("rounds where A did not stay open on its own", aNotOpen, rounds),
        { metric: "B tripping too: open on C (quorum reached), p50", value: H.ms(p50) },
        { metric: "B tripping too: open on C, p99", value: H.ms(p99), target: "< 50 ms", ok: p99 < 50 },
        {
          metric: "rounds seen on C 50 ms or more after B (max)",
          value: `${slow} of ${rounds} (${H.ms(propagation.length === 0 ? Number.NaN : Math.max(...propagation))})`
        },
        {
          metric: "B's trip to C's state change, by the instances' own time in state: p50 / p99",
          value: `${H.ms(appliedP50)} / ${H.ms(appliedP99)}`
        },
        none("rounds where the fleet did not open on C (5 s)", missedFleet, rounds),
        none("rounds where a reset on C did not close all three (5 s)", notClosedAfterReset, rounds)
      ]
      for (const o of [empty, kept]) {
        const name = o.label === "empty" ? "Redis restarted empty" : "Redis restarted with its data"
        const flaps = o.sampledTransitions.reduce((n, t) => n + t, 0)
        const changes = o.stateChanges.reduce((n, t) => n + t, 0)
        const left = o.notOpen.reduce((n, t) => n + t, 0)
        rows.push(
          {
            metric: `${name}: open on all three before the kill, after B's trip`,
            value: o.openEverywhere === undefined ? "not within 5 s" : H.ms(o.openEverywhere),
            target: "within 5 s",
            ok: o.openEverywhere !== undefined
          },
          {
            metric: `${name}: samples not open, 0.5 s before the kill to ${afterMs / 1000}+ s after (A / B / C)`,
            value: `${o.notOpen.join(" / ")} of ${o.samples.join(" / ")}` +
              (o.readErrors > 0 ? ` (${o.readErrors} reads failed)` : ""),
            target: "0",
            ok: left === 0
          },
          {
            metric: `${name}: transitions sampled / state_changes counted (A, B, C)`,
            value: `${o.sampledTransitions.join(", ")} / ${o.stateChanges.join(", ")}`,
            target: "0",
            ok: flaps === 0 && changes === 0
          },
          {
            metric: `${name}: restart to 3 live instances seen (A / B / C)`,
            value: o.rejoined.map(H.ms).join(" / ")
          },
          {
            metric: `${name}: a force-open on C (${marker}) as soon as all three are back, seen on all three`,
            value: `${o.forcedSeen === undefined ? "not within 10 s" : H.ms(o.forcedSeen)} (sent ${
              H.ms(o.forcedAfter)
            } after the restart)`,
            target: "< 1 s",
            ok: o.forcedSeen !== undefined && o.forcedSeen < 1_000
          },
          {
            metric: `${name}: then a reset on C (${breaker}) seen closed on all three`,
            value: o.resetSeen === undefined ? "not within 10 s" : H.ms(o.resetSeen),
            target: "within 10 s",
            ok: o.resetSeen !== undefined
          }
        )
      }
      rows.push(
        { metric: "requests during the run (three instances)", value: String(tally.requests) },
        none("failed (non-2xx)", tally.failed),
        none("500s", tally.status500),
        { metric: "served degraded", value: String(tally.degraded) }
      )
      return {
        rows,
        failed: tally.status500 > 0 ? [`fleet-quorum: ${tally.status500} responses were 500`] : [],
        figures: {
          rounds,
          quorumBroken,
          propagationP50Ms: p50,
          propagationP99Ms: p99,
          appliedP50Ms: appliedP50,
          appliedP99Ms: appliedP99,
          missedFleet,
          emptyFlaps: empty.sampledTransitions.reduce((n, t) => n + t, 0),
          emptyStateChanges: empty.stateChanges.reduce((n, t) => n + t, 0),
          emptyResetSeenMs: empty.resetSeen ?? -1,
          emptyForceOpenSeenMs: empty.forcedSeen ?? -1,
          dataFlaps: kept.sampledTransitions.reduce((n, t) => n + t, 0),
          dataStateChanges: kept.stateChanges.reduce((n, t) => n + t, 0),
          dataResetSeenMs: kept.resetSeen ?? -1,
          dataForceOpenSeenMs: kept.forcedSeen ?? -1,
          requests: tally.requests,
          failed: tally.failed,
          status500: tally.status500
        },
        notes: [
          `Three instances (\`FLEET_COUNTING=quorum\`, \`FLEET_QUORUM=2\`, \`BREAKER_OPEN_DURATION=${openDuration}\`) ` +
          `on one Redis, 30 requests/s spread over them. ${rounds} rounds: Exa failing on A only (chaos), A's ` +
          `\`${breaker}\` opened by its own searches, B and C sampled every 10 ms for ${holdMs} ms; then Exa failing ` +
          "on B too, B's trip is the second vote: the time from B seen open to C seen open (both polled every 5 ms) " +
          "is the propagation; Exa healed and a reset on C closes all three. Then, twice, the breaker open " +
          `fleet-wide, Redis SIGKILLed for ${outageMs / 1000} s and restarted (empty: its directory emptied; then ` +
          "with its append-only file), each instance sampled every 10 ms from 0.5 s before the kill to " +
          `${afterMs / 1000} s after the restart, and its \`state_changes\` compared. Once all three see each ` +
          `other's heartbeats again, an operator's force-open of \`${marker}\` (a breaker with earlier fleet epochs) ` +
          "on C must reach A and B (target < 1 s: this scenario's, not the issue's); after the window, a reset of " +
          `\`${breaker}\` on C must close all three.`
        ]
      }
    })
}
