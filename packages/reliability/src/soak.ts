/**
 * Soak: sustained load with periodic faults (an upstream failing, Redis killed and restarted, Claude failing), the
 * service's resident memory, open file descriptors and responsiveness sampled every few seconds; the slope over the
 * second half (after the warm-up) is reported.
 */
import * as RedisServer from "@effect-resilience/testing/RedisServer"
import { Effect, Fiber } from "effect"
import * as H from "./Harness.ts"
import type { Scenario } from "./Scenario.ts"

interface Sample {
  readonly t: number
  readonly rss: number
  readonly fds: number
  readonly liveMs: number
}

const mb = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MB`

export const scenario: Scenario = {
  name: "soak",
  title: "Soak: sustained load with periodic faults",
  quick: true,
  run: (ctx) =>
    Effect.gen(function*() {
      const seconds = Math.round((ctx.minutes ?? (ctx.quick ? 2 : 10)) * 60)
      const rate = 40
      const redis = yield* RedisServer.make({ persistence: true })
      const agent = yield* H.startService({ dataDir: `${ctx.workDir}/data`, redisUrl: redis.url })
      yield* H.timeUntil(Effect.map(agent.request("GET", "/health/ready"), (r) => r.status === 200), 15_000)
      const pid = H.servicePid(agent)
      const start = yield* H.now
      const samples: Array<Sample> = []
      const sample = Effect.gen(function*() {
        const before = yield* H.now
        yield* Effect.ignore(agent.request("GET", "/health/live"))
        const liveMs = (yield* H.now) - before
        const stats = H.processStats(pid)
        if (stats !== undefined) samples.push({ t: (before - start) / 1000, ...stats, liveMs })
      })
      const sampler = yield* Effect.forkScoped(Effect.forever(Effect.andThen(sample, Effect.sleep("3 seconds"))))
      const load = yield* H.load({ rate, tag: "soak", targets: () => [agent] })

      // A fault every 20 s, each lasting 5 s, in turn.
      const faults = [
        {
          name: "exa failing",
          on: H.chaos(agent, "exa", { failure_rate: 1 }),
          off: H.chaos(agent, "exa", { failure_rate: 0 })
        },
        { name: "redis killed", on: redis.kill, off: redis.restart },
        {
          name: "claude failing",
          on: H.chaos(agent, "claude", { failure_rate: 1 }),
          off: H.chaos(agent, "claude", { failure_rate: 0 })
        }
      ]
      let injected = 0
      while ((yield* H.since(start)) < (seconds - 20) * 1000) {
        yield* Effect.sleep("15 seconds")
        const fault = faults[injected++ % faults.length]
        yield* ctx.log(`soak: ${fault.name} at ${((yield* H.since(start)) / 1000).toFixed(0)} s`)
        yield* fault.on
        yield* Effect.sleep("5 seconds")
        yield* fault.off
      }
      const left = seconds * 1000 - (yield* H.since(start))
      if (left > 0) yield* Effect.sleep(left)
      const sent = yield* load.stop
      yield* sample
      yield* Fiber.interrupt(sampler)

      const tally = H.tally(sent)
      const secondHalf = samples.filter((s) => s.t >= seconds / 2)
      const rssSlope = H.slope(secondHalf.map((s) => [s.t / 60, s.rss / 2 ** 20] as const))
      const fdSlope = H.slope(secondHalf.map((s) => [s.t / 60, s.fds] as const))
      const first = samples[0]
      const last = samples[samples.length - 1]
      const liveP99 = H.percentile(samples.map((s) => s.liveMs), 99)
      return {
        rows: [
          { metric: "duration, load", value: `${seconds} s at ${rate} requests/s, ${injected} faults` },
          { metric: "requests", value: String(tally.requests) },
          { metric: "failed (non-2xx)", value: String(tally.failed), target: "0", ok: tally.failed === 0 },
          { metric: "served degraded", value: String(tally.degraded) },
          { metric: "latency p99 (all requests)", value: H.ms(tally.p99) },
          { metric: "resident memory: first, last", value: `${mb(first?.rss ?? 0)}, ${mb(last?.rss ?? 0)}` },
          { metric: "resident memory slope, second half", value: `${rssSlope.toFixed(2)} MB/min`, target: "flat" },
          { metric: "open file descriptors: first, last", value: `${first?.fds ?? "n/a"}, ${last?.fds ?? "n/a"}` },
          { metric: "open file descriptors slope, second half", value: `${fdSlope.toFixed(2)} /min`, target: "flat" },
          { metric: "/health/live round trip p99 (event-loop delay bound)", value: H.ms(liveP99) },
          { metric: "samples", value: String(samples.length) }
        ],
        failed: tally.status500 > 0 ? [`soak: ${tally.status500} responses were 500`] : [],
        figures: {
          seconds,
          requests: tally.requests,
          failed: tally.failed,
          rssFirstMb: (first?.rss ?? 0) / 2 ** 20,
          rssLastMb: (last?.rss ?? 0) / 2 ** 20,
          rssSlopeMbPerMin: rssSlope,
          fdSlopePerMin: fdSlope,
          liveP99Ms: liveP99
        },
        notes: [
          "Faults in turn every 20 s, 5 s each: Exa failing, Redis SIGKILLed then restarted with its data, Claude " +
          "failing. Sampled every 3 s from outside: resident memory and open descriptors from /proc/<pid>, and the " +
          "round trip of /health/live as an upper bound of the event-loop delay (the service exports no process " +
          "metrics: heap and fiber counts are not sampled)."
        ]
      }
    })
}
