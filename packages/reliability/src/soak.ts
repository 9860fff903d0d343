/**
 * Soak: sustained load with periodic faults (an upstream failing, Redis killed and restarted, Claude failing), the
 * service sampled every few seconds: resident memory and open file descriptors from /proc, heap, active handles,
 * event-loop delay (and live fibers when the service counts them) from its own `/metrics`, and the round trip of
 * `/health/live`. The slope of each over the second half (after the warm-up) is reported with whether it levels off;
 * the heap is judged on what each full collection left (the heap used between them also holds garbage that waits for
 * the next one). Only a sampling failure fails the scenario.
 */
import * as RedisServer from "@effect-resilience/testing/RedisServer"
import { Effect, Fiber } from "effect"
import * as H from "./Harness.ts"
import { none, type Row, type Scenario } from "./Scenario.ts"

interface Sample {
  readonly t: number
  readonly rss: number
  readonly fds: number
  readonly liveMs: number
}

/** What one scrape of the service's `/metrics` gave. */
interface ProcessSample {
  readonly t: number
  readonly heapUsed: number
  readonly heapTotal: number
  /** The heap the last full collection left, and how many there were: undefined before the first. */
  readonly heapLive: number | undefined
  readonly fullCollections: number | undefined
  readonly handles: number
  readonly eventLoopP99: number
  readonly eventLoopMax: number
  /** `child_fibers_active`: only when the service enables Effect's runtime metrics. */
  readonly fibers: number | undefined
}

