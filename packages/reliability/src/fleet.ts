/**
 * Two instances on one Redis, under load: a breaker tripped on one (by its traffic, and by an operator's force-open)
 * seen by the other; the propagation times' p50 and p99.
 */
import * as RedisServer from "@effect-resilience/testing/RedisServer"
import { Effect } from "effect"
import * as H from "./Harness.ts"
import { none, type Scenario } from "./Scenario.ts"

type Instance = Parameters<typeof H.breakerState>[0]

const stateOf = (agent: Instance, breaker: string) =>
  Effect.map(
    agent.request("GET", `/api/v1/resilience/circuit-breakers/${breaker}`),
    (response) => String(response.body?.state)
  )

const admin = (agent: Instance, breaker: string, action: "force-open" | "reset") =>
  Effect.flatMap(
    agent.request("POST", `/api/v1/resilience/circuit-breakers/${breaker}/${action}`, { token: H.token }),
    (response) =>
      response.status === 200
        ? Effect.void
        : Effect.fail(new H.ScenarioError({ message: `${action} ${breaker}: ${response.status}` }))
  )

export const scenario: Scenario = {
  name: "fleet",
  title: "Two instances on one Redis: a trip on one seen by the other",
  quick: true,
  run: (ctx) =>
    Effect.gen(function*() {
      const rounds = ctx.quick ? 15 : 50
      const redis = yield* RedisServer.make()
      const a = yield* H.startService({ dataDir: `${ctx.workDir}/a`, redisUrl: redis.url })
      const b = yield* H.startService({ dataDir: `${ctx.workDir}/b`, redisUrl: redis.url })
      const joined = yield* H.timeUntil(
        Effect.map(a.request("GET", "/api/v1/resilience/fleet"), (r) => r.body?.live_instances?.length === 2),
        20_000,
        "100 millis"
      )
      if (joined === undefined) {
        return yield* Effect.fail(new H.ScenarioError({ message: "the fleet never had 2 live instances" }))
      }
      const load = yield* H.load({ rate: 30, tag: "fleet", targets: () => [a, b] })

      // Operator trips: force-open on A, seen on B (polled every 5 ms); reset on A, seen closed on B.
      const opened: Array<number> = []
      const reset: Array<number> = []
      let missedOpen = 0
      for (let i = 0; i < rounds; i++) {
        yield* admin(a, "qdrant", "force-open")
        const seen = yield* H.timeUntil(Effect.map(stateOf(b, "qdrant"), (s) => s === "forced_open"), 5_000, "5 millis")
        if (seen === undefined) missedOpen++
        else opened.push(seen)
        yield* admin(a, "qdrant", "reset")
        const back = yield* H.timeUntil(Effect.map(stateOf(b, "qdrant"), (s) => s === "closed"), 5_000, "5 millis")
        if (back !== undefined) reset.push(back)
        yield* Effect.sleep("100 millis")
      }

      // A trip by traffic: Exa fails on A only (chaos is per process); B keeps a healthy Exa.
      yield* H.chaos(a, "exa", { failure_rate: 1 })
      let n = 0
      const trippedOnA = yield* H.timeUntil(
        Effect.suspend(() =>
          Effect.flatMap(a.request("GET", `/search?q=fleet-trip-${n++}`), () =>
            Effect.map(stateOf(a, "exa_api"), (s) => s === "open"))
        ),
        10_000,
        "5 millis"
      )
      const trafficSeen = yield* H.timeUntil(
        Effect.map(stateOf(b, "exa_api"), (s) =>
          s === "open" || s === "half_open"),
        3_000,
        "5 millis"
      )
      yield* H.chaos(a, "exa", { failure_rate: 0 })
      const sent = yield* load.stop
      const tally = H.tally(sent)
      const p50 = H.percentile(opened, 50)
      const p99 = H.percentile(opened, 99)
      return {
        rows: [
          { metric: "force-open on A seen on B: p50", value: H.ms(p50) },
          { metric: "force-open on A seen on B: p99", value: H.ms(p99), target: "< 50 ms", ok: p99 < 50 },
          none("force-open on A never seen on B (5 s)", missedOpen, rounds),
          {
            metric: "reset on A seen on B: p50 / p99",
            value: `${H.ms(H.percentile(reset, 50))} / ${H.ms(H.percentile(reset, 99))}`
          },
          { metric: "trip by traffic on A (Exa failing there)", value: H.ms(trippedOnA) },
          {
            metric: "that trip seen on B",
            value: trafficSeen === undefined ? "not within 3 s" : `after ${H.ms(trafficSeen)}`
          },
          { metric: "requests during the run (both instances)", value: String(tally.requests) },
          none("failed (non-2xx)", tally.failed)
        ],
        failed: tally.status500 > 0 ? [`fleet: ${tally.status500} responses were 500`] : [],
        figures: {
          propagationP50Ms: p50,
          propagationP99Ms: p99,
          missedOpen,
          trafficTripSeenMs: trafficSeen ?? -1,
          failed: tally.failed
        },
        notes: [
          `${rounds} rounds of force-open and reset of \`qdrant\` on A, B polled every 5 ms (the figures include up to ` +
          "5 ms of polling and one HTTP round trip), with 30 requests/s spread over both instances. Then a real trip: " +
          "Exa failing on A only, A's breaker opened by its own traffic, B watched for 3 s."
        ]
      }
    })
}
