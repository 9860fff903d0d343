/**
 * Breakers whose state lives in Redis, on a `redis-server` the bench starts itself (loopback, no persistence, one
 * server per case so that its command counters count that case alone).
 *
 * - `effect:redis`: Effect's breaker (`effect/persistence`) on `layerStoreRedis`, `consecutive(5)`, closed: two Lua
 *   round trips per call (admit, record).
 * - `ours:redis-local`: our breaker joined to `RedisFleet.layer`, `local` counting, closed: no round trip per call.
 * - `ours:redis-global`: the same with `global` counting: one Lua round trip per call.
 * - `ours:redis-propagation` (not a per-call time, see `measurePropagation`): how long a trip on one process takes
 *   to show on another process's `breaker.transitions`, p50 and p99.
 *
 * Every sample is checked against the server's own count of the commands it ran (`INFO commandstats`): the cases
 * claim a number of round trips per call, and the server says whether they made them.
 *
 * This file is also the program of the child processes of `measurePropagation`: run as a script (`node redis.ts
 * <url> <instance> <prefix>`, forked with an IPC channel), it joins the fleet and takes orders from its parent.
 */
import { CircuitBreaker } from "@effect-resilience/core"
import { RedisFleet, RedisStore } from "@effect-resilience/redis"
import * as NodeRedis from "@effect/platform-node/NodeRedis"
import * as Data from "effect/Data"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { CircuitBreaker as EffectCB } from "effect/persistence"
import * as Queue from "effect/Queue"
import * as Stream from "effect/Stream"
import { type ChildProcess, fork } from "node:child_process"
import { fileURLToPath } from "node:url"
import { noop } from "./baselines.ts"
import { acquire, check, type Timed, type TimedCase } from "./harness.ts"
import { type BenchRedis, startRedisServer } from "./redisServer.ts"
import type { LatencyResult } from "./report.ts"

class Boom extends Data.TaggedError("Boom") {}

const key = "bench"

/** Calls of the Lua scripts (`EVALSHA`, or `EVAL`) the server has run: one per round trip of the breakers here. */
const scriptCalls = async (server: BenchRedis) => {
  const calls = await server.commandCalls()
  return (calls["evalsha"] ?? 0) + (calls["eval"] ?? 0)
}

// -----------------------------------------------------------------------------
// Effect's breaker on Redis
// -----------------------------------------------------------------------------

const effectRedis: TimedCase = {
  kind: "time",
  name: "effect:redis",
  description: "Effect's breaker on `layerStoreRedis` (own `redis-server`, `NodeRedis.layer`), `consecutive(5)`, "
    + "closed: `yield* noop.pipe(breaker.execute({ key }))`, 2 round trips per call",
  setup: async (): Promise<Timed> => {
    const server = await startRedisServer()
    const { close, value: breaker } = await acquire(Effect.gen(function*() {
      // Built in the subject's scope: the connection lives until teardown.
      const context = yield* Layer.build(
        EffectCB.layerStoreRedis({ prefix: "bench:" }).pipe(Layer.provideMerge(NodeRedis.layer({ url: server.url })))
      )
      return yield* EffectCB.make({ tripPolicy: EffectCB.consecutive(5), openDuration: "1 hour" }).pipe(
        Effect.provide(context)
      )
    }))
    const base = await scriptCalls(server)
    // Calls made through the breaker since setup (calibration included) and state reads by `verify`.
    let issued = 0
    let stateReads = 0
    return {
      run: (iterations) => {
        issued += iterations
        return Effect.runPromise(Effect.gen(function*() {
          for (let i = 0; i < iterations; i++) yield* noop.pipe(breaker.execute({ key }))
        }))
      },
      verify: async () => {
        stateReads++
        const state = await Effect.runPromise(breaker.state(key))
        check(state._tag === "Closed", "breaker left Closed")
        // One admit and one record per call, one state read per verify: nothing went unrecorded.
        const scripts = await scriptCalls(server) - base
        check(
          scripts === 2 * issued + stateReads,
          `redis-server ran ${scripts} scripts for ${issued} calls and ${stateReads} state reads`
        )
      },
      teardown: async () => {
        await close()
        await server.stop()
      }
    }
  }
}

// -----------------------------------------------------------------------------
// our breaker in a RedisFleet
// -----------------------------------------------------------------------------