const mb = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MB`

/** The value of an unlabelled series in a Prometheus text exposition, or undefined when it is absent. */
const seriesValue = (text: string, name: string): number | undefined => {
  for (const line of text.split("\n")) {
    if (line.startsWith(`${name} `)) {
      const value = Number(line.slice(name.length + 1).trim().split(" ")[0])
      return Number.isFinite(value) ? value : undefined
    }
  }
  return undefined
}

/** Parses the process metrics out of a scrape; a string names what is missing. */
const processSample = (t: number, text: string): ProcessSample | string => {
  const names = {
    heapUsed: "nodejs_heap_size_used_bytes",
    heapTotal: "nodejs_heap_size_total_bytes",
    handles: "nodejs_active_resources",
    eventLoopP99: "nodejs_eventloop_delay_p99_seconds",
    eventLoopMax: "nodejs_eventloop_delay_max_seconds"
  } as const
  const values: Partial<Record<keyof typeof names, number>> = {}
  const missing: Array<string> = []
  for (const [field, name] of Object.entries(names) as ReadonlyArray<[keyof typeof names, string]>) {
    const value = seriesValue(text, name)
    if (value === undefined) missing.push(name)
    else values[field] = value
  }
  if (missing.length > 0) return `missing from /metrics: ${missing.join(", ")}`
  return {
    t,
    heapUsed: values.heapUsed!,
    heapTotal: values.heapTotal!,
    heapLive: seriesValue(text, "nodejs_heap_live_bytes"),
    fullCollections: seriesValue(text, "nodejs_gc_full_total"),
    handles: values.handles!,
    eventLoopP99: values.eventLoopP99!,
    eventLoopMax: values.eventLoopMax!,
    fibers: seriesValue(text, "child_fibers_active")
  }
}

/**
 * Whether a series levels off over the second half: the fitted line moves by less than `allowance` (the larger of
 * 10% of the mean and an absolute floor, so that a figure near 0 is not judged on noise) from start to end.
 */
const levelsOff = (
  points: ReadonlyArray<readonly [minutes: number, value: number]>,
  floor: number
): { readonly slope: number; readonly change: number; readonly allowance: number; readonly flat: boolean } => {
  const slope = H.slope(points)
  const span = points.length < 2 ? 0 : points[points.length - 1][0] - points[0][0]
  const mean = points.reduce((sum, [, y]) => sum + y, 0) / Math.max(1, points.length)
  const change = Number.isNaN(slope) ? Number.NaN : slope * span
  const allowance = Math.max(0.1 * Math.abs(mean), floor)
  return { slope, change, allowance, flat: Math.abs(change) <= allowance }
}

// Only growth is what a leak looks like; a figure falling after an early spike is said apart.
const verdict = (r: ReturnType<typeof levelsOff>) => r.flat ? "levels off" : r.change > 0 ? "growing" : "falling"

const trend = (r: ReturnType<typeof levelsOff>, unit: string, digits: number) => {
  const u = unit === "" ? "" : ` ${unit}`
  return `${r.slope.toFixed(digits)}${u}/min (${r.change.toFixed(digits)}${u} over the second half, allowance ` +
    `${r.allowance.toFixed(digits)}${u}): ${verdict(r)}`
}

export const scenario: Scenario = {
  name: "soak",
  title: "Soak: sustained load with periodic faults",
  quick: true,
  run: (ctx) =>
    Effect.gen(function*() {
      const seconds = Math.round((ctx.minutes ?? (ctx.quick ? 2 : 10)) * 60)
      const rate = 40
      const redis = yield* RedisServer.make({ persistence: true })
      // With its live fibers in /metrics: a fiber leak shows as a slope.
      const agent = yield* H.startService({
        dataDir: `${ctx.workDir}/data`,
        redisUrl: redis.url,
        env: { FIBER_METRICS: "true" }
      })
      yield* H.timeUntil(Effect.map(agent.request("GET", "/health/ready"), (r) => r.status === 200), 15_000)
      const pid = H.servicePid(agent)
      const start = yield* H.now
      const samples: Array<Sample> = []
      const scraped: Array<ProcessSample> = []
      const scrapeErrors: Array<string> = []
      let attempts = 0
      const sample = Effect.gen(function*() {
        attempts++
        const before = yield* H.now
        yield* Effect.ignore(agent.request("GET", "/health/live"))
        const liveMs = (yield* H.now) - before
        const t = (before - start) / 1000
        const stats = H.processStats(pid)
        if (stats !== undefined) samples.push({ t, ...stats, liveMs })
        const metrics = yield* Effect.result(agent.request("GET", "/metrics"))
        const parsed = metrics._tag === "Failure"
          ? metrics.failure.message
          : metrics.success.status !== 200
          ? `/metrics answered ${metrics.success.status}`
          : processSample(t, String(metrics.success.body))
        if (typeof parsed === "string") scrapeErrors.push(`at ${t.toFixed(0)} s: ${parsed}`)
        else scraped.push(parsed)
      })
      const sampler = yield* Effect.forkScoped(Effect.forever(Effect.andThen(sample, Effect.sleep("3 seconds"))))
      // Returning users and popular queries, as a service sees them: what it keeps per user or query reaches its bound
      // early, and growth after that is a leak.
      const load = yield* H.load({ rate, tag: "soak", population: 500, targets: () => [agent] })

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

      // From /metrics: heap (MB), active handles, event-loop p99 (ms), live fibers; each judged on the second half.
      const late = scraped.filter((s) => s.t >= seconds / 2)
      // The heap after each full collection of the second half: one point per collection (the scrape after it).
      const afterCollections = scraped.flatMap((s, i) =>
        s.t >= seconds / 2 && s.heapLive !== undefined && s.fullCollections !== scraped[i - 1]?.fullCollections
          ? [[s.t / 60, s.heapLive / 2 ** 20] as const]
          : []
      )
      const heap = afterCollections.length >= 3 ? levelsOff(afterCollections, 2) : undefined
      const handles = levelsOff(late.map((s) => [s.t / 60, s.handles] as const), 2)
      const eventLoop = levelsOff(late.map((s) => [s.t / 60, s.eventLoopP99 * 1000] as const), 5)
      const fiberSamples = late.flatMap((s) => s.fibers === undefined ? [] : [[s.t / 60, s.fibers] as const])
      const fibers = fiberSamples.length > 1 ? levelsOff(fiberSamples, 5) : undefined
      const firstScrape = scraped[0]
      const lastScrape = scraped[scraped.length - 1]
      const eventLoopP99Max = Math.max(0, ...scraped.map((s) => s.eventLoopP99))
      const eventLoopMax = Math.max(0, ...scraped.map((s) => s.eventLoopMax))
      // Too few scrapes, or any that failed, and nothing can be said: that fails the scenario.
      const samplingFailures = [
        ...(late.length < 3 ? [`soak: only ${late.length} /metrics samples in the second half`] : []),
        ...(scrapeErrors.length > 0
          ? [`soak: ${scrapeErrors.length} of ${attempts} /metrics samples failed (${scrapeErrors[0]})`]
          : [])
      ]
      const processRows: ReadonlyArray<Row> = [
        {
          metric: "heap used: first, last",
          value: `${mb(firstScrape?.heapUsed ?? 0)}, ${mb(lastScrape?.heapUsed ?? 0)}`
        },
        {
          metric: "live heap after full collections, second half",
          value: heap === undefined
            ? `not judged: ${afterCollections.length} full collection(s) in the second half, 3 needed`
            : trend(heap, "MB", 2),
          target: "flat"
        },
        { metric: "full collections", value: String(lastScrape?.fullCollections ?? "n/a") },
        {
          metric: "active handles: first, last",
          value: `${firstScrape?.handles ?? "n/a"}, ${lastScrape?.handles ?? "n/a"}`
        },
        { metric: "active handles slope, second half", value: trend(handles, "", 2), target: "flat" },
        {
          metric: "event-loop delay p99: worst sample, max seen",
          value: `${(eventLoopP99Max * 1000).toFixed(1)} ms, ${(eventLoopMax * 1000).toFixed(1)} ms`
        },
        { metric: "event-loop delay p99 slope, second half", value: trend(eventLoop, "ms", 2), target: "flat" },
        fibers === undefined
          ? { metric: "live fibers", value: "not exported (the service runs without FIBER_METRICS)" }
          : { metric: "live fibers slope, second half", value: trend(fibers, "", 1), target: "flat" },
        { metric: "/metrics samples (failed)", value: `${scraped.length} (${scrapeErrors.length})` }
      ]
      return {
        rows: [
          { metric: "duration, load", value: `${seconds} s at ${rate} requests/s, ${injected} faults` },
          { metric: "requests", value: String(tally.requests) },
          none("failed (non-2xx)", tally.failed),
          { metric: "served degraded", value: String(tally.degraded) },
          { metric: "latency p99 (all requests)", value: H.ms(tally.p99) },
          { metric: "resident memory: first, last", value: `${mb(first?.rss ?? 0)}, ${mb(last?.rss ?? 0)}` },
          { metric: "resident memory slope, second half", value: `${rssSlope.toFixed(2)} MB/min`, target: "flat" },
          { metric: "open file descriptors: first, last", value: `${first?.fds ?? "n/a"}, ${last?.fds ?? "n/a"}` },
          { metric: "open file descriptors slope, second half", value: `${fdSlope.toFixed(2)} /min`, target: "flat" },
          { metric: "/health/live round trip p99", value: H.ms(liveP99) },
          ...processRows,
          { metric: "samples", value: String(samples.length) }
        ],
        failed: [...(tally.status500 > 0 ? [`soak: ${tally.status500} responses were 500`] : []), ...samplingFailures],
        figures: {
          seconds,
          requests: tally.requests,
          failed: tally.failed,
          rssFirstMb: (first?.rss ?? 0) / 2 ** 20,
          rssLastMb: (last?.rss ?? 0) / 2 ** 20,
          rssSlopeMbPerMin: rssSlope,
          fdSlopePerMin: fdSlope,
          liveP99Ms: liveP99,
          heapUsedFirstMb: (firstScrape?.heapUsed ?? 0) / 2 ** 20,
          heapUsedLastMb: (lastScrape?.heapUsed ?? 0) / 2 ** 20,
          heapLiveLastMb: (lastScrape?.heapLive ?? Number.NaN) / 2 ** 20,
          fullCollections: lastScrape?.fullCollections ?? Number.NaN,
          heapLiveSlopeMbPerMin: heap?.slope ?? Number.NaN,
          heapTrend: heap === undefined ? "not judged" : verdict(heap),
          handlesFirst: firstScrape?.handles ?? Number.NaN,
          handlesLast: lastScrape?.handles ?? Number.NaN,
          handlesSlopePerMin: handles.slope,
          handlesTrend: verdict(handles),
          eventLoopP99WorstMs: eventLoopP99Max * 1000,
          eventLoopMaxMs: eventLoopMax * 1000,
          eventLoopP99SlopeMsPerMin: eventLoop.slope,
          eventLoopTrend: verdict(eventLoop),
          ...(fibers === undefined
            ? {}
            : {
              fibersLast: lastScrape?.fibers ?? Number.NaN,
              fibersSlopePerMin: fibers.slope,
              fibersTrend: verdict(fibers)
            }),
          metricsSamples: scraped.length,
          metricsSampleFailures: scrapeErrors.length
        },
        notes: [
          `${rate} requests/s from 500 returning users and queries (every chat message unique). ` +
          "Faults in turn every 20 s, 5 s each: Exa failing, Redis SIGKILLed then restarted with its data, Claude " +
          "failing. Sampled every 3 s: resident memory and open descriptors from /proc/<pid>; heap used, the heap " +
          "left by the last full collection (nodejs_heap_live_bytes), active handles " +
          "(process.getActiveResourcesInfo) and event-loop delay (p99 over the service's last 5 s window) from its " +
          "/metrics; the round trip of /health/live. A figure levels off when its least-squares line over the second " +
          "half moves by at most 10% of its mean (at least 2 MB of heap, 2 handles, 5 ms of delay: a 5 s window's " +
          "p99 jumps with each fault); reported, not asserted. The heap is judged on what the full collections of the " +
          "second half left, at least 3 of them: the heap used between them climbs with garbage until the next one, " +
          "which at 40 requests/s may not come for minutes.",
          ...(fibers === undefined
            ? [
              "Live fibers are not sampled: the service exports them (child_fibers_active) only with FIBER_METRICS=true."
            ]
            : [])
        ]
      }
    })
}
