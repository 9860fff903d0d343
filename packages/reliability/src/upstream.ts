/**
 * An upstream turned bad then good with the chaos controls, under load: time to detect (Exa's health check
 * unhealthy, its breaker open) and time to recover (searches served by Exa again), against the seeds' targets
 * (detection < 30 s, recovery < 5 s).
 */
import { Effect } from "effect"
import * as H from "./Harness.ts"
import { none, type Scenario } from "./Scenario.ts"

export const scenario: Scenario = {
  name: "upstream",
  title: "An upstream turned bad then good (chaos controls)",
  quick: true,
  run: (ctx) =>
    Effect.gen(function*() {
      // The service's own open duration (2 s): the recovery it is configured for.
      const agent = yield* H.startService({ dataDir: `${ctx.workDir}/data`, openDuration: "2 seconds" })
      yield* H.timeUntil(Effect.map(agent.request("GET", "/health/ready"), (r) => r.status === 200), 15_000)
      const load = yield* H.load({ rate: 20, chatShare: 0, tag: "up", targets: () => [agent] })
      yield* Effect.sleep("2 seconds")

      yield* H.chaos(agent, "exa", { failure_rate: 1 })
      const [breakerOpen, checkUnhealthy] = yield* Effect.all([
        H.timeUntil(Effect.map(H.breakerState(agent, "exa_api"), (s) => s === "open"), 30_000, "50 millis"),
        H.timeUntil(
          Effect.map(agent.request("GET", "/health"), (r) => r.body?.services?.exa_api?.status === "unhealthy"),
          30_000,
          "100 millis"
        )
      ], { concurrency: 2 })
      yield* Effect.sleep("1 second")

      yield* H.chaos(agent, "exa", { failure_rate: 0 })
      let probe = 0
      const recovered = yield* H.timeUntil(
        Effect.map(agent.request("GET", `/search?q=up-recovery-${probe++}`), (r) => r.body?.served_by === "exa_api"),
        30_000,
        "50 millis"
      )
      const closed = yield* H.timeUntil(
        Effect.map(H.breakerState(agent, "exa_api"), (s) => s === "closed"),
        30_000,
        "50 millis"
      )
      yield* Effect.sleep("1 second")
      const sent = yield* load.stop
      const tally = H.tally(sent)
      const detection = Math.max(breakerOpen ?? Infinity, checkUnhealthy ?? Infinity)
      return {
        rows: [
          { metric: "requests (search, 20/s)", value: String(tally.requests) },
          none("failed (non-2xx)", tally.failed),
          { metric: "served degraded (Tavily)", value: String(tally.degraded) },
          { metric: "bad to breaker open", value: H.ms(breakerOpen) },
          { metric: "bad to health check unhealthy", value: H.ms(checkUnhealthy) },
          {
            metric: "time to detect (both)",
            value: H.ms(Number.isFinite(detection) ? detection : undefined),
            target: "< 30 s",
            ok: detection < 30_000
          },
          {
            metric: "good to served by Exa again",
            value: H.ms(recovered),
            target: "< 5 s",
            ok: (recovered ?? Infinity) < 5_000
          },
          { metric: "good to breaker closed", value: H.ms(closed) }
        ],
        failed: tally.status500 > 0 ? [`upstream: ${tally.status500} responses were 500`] : [],
        figures: {
          detectMs: Number.isFinite(detection) ? detection : -1,
          breakerOpenMs: breakerOpen ?? -1,
          checkUnhealthyMs: checkUnhealthy ?? -1,
          recoverMs: recovered ?? -1,
          failed: tally.failed
        },
        notes: [
          "Exa's chaos failure rate set to 1, then to 0, with searches at 20/s. The health check runs every 5 s " +
          "(the service's setting), which bounds the detection time of the check; the breaker (3 failures in a row) " +
          "opens on the traffic. The open duration is the service's default, 2 s."
        ]
      }
    })
}