/** The store and the fleet for one process (one connection, plus the fleet's subscriber). */
const fleetLayer = (url: string, prefix: string, instance?: string) =>
  RedisFleet.layer(instance === undefined ? {} : { instance }).pipe(
    Layer.provideMerge(RedisStore.layer({ url, prefix }))
  )

const makeFleetBreaker = (options: {
  readonly name: string
  readonly trip: CircuitBreaker.TripPolicy
  readonly openDuration: Duration.Input
  readonly counting: "local" | "global"
}) =>
  CircuitBreaker.make({
    name: options.name,
    trip: options.trip,
    openDuration: options.openDuration,
    fleet: { counting: options.counting }
  })

const sleep = (millis: number) => new Promise((resolve) => setTimeout(resolve, millis))

/**
 * Checks that `breaker` really is a fleet member, through the public API only: a second member (its own
 * connection, in this process) must see a trip of a side key of `breaker` within 2 seconds. Without this, a breaker
 * that silently stayed solo would pass the `local` case's checks (no round trips) as well.
 */
const checkMembership = async (url: string, breaker: CircuitBreaker.CircuitBreaker) => {
  const side = "membership-check"
  const observer = await acquire(Effect.gen(function*() {
    const context = yield* Layer.build(fleetLayer(url, "bench:", "observer"))
    return yield* makeFleetBreaker({
      name: breaker.name,
      trip: CircuitBreaker.consecutive(5),
      openDuration: "1 hour",
      counting: "local"
    }).pipe(Effect.provide(context))
  }))
  try {
    await Effect.runPromise(Effect.gen(function*() {
      for (let i = 0; i < 5; i++) yield* Effect.exit(breaker.protectKey(Effect.fail(new Boom()), side))
    }))
    check(await Effect.runPromise(breaker.stateKey(side)) === "Open", "5 failures did not open the side key")
    const until = performance.now() + 2_000
    while (await Effect.runPromise(observer.value.stateKey(side)) !== "Open") {
      check(performance.now() < until, "another fleet member never saw the trip: the breaker is not in the fleet")
      await sleep(5)
    }
  } finally {
    await observer.close()
  }
}

/**
 * Our breaker, closed, in a fleet with `counting`. `perCall` is how many Lua round trips a call must make, checked
 * against the server's count after every sample; the fleet's own background work (a heartbeat a second, a resync
 * every 5 seconds) is allowed for, at twice its rate.
 */
const fleetCase = (counting: "local" | "global", perCall: number): TimedCase["setup"] => async () => {
  const server = await startRedisServer()
  const { close, value: breaker } = await acquire(Effect.gen(function*() {
    const context = yield* Layer.build(fleetLayer(server.url, "bench:"))
    return yield* makeFleetBreaker({ name: key, trip: CircuitBreaker.consecutive(5), openDuration: "1 hour", counting })
      .pipe(Effect.provide(context))
  }))
  await checkMembership(server.url, breaker)
  const base = await scriptCalls(server)
  const since = performance.now()
  let issued = 0
  return {
    run: (iterations) => {
      issued += iterations
      return Effect.runPromise(Effect.gen(function*() {
        for (let i = 0; i < iterations; i++) yield* breaker.protect(noop)
      }))
    },
    verify: async () => {
      check(await Effect.runPromise(breaker.state) === "Closed", "breaker left Closed")
      const scripts = await scriptCalls(server) - base
      const background = 5 + Math.ceil(2 * 1.4 * (performance.now() - since) / 1000)
      check(
        scripts >= perCall * issued && scripts <= perCall * issued + background,
        `redis-server ran ${scripts} scripts for ${issued} calls (expected ${perCall} per call, ` +
          `plus at most ${background} for the fleet itself)`
      )
    },
    teardown: async () => {
      await close()
      await server.stop()
    }
  }
}

export const redis: ReadonlyArray<TimedCase> = [
  effectRedis,
  {
    kind: "time",
    name: "ours:redis-local",
    description: "our breaker in a `RedisFleet` (own `redis-server`), `fleet: { counting: \"local\" }`, "
      + "`consecutive(5)`, closed: `yield* breaker.protect(noop)`, no round trip per call",
    setup: fleetCase("local", 0)
  },
  {
    kind: "time",
    name: "ours:redis-global",
    description: "the same with `fleet: { counting: \"global\" }`: one Lua round trip per call",
    setup: fleetCase("global", 1)
  }
]

// -----------------------------------------------------------------------------
// trip propagation across processes
// -----------------------------------------------------------------------------

/** What `measurePropagation` is reported as. */
export const propagationCase = {
  name: "ours:redis-propagation",
  description: "a trip (`consecutive(1)`, `local` counting) in one process until another process's "
    + "`breaker.transitions` shows the Open, two child processes on one `RedisFleet`"
} as const

/** Orders from the parent to a child. */
type Order = { readonly op: "trip" } | { readonly op: "reset" } | { readonly op: "exit" }

/** Reports from a child to the parent. Times are `now()`, in ms. */
type Report =
  | { readonly ev: "ready"; readonly instance: string }
  | { readonly ev: "tripped"; readonly at: number; readonly state: string }
  | { readonly ev: "reset"; readonly state: string }
  | {
    readonly ev: "fleet"
    readonly at: number
    readonly to: string
    readonly origin: string
    readonly cause: string
  }
  | { readonly ev: "error"; readonly message: string }

/**
 * Milliseconds on the system's monotonic clock (`CLOCK_MONOTONIC`), which every process on the machine shares.
 * Not `performance.timeOrigin + performance.now()`: each process reads its `timeOrigin` from the wall clock once, at
 * start, and two processes' readings were seen to disagree by a third of a millisecond, enough to make a trip
 * arrive before it was sent.
 */
const now = () => Number(process.hrtime.bigint()) / 1e6

const breakerName = "bench-propagation"

/** A child process running this file, with a queue of its reports. */
interface Child {
  readonly instance: string
  readonly process: ChildProcess
  readonly send: (order: Order) => void
  /** The next report matching `accept` (earlier non-matching ones are dropped), failing after `timeoutMillis`. */
  readonly next: <R extends Report>(accept: (report: Report) => report is R, timeoutMillis: number) => Promise<R>
}

const spawnChild = (url: string, instance: string, prefix: string): Child => {
  const child = fork(fileURLToPath(import.meta.url), [url, instance, prefix], {
    // Not the parent's `--expose-gc`, and nothing read from stdin.
    execArgv: [],
    stdio: ["ignore", "inherit", "inherit", "ipc"]
  })
  const backlog: Array<Report> = []
  let waiter: ((report: Report) => void) | undefined
  let failure: Error | undefined
  const fail = (error: Error) => {
    failure ??= error
    waiter?.({ ev: "error", message: error.message })
  }
  child.on("message", (message) => {
    const report = message as Report
    if (waiter !== undefined) waiter(report)
    else backlog.push(report)
  })
  child.once("exit", (code, signal) => fail(new Error(`child ${instance} exited (${signal ?? code})`)))
  child.once("error", fail)
  const next = <R extends Report>(accept: (report: Report) => report is R, timeoutMillis: number) =>
    new Promise<R>((resolve, reject) => {
      const timer = setTimeout(() => {
        waiter = undefined
        reject(new Error(`child ${instance}: no report within ${timeoutMillis} ms`))
      }, timeoutMillis)
      const offer = (report: Report) => {
        if (report.ev === "error") {
          clearTimeout(timer)
          waiter = undefined
          reject(new Error(`child ${instance}: ${report.message}`))
          return true
        }
        if (!accept(report)) return false
        clearTimeout(timer)
        waiter = undefined
        resolve(report)
        return true
      }
      while (backlog.length > 0) {
        if (offer(backlog.shift()!)) return
      }
      if (failure !== undefined) return offer({ ev: "error", message: failure.message })
      waiter = (report) => void offer(report)
    })
  return { instance, process: child, send: (order) => child.send(order), next }
}

const is = <T extends Report["ev"]>(ev: T) => (report: Report): report is Extract<Report, { ev: T }> => report.ev === ev

/**
 * Trip propagation latency: two child processes, each with its own connection and fleet membership, on a fresh
 * `redis-server`. In every iteration one child (alternately) trips the breaker with one failure and reports when
 * it started the call; the other reports when its `transitions` stream shows the Open (reason `Fleet`, from that
 * child). Then the tripper resets the breaker, and the iteration ends once the other has applied the reset too.
 * The first `warmup` iterations are not counted. Returns the latencies in ms, one per counted iteration.
 */
export const measurePropagation = async (
  options: { readonly iterations: number; readonly warmup: number },
  log: (line: string) => void
): Promise<LatencyResult> => {
  const server = await startRedisServer()
  const prefix = "bench-propagation:"
  const children = [spawnChild(server.url, "a", prefix), spawnChild(server.url, "b", prefix)]
  try {
    for (const child of children) await child.next(is("ready"), 30_000)
    const samples: Array<number> = []
    for (let i = 0; i < options.warmup + options.iterations; i++) {
      const tripper = children[i % 2]
      const watcher = children[(i + 1) % 2]
      tripper.send({ op: "trip" })
      const tripped = await tripper.next(is("tripped"), 5_000)
      check(tripped.state === "Open", `the tripper is ${tripped.state} after its failure`)
      const opened = await watcher.next(
        (r): r is Extract<Report, { ev: "fleet" }> => r.ev === "fleet" && r.to === "Open",
        5_000
      )
      check(opened.origin === tripper.instance, `the Open came from ${opened.origin}, not ${tripper.instance}`)
      check(opened.cause === "ConsecutiveFailures", `the Open was caused by ${opened.cause}`)
      check(opened.at >= tripped.at, `the Open arrived ${tripped.at - opened.at} ms before the trip`)
      if (i >= options.warmup) samples.push(opened.at - tripped.at)
      tripper.send({ op: "reset" })
      const reset = await tripper.next(is("reset"), 5_000)
      check(reset.state === "Closed", `the tripper is ${reset.state} after reset`)
      await watcher.next(
        (r): r is Extract<Report, { ev: "fleet" }> => r.ev === "fleet" && r.to === "Closed",
        5_000
      )
    }
    log(`  ${propagationCase.name}: ${samples.length} trips measured`)
    return { ...propagationCase, samples }
  } finally {
    for (const child of children) {
      if (child.process.connected) child.send({ op: "exit" })
    }
    await Promise.all(children.map((child) =>
      child.process.exitCode !== null || child.process.signalCode !== null
        ? undefined
        : new Promise<void>((resolve) => {
          const timer = setTimeout(() => child.process.kill("SIGKILL"), 5_000)
          child.process.once("exit", () => {
            clearTimeout(timer)
            resolve()
          })
        })
    ))
    await server.stop()
  }
}

const report = (r: Report) => Effect.sync(() => process.send!(r))

/** The child: joins the fleet, forwards every fleet transition it sees, trips and resets on orders. */
const runChild = (url: string, instance: string, prefix: string) =>
  Effect.gen(function*() {
    const breaker = yield* makeFleetBreaker({
      name: breakerName,
      trip: CircuitBreaker.consecutive(1),
      openDuration: "1 second",
      counting: "local"
    })
    // Subscribed before this returns (`startImmediately`), so that no transition is missed.
    yield* breaker.transitions.pipe(
      Stream.runForEach((t) => {
        const at = now()
        return t.reason._tag === "Fleet"
          ? report({ ev: "fleet", at, to: t.to, origin: t.reason.origin, cause: t.reason.cause._tag })
          : Effect.void
      }),
      Effect.forkScoped({ startImmediately: true })
    )
    const orders = yield* Queue.unbounded<Order>()
    process.on("message", (order) => Queue.offerUnsafe(orders, order as Order))
    yield* report({ ev: "ready", instance })
    for (;;) {
      const order = yield* Queue.take(orders)
      if (order.op === "exit") return
      if (order.op === "trip") {
        const at = now()
        yield* Effect.exit(breaker.protect(Effect.fail(new Boom())))
        yield* report({ ev: "tripped", at, state: yield* breaker.state })
      } else {
        yield* breaker.reset()
        yield* report({ ev: "reset", state: yield* breaker.state })
      }
    }
  }).pipe(Effect.scoped, Effect.provide(fleetLayer(url, prefix, instance)))

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [url, instance, prefix] = process.argv.slice(2)
  // The parent went away (maybe while this was loading): nothing left to do.
  process.on("disconnect", () => process.exit(0))
  if (!process.connected) process.exit(0)
  await Effect.runPromise(runChild(url, instance, prefix)).then(
    () => process.exit(0),
    (error: unknown) => {
      if (process.connected) process.send!({ ev: "error", message: `${instance}: ${String(error)}` } satisfies Report)
      process.exit(1)
    }
  )
}
