import type * as BreakerFleet from "@effect-resilience/core/BreakerFleet"
import * as CircuitBreaker from "@effect-resilience/core/CircuitBreaker"
import * as RedisServer from "@effect-resilience/testing/RedisServer"
import { assert, describe, it } from "@effect/vitest"
import {
  Clock,
  Context,
  Data,
  Deferred,
  Duration,
  Effect,
  Exit,
  Fiber,
  Layer,
  Metric,
  Option,
  Random,
  Schedule,
  Scope,
  Stream
} from "effect"
import * as Redis from "effect/persistence/Redis"
import * as RedisFleet from "../src/RedisFleet.ts"
import * as RedisStore from "../src/RedisStore.ts"
import { metricValue } from "./metrics.ts"

class Boom extends Data.TaggedError("Boom") {}

type Services = BreakerFleet.BreakerFleet | RedisFleet.RedisFleet | RedisStore.RedisStore | Redis.Redis

/** A counter's or gauge's value in an instance's registry. */
const metricOn = (instance: Instance, id: string, attributes: Record<string, string>) =>
  metricValue(id, attributes).pipe(Effect.provide(instance.context))

/** One instance: its own connection and fleet membership, for as long as `scope` is open. */
interface Instance {
  readonly name: string
  readonly context: Context.Context<Services>
  readonly scope: Scope.Closeable
}

// `resyncInterval`: 200 ms unless given; a minute keeps the periodic resync from catching an instance up behind a
// test's back.
const start = (
  server: { readonly url: string },
  name: string,
  options?: { readonly lazy?: boolean; readonly resyncInterval?: Duration.Input }
) =>
  startOn(
    RedisStore.layer({ url: server.url, timeout: "500 millis", prefix: "fleet-test:", lazy: options?.lazy }),
    name,
    options?.resyncInterval
  )

const startOn = <E>(
  store: Layer.Layer<RedisStore.RedisStore | Redis.Redis, E>,
  name: string,
  resyncInterval: Duration.Input = "200 millis"
) =>
  Effect.gen(function*() {
    const scope = yield* Scope.make()
    // A metric registry per instance, as each would have in a process of its own.
    const context = yield* Layer.buildWithScope(
      RedisFleet.layer({ instance: name, heartbeat: "100 millis", resyncInterval }).pipe(
        Layer.provideMerge(store),
        Layer.provideMerge(Layer.succeed(Metric.MetricRegistry, new Map()))
      ),
      scope
    )
    yield* Effect.addFinalizer(() => Scope.close(scope, Exit.void))
    return { name, context, scope } satisfies Instance
  })

/** A breaker on an instance, living as long as the instance. */
const breakerOn = (instance: Instance, options: CircuitBreaker.Options) =>
  CircuitBreaker.make(options).pipe(Effect.provide(instance.context), Scope.provide(instance.scope))

const fail = (breaker: CircuitBreaker.CircuitBreaker, key?: string) =>
  Effect.ignore(
    key === undefined ? breaker.protect(Effect.fail(new Boom())) : breaker.protectKey(Effect.fail(new Boom()), key)
  )

/** Polls until the breaker's key is in `state` (up to 5 s). */
const waitState = (breaker: CircuitBreaker.CircuitBreaker, state: CircuitBreaker.State, key?: string) =>
  (key === undefined ? breaker.state : breaker.stateKey(key)).pipe(
    Effect.flatMap((now) => now === state ? Effect.void : Effect.fail(`${breaker.name}: ${now}, waiting for ${state}`)),
    Effect.retry(Schedule.spaced("10 millis").pipe(Schedule.upTo({ duration: "5 seconds" })))
  )

/** The first transition to `to`, seen from the moment this forks. */
const nextTransition = (breaker: CircuitBreaker.CircuitBreaker, to: CircuitBreaker.State) =>
  breaker.transitions.pipe(
    Stream.filter((t) => t.to === to),
    Stream.runHead,
    Effect.map(Option.getOrThrow),
    Effect.timeout("5 seconds"),
    Effect.forkScoped
  )

/**
 * A check that something did not propagate: `await` trips a fresh key of a marker breaker on `from` and waits until
 * every other instance has it open, returning how long that took. The fleet's changes travel on one channel, which
 * each instance reads in order, so an instance that applied the marker has applied everything published before it:
 * a change that should not have propagated would have by then. No sleep to guess, however loaded the machine.
 */
const makeBarrier = (from: Instance, others: ReadonlyArray<Instance>) =>
  Effect.gen(function*() {
    const options: CircuitBreaker.Options = {
      name: "barrier",
      trip: CircuitBreaker.consecutive(1),
      openDuration: "1 hour"
    }
    const sender = yield* breakerOn(from, options)
    const receivers = yield* Effect.forEach(others, (instance) => breakerOn(instance, options))
    let round = 0
    return {
      await: Effect.gen(function*() {
        const key = `round-${round++}`
        const started = performance.now()
        yield* fail(sender, key)
        yield* Effect.forEach(receivers, (receiver) => waitState(receiver, "Open", key), { discard: true })
        return performance.now() - started
      })
    }
  })

const withFleet = <A, E>(
  f: (server: RedisServer.RedisServer, instances: ReadonlyArray<Instance>) => Effect.Effect<A, E, Scope.Scope>
) =>
  Effect.gen(function*() {
    const server = yield* RedisServer.make()
    const instances = yield* Effect.forEach(["a", "b", "c"], (name) => start(server, name))
    return yield* f(server, instances)
  }).pipe(Effect.scoped)

// Two instances, a and b, on a Redis of their own, the periodic resync a minute away: what one sees of the other
// comes from the published messages alone.
const quietPair = Effect.gen(function*() {
  const server = yield* RedisServer.make()
  return yield* Effect.forEach(["a", "b"], (name) => start(server, name, { resyncInterval: "1 minute" }))
})

const quantile = (values: ReadonlyArray<number>, q: number) => {
  const sorted = [...values].sort((x, y) => x - y)
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]
}

// Waits (heartbeats every 100 ms) until `count` instances are live in the fleet `instance` is in.
const liveInstances = (instance: { readonly context: Context.Context<Redis.Redis> }, count: number) =>
  Context.get(instance.context, Redis.Redis).send<number>("ZCARD", "fleet-test:fleet:instances").pipe(
    Effect.flatMap((n) => n === count ? Effect.void : Effect.fail(n)),
    Effect.retry(Schedule.spaced("10 millis").pipe(Schedule.upTo({ duration: "5 seconds" })))
  )

/** Waits until the instance has nothing of `breaker` queued: the fleet answered every change it made. */
const sent = (instance: Instance, breaker: string) =>
  Context.get(instance.context, RedisFleet.RedisFleet).snapshot.pipe(
    Effect.flatMap(({ breakers }) => {
      const queued = breakers.find((b) => b.breaker === breaker)?.queued
      return queued === 0 ? Effect.void : Effect.fail(`${instance.name}: ${queued} queued for ${breaker}`)
    }),
    Effect.retry(Schedule.spaced("20 millis").pipe(Schedule.upTo({ duration: "10 seconds" })))
  )

/** The keys whose fleet epoch an instance keeps for a breaker. */
const keysKnown = (instance: Instance, breaker: string) =>
  Effect.map(
    Context.get(instance.context, RedisFleet.RedisFleet).snapshot,
    ({ breakers }) => breakers.find((b) => b.breaker === breaker)!.keys
  )

/** Whether a breaker holds a circuit for the key. */
const holdsKey = (breaker: CircuitBreaker.CircuitBreaker, key: string) =>
  Effect.map(breaker.snapshots, (snapshots) => snapshots.some((s) => s.key === key))

/** A clock running `millis` behind `real` (its wall time only; sleeps and the monotonic clock are real). */
const laggingBy = (millis: number, real: Clock.Clock): Clock.Clock => ({
  currentTimeMillisUnsafe: () => real.currentTimeMillisUnsafe() - millis,
  currentTimeMillis: Effect.sync(() => real.currentTimeMillisUnsafe() - millis),
  currentTimeNanosUnsafe: () => real.currentTimeNanosUnsafe() - BigInt(millis) * 1_000_000n,
  currentTimeNanos: Effect.sync(() => real.currentTimeNanosUnsafe() - BigInt(millis) * 1_000_000n),
  monotonicTimeNanosUnsafe: () => real.monotonicTimeNanosUnsafe(),
  monotonicTimeNanos: real.monotonicTimeNanos,
  sleep: (duration) => real.sleep(duration)
})

// A fleet script's reply that opens a circuit for a minute (as the events channel carries it), for hand-made messages.
const openReply = (now: number): ReadonlyArray<string> =>
  ["applied", "100", "Live", "Open", now, now + 60_000, "1", "60000", "0", "x", "{\"_tag\":\"ProbeFailed\"}"].map(
    String
  )

describe("RedisFleet", () => {
  it.live("a trip on one instance opens the breaker on the others, with the origin and cause", () =>
    withFleet((_, [a, b, c]) =>
      Effect.gen(function*() {
        const options: CircuitBreaker.Options = {
          name: "search",
          trip: CircuitBreaker.consecutive(2),
          openDuration: "30 seconds"
        }
        const onA = yield* breakerOn(a, options)
        const onB = yield* breakerOn(b, options)
        const onC = yield* breakerOn(c, options)
        const seenB = yield* nextTransition(onB, "Open")
        const seenC = yield* nextTransition(onC, "Open")
        yield* fail(onA)
        yield* fail(onA)
        assert.strictEqual(yield* onA.state, "Open")
        for (const seen of [seenB, seenC]) {
          const transition = yield* Fiber.join(seen)
          assert.deepStrictEqual(transition.reason, {
            _tag: "Fleet",
            origin: "a",
            cause: { _tag: "ConsecutiveFailures", failures: 2 }
          })
        }
        const snapshot = yield* onB.snapshot
        assert.isAbove(snapshot.retryAfterMillis!, 25_000)
        // Rejected on B without running.
        const exit = yield* Effect.exit(onB.protect(Effect.succeed("ran")))
        assert.isTrue(Exit.isFailure(exit))
        // What the dashboard sees of the fleet, from A.
        const fleet = Context.get(a.context, RedisFleet.RedisFleet)
        const live = yield* fleet.instances
        assert.deepStrictEqual(live.map((i) => i.instance).sort(), ["a", "b", "c"])
        const seen = yield* fleet.snapshot
        assert.strictEqual(seen.instance, "a")
        assert.deepStrictEqual(
          seen.breakers.map((s) => [s.breaker, s.counting, s.accepted, s.queued, s.keys]),
          [["search", "local", 1, 0, 1]]
        )
      })
    ))

  it.live("trip propagation time across three instances (measured, printed)", () =>
    withFleet((_, [a, b, c]) =>
      Effect.gen(function*() {
        const options: CircuitBreaker.Options = {
          name: "latency",
          trip: CircuitBreaker.consecutive(1),
          openDuration: "1 hour"
        }
        const onA = yield* breakerOn(a, options)
        const others = [yield* breakerOn(b, options), yield* breakerOn(c, options)]
        const latencies: Array<number> = []
        for (let round = 0; round < 20; round++) {
          const seen = yield* Effect.forEach(others, (breaker) => nextTransition(breaker, "Open"))
          const started = performance.now()
          yield* fail(onA)
          for (const fiber of seen) {
            yield* Fiber.join(fiber)
            latencies.push(performance.now() - started)
          }
          // A reset anywhere closes everywhere.
          const closed = yield* Effect.forEach(others, (breaker) => nextTransition(breaker, "Closed"))
          yield* onA.reset()
          yield* Effect.forEach(closed, Fiber.join)
        }
        console.log(
          `trip propagation over ${latencies.length} observations: p50 ${quantile(latencies, 0.5).toFixed(2)} ms, ` +
            `p99 ${quantile(latencies, 0.99).toFixed(2)} ms`
        )
        assert.strictEqual(latencies.length, 40)
        // 20 trips and 20 resets, each accepted from A and applied on B.
        assert.strictEqual(
          yield* metricOn(a, "breaker_fleet_announcements_total", { breaker: "latency", result: "accepted" }),
          40
        )
        // B applied each of them. A breaker-wide reset also moves the key's epoch in Redis without a message of its
        // own (B resets the key on the breaker-wide message): a resync that runs before the next trip loads that epoch
        // too, so up to one more per round, depending on timing.
        const applied = yield* metricOn(b, "breaker_fleet_applied_total", { breaker: "latency" })
        assert.isAtLeast(applied!, 40)
        assert.isAtMost(applied!, 60)
        yield* metricOn(b, "breaker_fleet_live_instances", { instance: "b" }).pipe(
          Effect.flatMap((live) => live === 3 ? Effect.void : Effect.fail(live)),
          Effect.retry(Schedule.spaced("20 millis").pipe(Schedule.upTo({ duration: "2 seconds" })))
        )
      })
    ))

  // The fleet's clock decides when its circuits half-open (docs/fleet.md: keep the instances' clocks in sync). An
  // instance must then agree with the fleet, not half-open on its own and refuse every probe the fleet would not lease.
  it.live("an opening by an instance whose clock is ahead holds on the others as the fleet has it, Open, not half-open", () =>
    withFleet((_, [a, b]) =>
      Effect.gen(function*() {
        const options: CircuitBreaker.Options = {
          name: "search",
          trip: CircuitBreaker.consecutive(1),
          openDuration: "300 millis"
        }
        const onA = yield* breakerOn(a, options)
        const onB = yield* breakerOn(b, options)
        const live = yield* Clock.Clock
        const anHourAhead: Clock.Clock = {
          ...live,
          currentTimeMillisUnsafe: () => live.currentTimeMillisUnsafe() + 3_600_000,
          currentTimeMillis: Effect.sync(() => live.currentTimeMillisUnsafe() + 3_600_000)
        }
        yield* fail(onA).pipe(Effect.provideService(Clock.Clock, anHourAhead))
        yield* waitState(onB, "Open")
        yield* Effect.sleep("600 millis")
        assert.strictEqual(yield* onB.state, "Open")
        const rejected = yield* Effect.flip(onB.protect(Effect.succeed("call")))
        assert.strictEqual(rejected.reason._tag, "CircuitOpen")
        assert.isAbove(Duration.toMillis(rejected.retryAfter), 3_500_000)
      })
    ))

  it.live("a restarted instance comes back open, with the open time left", () =>
    withFleet((server, [a]) =>
      Effect.gen(function*() {
        const options: CircuitBreaker.Options = {
          name: "payments",
          trip: CircuitBreaker.consecutive(1),
          openDuration: "1 minute"
        }
        const onA = yield* breakerOn(a, options)
        yield* fail(onA)
        const d = yield* start(server, "d")
        const onD = yield* breakerOn(d, options)
        yield* waitState(onD, "Open")
        // It stays open: D neither lets a call through nor reopens for a new minute.
        const exit = yield* Effect.exit(onD.protect(Effect.succeed("ran")))
        assert.isTrue(Exit.isFailure(exit) && exit.cause.reasons[0]._tag === "Fail")
        const [openA, openD] = [yield* onA.snapshot, yield* onD.snapshot]
        assert.isAtMost(Math.abs(openA.retryAfterMillis! - openD.retryAfterMillis!), 1_000)
        // Even when D restarts: a fresh connection and a fresh breaker.
        yield* Scope.close(d.scope, Exit.void)
        const e = yield* start(server, "e")
        const onE = yield* breakerOn(e, options)
        yield* waitState(onE, "Open")
      })
    ))

  it.live("manual controls hold on every instance and survive restarts", () =>
    withFleet((server, [a, b, c]) =>
      Effect.gen(function*() {
        const options: CircuitBreaker.Options = { name: "ledger", trip: CircuitBreaker.consecutive(3) }
        const onA = yield* breakerOn(a, options)
        const onB = yield* breakerOn(b, options)
        const onC = yield* breakerOn(c, options)
        yield* onC.forceOpen()
        yield* waitState(onA, "ForcedOpen")
        yield* waitState(onB, "ForcedOpen")
        // A key of its own, controlled on another instance.
        yield* onA.disable("tenant-7")
        yield* waitState(onB, "Disabled", "tenant-7")
        const d = yield* start(server, "d")
        const onD = yield* breakerOn(d, options)
        yield* waitState(onD, "ForcedOpen")
        yield* waitState(onD, "Disabled", "tenant-7")
        // A breaker-wide reset on B resets every key everywhere, restarted instances included.
        yield* onB.reset()
        for (const breaker of [onA, onC, onD]) {
          yield* waitState(breaker, "Closed")
          yield* waitState(breaker, "Closed", "tenant-7")
        }
        const e = yield* start(server, "e")
        const onE = yield* breakerOn(e, options)
        assert.strictEqual(yield* onE.state, "Closed")
        assert.strictEqual(yield* onE.stateKey("tenant-7"), "Closed")
      })
    ))

  // Two instances sharing breaker "pay" (tripped by one failure, open for an hour), A's path to Redis through a proxy
  // a test can cut.
  const partitionable = Effect.gen(function*() {
    const server = yield* RedisServer.make()
    const toA = yield* RedisServer.makeProxy(server)
    const a = yield* start(toA, "a")
    const b = yield* start(server, "b")
    const barrier = yield* makeBarrier(a, [b])
    const options: CircuitBreaker.Options = { name: "pay", trip: CircuitBreaker.consecutive(1), openDuration: "1 hour" }
    return { a, barrier, onA: yield* breakerOn(a, options), onB: yield* breakerOn(b, options), toA }
  })

  // The last manual control made wins, not the last to arrive: a control queued on an instance cut off from Redis
  // was committed over a newer one made on the fleet meanwhile.
  it.live(
    "a forceOpen queued on a cut-off instance does not override a reset made on the fleet after it",
    () =>
      Effect.gen(function*() {
        const { a, barrier, onA, onB, toA } = yield* partitionable
        // A loses its path to Redis, and an operator forces the breaker open there; later, another resets it on B.
        yield* toA.cut
        yield* onA.forceOpen()
        yield* Effect.sleep("200 millis")
        yield* onB.reset()
        assert.strictEqual(yield* onB.state, "Closed")
        // A is back and sends what it queued: the fleet answers with its newer reset, which A takes.
        yield* toA.restore
        yield* sent(a, "pay")
        yield* barrier.await
        assert.strictEqual(yield* onB.state, "Closed")
        assert.strictEqual(yield* onA.state, "Closed")
        const [pay] = (yield* Context.get(a.context, RedisFleet.RedisFleet).snapshot).breakers.filter((x) =>
          x.breaker === "pay"
        )
        assert.strictEqual(pay.rejected, 1)
      }).pipe(Effect.scoped),
    { timeout: 30_000 }
  )

  it.live(
    "a breaker-wide forceOpen queued on a cut-off instance keeps a key's newer control of its own",
    () =>
      Effect.gen(function*() {
        const { a, barrier, onA, onB, toA } = yield* partitionable
        yield* fail(onB, "x")
        yield* waitState(onA, "Open", "x")
        yield* toA.cut
        yield* onA.forceOpen()
        yield* Effect.sleep("200 millis")
        yield* onB.reset("x")
        // The fleet takes A's control, newer than any breaker-wide one, but for key x, reset after it.
        yield* toA.restore
        yield* sent(a, "pay")
        yield* barrier.await
        assert.strictEqual(yield* onB.state, "ForcedOpen")
        assert.strictEqual(yield* onB.stateKey("x"), "Closed")
        assert.strictEqual(yield* onA.state, "ForcedOpen")
        yield* waitState(onA, "Closed", "x")
      }).pipe(Effect.scoped),
    { timeout: 30_000 }
  )

  // The clocks order controls made on stale epochs only: one made on the epoch the instance saw follows the fleet's
  // last control, even from an instance whose clock runs behind the one that made it.
  it.live(
    "a manual control made on the epoch the instance saw wins, even from a clock behind the last control's",
    () =>
      withFleet((_server, [a, b, c]) =>
        Effect.gen(function*() {
          const options: CircuitBreaker.Options = { name: "ledger", trip: CircuitBreaker.consecutive(3) }
          const [onA, onB, onC] = [
            yield* breakerOn(a, options),
            yield* breakerOn(b, options),
            yield* breakerOn(c, options)
          ]
          const barrier = yield* makeBarrier(a, [b, c])
          yield* onB.forceOpen()
          yield* waitState(onA, "ForcedOpen")
          // A's clock runs a minute behind B's: by the clocks, A's reset comes before B's forceOpen.
          yield* onA.reset().pipe(Effect.provideService(Clock.Clock, laggingBy(60_000, yield* Clock.Clock)))
          yield* sent(a, "ledger")
          yield* barrier.await
          assert.strictEqual(yield* onA.state, "Closed")
          assert.strictEqual(yield* onB.state, "Closed")
          assert.strictEqual(yield* onC.state, "Closed")
          const [ledger] = (yield* Context.get(a.context, RedisFleet.RedisFleet).snapshot).breakers.filter((x) =>
            x.breaker === "ledger"
          )
          assert.deepStrictEqual([ledger.accepted, ledger.rejected], [1, 0])
        })
      )
  )

  // A breaker-wide control is each key's last control too: a key's own control made before it, queued on a cut-off
  // instance, gives way to it.
  it.live(
    "a key's control queued on a cut-off instance gives way to a breaker-wide control made on the fleet after it",
    () =>
      Effect.gen(function*() {
        const { a, barrier, onA, onB, toA } = yield* partitionable
        yield* fail(onB, "x")
        yield* waitState(onA, "Open", "x")
        yield* toA.cut
        yield* onA.disable("x")
        yield* Effect.sleep("200 millis")
        yield* onB.forceOpen()
        yield* toA.restore
        yield* sent(a, "pay")
        yield* barrier.await
        assert.strictEqual(yield* onB.stateKey("x"), "ForcedOpen")
        yield* waitState(onA, "ForcedOpen", "x")
        assert.strictEqual(yield* onA.state, "ForcedOpen")
      }).pipe(Effect.scoped),
    { timeout: 30_000 }
  )

  it.live("quorum: one instance failing alone opens only itself; two open the fleet", () =>
    withFleet((_, [a, b, c]) =>
      Effect.gen(function*() {
        const options: CircuitBreaker.Options = {
          name: "llm",
          trip: CircuitBreaker.consecutive(1),
          openDuration: "1 minute",
          fleet: { counting: "quorum", quorum: { instances: 2, window: "1 minute" } }
        }
        const onA = yield* breakerOn(a, options)
        const onB = yield* breakerOn(b, options)
        const onC = yield* breakerOn(c, options)
        const redis = Context.get(a.context, Redis.Redis)
        const barrier = yield* makeBarrier(a, [b, c])
        yield* fail(onA)
        assert.strictEqual(yield* onA.state, "Open")
        // A's vote is in, and it did not reach the quorum: nothing was published, B and C stay closed.
        yield* redis.send<number>("ZCARD", "fleet-test:cb:llm:kdefault:votes").pipe(
          Effect.flatMap((n) => n === 1 ? Effect.void : Effect.fail(n)),
          Effect.retry(Schedule.spaced("10 millis").pipe(Schedule.upTo({ duration: "5 seconds" })))
        )
        yield* barrier.await
        assert.strictEqual(yield* onB.state, "Closed")
        assert.strictEqual(yield* onC.state, "Closed")
        assert.strictEqual(yield* Effect.exit(onB.protect(Effect.succeed(1))).pipe(Effect.map(Exit.isSuccess)), true)
        const seenC = yield* nextTransition(onC, "Open")
        yield* fail(onB)
        const transition = yield* Fiber.join(seenC)
        assert.deepStrictEqual(transition.reason, {
          _tag: "Fleet",
          origin: "b",
          cause: { _tag: "Quorum", votes: 2, live: 3 }
        })
        yield* waitState(onA, "Open")
      })
    ))

  it.live("quorum by share of the live instances", () =>
    withFleet((_, [a, b, c]) =>
      Effect.gen(function*() {
        const options: CircuitBreaker.Options = {
          name: "share",
          trip: CircuitBreaker.consecutive(1),
          openDuration: "1 minute",
          fleet: { counting: "quorum", quorum: { share: 0.6, window: "1 minute" } }
        }
        const onA = yield* breakerOn(a, options)
        const onB = yield* breakerOn(b, options)
        const onC = yield* breakerOn(c, options)
        // All three live first.
        yield* liveInstances(a, 3)
        const seenC = yield* nextTransition(onC, "Open")
        yield* fail(onA)
        yield* fail(onB) // 2 of 3 >= 0.6 * 3
        const transition = yield* Fiber.join(seenC)
        assert.strictEqual(transition.reason._tag, "Fleet")
        assert.deepStrictEqual((transition.reason as { cause: unknown }).cause, { _tag: "Quorum", votes: 2, live: 3 })
      })
    ))

  it.live("quorum by share: a share of votes exactly at the quorum share opens the fleet", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.make()
      const [a, b] = yield* Effect.forEach(["a", "b"], (name) => start(server, name))
      const options: CircuitBreaker.Options = {
        name: "half",
        trip: CircuitBreaker.consecutive(1),
        openDuration: "1 minute",
        fleet: { counting: "quorum", quorum: { share: 0.5, window: "1 minute" } }
      }
      const onA = yield* breakerOn(a, options)
      const onB = yield* breakerOn(b, options)
      yield* liveInstances(a, 2)
      const seenB = yield* nextTransition(onB, "Open")
      yield* fail(onA) // 1 of 2 live: a share of 0.5
      const transition = yield* Fiber.join(seenB).pipe(Effect.timeout("3 seconds"))
      assert.deepStrictEqual((transition.reason as { cause: unknown }).cause, { _tag: "Quorum", votes: 1, live: 2 })
    }).pipe(Effect.scoped))

  it.live("half-open across three instances sends exactly the permitted probes, and fences a late one", () =>
    withFleet((_, [a, b, c]) =>
      Effect.gen(function*() {
        const options: CircuitBreaker.Options = {
          name: "search",
          trip: CircuitBreaker.consecutive(1),
          openDuration: "300 millis",
          halfOpen: { maxProbes: 1, successThreshold: 1, maxProbeTime: "400 millis" }
        }
        const breakers = [yield* breakerOn(a, options), yield* breakerOn(b, options), yield* breakerOn(c, options)]
        const barrier = yield* makeBarrier(a, [b, c])
        yield* fail(breakers[0])
        for (const breaker of breakers) yield* waitState(breaker, "Open")
        // Past the opening. Sleeping longer than needed is safe: nothing here expires on its own until a probe runs.
        yield* Effect.sleep("600 millis")
        // Each instance tries one probe at once; the dependency answers once `release` completes.
        let ran = 0
        const finished: Array<number> = []
        const release = yield* Deferred.make<void>()
        const probe = Effect.suspend(() => {
          ran++
          return Effect.andThen(Deferred.await(release), Effect.fail(new Boom()))
        })
        const calls = yield* Effect.forEach(breakers, (breaker, i) =>
          Effect.forkScoped(
            Effect.exit(breaker.protect(probe)).pipe(Effect.ensuring(Effect.sync(() => finished.push(i))))
          ))
        // Two are rejected (however long the lease round trips take); one runs and hangs. Had two probes run, only
        // one call would finish and this would time out.
        yield* Effect.suspend(() => finished.length === 2 && ran > 0 ? Effect.void : Effect.fail(finished)).pipe(
          Effect.retry(Schedule.spaced("10 millis").pipe(Schedule.upTo({ duration: "5 seconds" })))
        )
        assert.strictEqual(ran, 1)
        for (const i of finished) {
          const exit = yield* Fiber.join(calls[i])
          assert.isTrue(Exit.isFailure(exit))
        }
        // The probe hangs past maxProbeTime (its lease was taken before the others were denied): the lease expires,
        // and another instance's probe gets one and succeeds.
        yield* Effect.sleep("700 millis")
        const prober = breakers.find((_breaker, i) => !finished.includes(i))!
        const other = breakers.find((breaker) => breaker !== prober)!
        const seen = yield* Effect.forEach(breakers, (breaker) => nextTransition(breaker, "Closed"))
        assert.strictEqual(yield* other.protect(Effect.succeed("ok")), "ok")
        yield* Effect.forEach(seen, Fiber.join)
        // The late probe fails now: fenced off, the fleet stays closed.
        yield* Deferred.succeed(release, undefined)
        yield* Effect.forEach(calls, Fiber.join)
        yield* barrier.await
        for (const breaker of breakers) assert.strictEqual(yield* breaker.state, "Closed")
      })
    ))

  it.live("global counting: failures on three instances count as one streak", () =>
    withFleet((_, [a, b, c]) =>
      Effect.gen(function*() {
        const options: CircuitBreaker.Options = {
          name: "webhooks",
          trip: CircuitBreaker.consecutive(3),
          openDuration: "1 minute",
          fleet: { counting: "global" }
        }
        const breakers = [yield* breakerOn(a, options), yield* breakerOn(b, options), yield* breakerOn(c, options)]
        const barrier = yield* makeBarrier(a, [b, c])
        yield* fail(breakers[0])
        yield* fail(breakers[1])
        yield* barrier.await
        for (const breaker of breakers) assert.strictEqual(yield* breaker.state, "Closed")
        yield* fail(breakers[2])
        // The third failure's reply opened C at once; the others hear it.
        assert.strictEqual(yield* breakers[2].state, "Open")
        for (const breaker of breakers) yield* waitState(breaker, "Open")
        const snapshot = yield* breakers[0].snapshot
        assert.strictEqual(snapshot.failureCount, 1)
      })
    ))

  it.live("global counting over a failure-rate window", () =>
    withFleet((_, [a, b]) =>
      Effect.gen(function*() {
        const options: CircuitBreaker.Options = {
          name: "rates",
          trip: CircuitBreaker.failureRate({ threshold: 0.5, minimumCalls: 4, window: CircuitBreaker.lastCalls(4) }),
          fleet: { counting: "global" }
        }
        const onA = yield* breakerOn(a, options)
        const onB = yield* breakerOn(b, options)
        const barrier = yield* makeBarrier(a, [b])
        yield* onA.protect(Effect.succeed(1))
        yield* onB.protect(Effect.succeed(1))
        yield* fail(onA)
        yield* barrier.await
        assert.strictEqual(yield* onB.state, "Closed")
        yield* fail(onB) // 2 of 4
        assert.strictEqual(yield* onB.state, "Open")
        yield* waitState(onA, "Open")
      })
    ))

  it.live("global counting trips at a rate exactly at a threshold that is not exact in binary (7 of 25 at 0.28)", () =>
    withFleet((_, [a]) =>
      Effect.gen(function*() {
        // 0.28 * 25 is 7.000000000000001: compared that way, 7 failures of 25 would stay under 0.28.
        const onA = yield* breakerOn(a, {
          name: "rates",
          trip: CircuitBreaker.failureRate({ threshold: 0.28, minimumCalls: 25, window: CircuitBreaker.lastCalls(25) }),
          fleet: { counting: "global" }
        })
        for (let i = 0; i < 18; i++) yield* onA.protect(Effect.succeed(1))
        for (let i = 0; i < 6; i++) yield* fail(onA)
        assert.strictEqual(yield* onA.state, "Closed")
        yield* fail(onA)
        assert.strictEqual(yield* onA.state, "Open")
      })
    ))

  it.live("any key is shared, one that is not well-formed UTF-16 too; a message whose key does not decode is skipped", () =>
    withFleet((_, [a, b]) =>
      Effect.gen(function*() {
        const options: CircuitBreaker.Options = { name: "keys", trip: CircuitBreaker.consecutive(1) }
        const onA = yield* breakerOn(a, options)
        const onB = yield* breakerOn(b, options)
        // A tenant id cut in the middle of an emoji: a lone surrogate, which URI-encoding refuses.
        const cut = "user-\uD83D"
        yield* onA.forceOpen(cut)
        yield* waitState(onB, "ForcedOpen", cut)
        // A message from a newer version, whose key this one cannot read: counted, skipped, and the next one read.
        const store = Context.get(b.context, RedisStore.RedisStore)
        const fleet = Context.get(b.context, RedisFleet.RedisFleet)
        const unreadable = (yield* fleet.snapshot).unreadable
        const reply = openReply(yield* Clock.currentTimeMillis)
        yield* store.publish("fleet:events", JSON.stringify(["keys", "k%E0%A4%A", reply]))
        yield* fail(onA, "after")
        yield* waitState(onB, "Open", "after")
        assert.strictEqual((yield* fleet.snapshot).unreadable, unreadable + 1)
      })
    ))

  it.live("a message whose key is not in this version's encoding is skipped, not applied to another key", () =>
    withFleet((_, [a, b]) =>
      Effect.gen(function*() {
        const options: CircuitBreaker.Options = { name: "prefixes", trip: CircuitBreaker.consecutive(1) }
        const onA = yield* breakerOn(a, options)
        const onB = yield* breakerOn(b, options)
        const store = Context.get(b.context, RedisStore.RedisStore)
        const fleet = Context.get(b.context, RedisFleet.RedisFleet)
        const unreadable = (yield* fleet.snapshot).unreadable
        const reply = openReply(yield* Clock.currentTimeMillis)
        // "v" is no prefix this version writes ("k" a key, "*" breaker-wide): read as "k", it would open "tenant".
        yield* store.publish("fleet:events", JSON.stringify(["prefixes", "vtenant", reply]))
        yield* fail(onA, "after")
        yield* waitState(onB, "Open", "after")
        assert.strictEqual(yield* onB.stateKey("tenant"), "Closed")
        assert.strictEqual((yield* fleet.snapshot).unreadable, unreadable + 1)
      })
    ))

  it.live("global counting after a breaker-wide reset: two failures trip consecutive(2), as alone", () =>
    Effect.gen(function*() {
      const [a, b] = yield* quietPair
      const options: CircuitBreaker.Options = {
        name: "global-reset",
        trip: CircuitBreaker.consecutive(2),
        openDuration: "1 minute",
        fleet: { counting: "global" }
      }
      const onA = yield* breakerOn(a, options)
      const onB = yield* breakerOn(b, options)
      // The startup resyncs are over: from here on only the fleet's messages move an instance on.
      yield* Effect.sleep("1 second")
      yield* fail(onA, "eu")
      yield* fail(onA, "eu")
      yield* waitState(onB, "Open", "eu")
      yield* onA.reset()
      yield* waitState(onB, "Closed", "eu")
      const barrier = yield* makeBarrier(a, [b])
      yield* barrier.await
      // Each instance heard the key's new epoch: neither failure is fenced off as late.
      yield* fail(onB, "eu")
      yield* fail(onA, "eu")
      assert.strictEqual(yield* onA.stateKey("eu"), "Open")
      yield* waitState(onB, "Open", "eu")
    }).pipe(Effect.scoped))

  it.live("a late probe failure, fenced off by the fleet, does not count towards the next closed generation", () =>
    Effect.gen(function*() {
      const [a, b] = yield* quietPair
      const options: CircuitBreaker.Options = {
        name: "late",
        trip: CircuitBreaker.consecutive(2),
        openDuration: "300 millis",
        halfOpen: { maxProbes: 2, successThreshold: 1, maxProbeTime: "1 minute" }
      }
      const onA = yield* breakerOn(a, options)
      const onB = yield* breakerOn(b, options)
      yield* fail(onA)
      yield* fail(onA)
      yield* waitState(onB, "Open")
      yield* Effect.sleep("400 millis")
      // A's probe takes a lease and hangs; B's probe takes the other and closes the circuit, fleet-wide.
      const release = yield* Deferred.make<void>()
      const hung = yield* Effect.forkScoped(
        Effect.exit(onA.protect(Effect.andThen(Deferred.await(release), Effect.fail(new Boom()))))
      )
      yield* waitState(onA, "HalfOpen")
      assert.strictEqual(yield* onB.protect(Effect.succeed("ok")), "ok")
      yield* waitState(onA, "Closed")
      // A's probe fails now: its lease belongs to a generation that is over.
      yield* Deferred.succeed(release, undefined)
      yield* Fiber.join(hung)
      // One real failure of the new generation: consecutive(2) does not trip, as a breaker alone would not.
      yield* fail(onA)
      assert.strictEqual(yield* onA.state, "Closed")
    }).pipe(Effect.scoped))

  it.live(
    "while Redis is down breakers work locally; they resync when it is back",
    () =>
      withFleet((server, [a, b]) =>
        Effect.gen(function*() {
          const options: CircuitBreaker.Options = {
            name: "orders",
            trip: CircuitBreaker.consecutive(2),
            openDuration: "1 minute"
          }
          const onA = yield* breakerOn(a, options)
          const onB = yield* breakerOn(b, options)
          yield* server.kill
          // Calls still run, and A trips on its own.
          assert.strictEqual(yield* onA.protect(Effect.succeed("ok")), "ok")
          yield* fail(onA)
          yield* fail(onA)
          assert.strictEqual(yield* onA.state, "Open")
          assert.strictEqual(yield* onB.state, "Closed")
          const fleet = Context.get(a.context, RedisFleet.RedisFleet)
          yield* fleet.snapshot.pipe(
            Effect.flatMap(({ breakers: [orders] }) => orders.queued === 1 ? Effect.void : Effect.fail(orders)),
            Effect.retry(Schedule.spaced("10 millis").pipe(Schedule.upTo({ duration: "2 seconds" })))
          )
          // Redis comes back empty; A's queued trip reaches B.
          yield* server.restart
          yield* waitState(onB, "Open")
        })
      ),
    { timeout: 20_000 }
  )

  it.live(
    "an instance started while Redis is down works alone, then joins the fleet once Redis is up",
    () =>
      Effect.gen(function*() {
        const port = yield* RedisServer.freePort
        const url = `redis://127.0.0.1:${port}`
        const options: CircuitBreaker.Options = {
          name: "boot",
          trip: CircuitBreaker.consecutive(1),
          openDuration: "1 minute"
        }
        const a = yield* start({ url }, "a", { lazy: true })
        const onA = yield* breakerOn(a, options)
        assert.strictEqual(yield* onA.protect(Effect.succeed("ok")), "ok")
        yield* fail(onA)
        assert.strictEqual(yield* onA.state, "Open")
        const server = yield* RedisServer.makeOnPort(port)
        // A fresh instance learns A's trip, made before Redis was there, once A's resync has sent it.
        const b = yield* start(server, "b")
        const onB = yield* breakerOn(b, options)
        yield* waitState(onB, "Open")
      }).pipe(Effect.scoped),
    { timeout: 20_000 }
  )

  it.live(
    "shared breakers follow a Sentinel failover: the state survives on the new master, and changes propagate",
    () =>
      Effect.gen(function*() {
        const master = yield* RedisServer.make()
        yield* RedisServer.makeReplica(master)
        const sentinels = yield* RedisServer.makeSentinels(3, {
          masterName: "fleet",
          masterPort: master.port,
          quorum: 2
        })
        const viaSentinels = RedisStore.layerSentinel({
          masterName: "fleet",
          sentinels: sentinels.map((sentinel) => ({ host: "127.0.0.1", port: sentinel.port })),
          timeout: "500 millis",
          prefix: "fleet-test:"
        })
        const options: CircuitBreaker.Options = {
          name: "failover",
          trip: CircuitBreaker.consecutive(1),
          openDuration: "1 minute"
        }
        const a = yield* startOn(viaSentinels, "a")
        const b = yield* startOn(viaSentinels, "b")
        const onA = yield* breakerOn(a, options)
        const onB = yield* breakerOn(b, options)
        yield* fail(onA)
        yield* waitState(onB, "Open")
        // The fleet's state has reached the replica before the master dies.
        assert.strictEqual(yield* Context.get(a.context, Redis.Redis).send<number>("WAIT", "1", "0"), 1)
        yield* master.kill
        // A new instance, connecting through the sentinels once they promoted the replica, comes back open.
        const c = yield* Effect.retry(
          startOn(viaSentinels, "c"),
          Schedule.spaced("200 millis").pipe(Schedule.upTo({ duration: "15 seconds" }))
        )
        const onC = yield* breakerOn(c, options)
        yield* waitState(onC, "Open")
        // A and B followed the new master too: a reset on C closes them.
        yield* onC.reset()
        yield* waitState(onA, "Closed").pipe(Effect.retry(Schedule.recurs(2)))
        yield* waitState(onB, "Closed").pipe(Effect.retry(Schedule.recurs(2)))
      }).pipe(Effect.scoped),
    { timeout: 40_000 }
  )

  it.live(
    "a trip made during an outage survives the resync when the fleet's last decision is older (an elapsed opening)",
    () =>
      Effect.gen(function*() {
        const server = yield* RedisServer.make({ persistence: true })
        const options: CircuitBreaker.Options = {
          name: "stock",
          trip: CircuitBreaker.consecutive(1),
          openDuration: "300 millis"
        }
        const b = yield* start(server, "b")
        const onB = yield* breakerOn(b, options)
        yield* fail(onB)
        // The fleet's opening elapses and nobody probes: Redis still holds it, Open but over.
        yield* waitState(onB, "HalfOpen")
        yield* server.kill
        // D starts during the outage (it has seen no epoch) and trips on its own.
        const d = yield* start(server, "d", { lazy: true })
        const onD = yield* breakerOn(d, { ...options, openDuration: "1 minute" })
        yield* fail(onD)
        assert.strictEqual(yield* onD.state, "Open")
        yield* server.restart
        // D's trip is news: the fleet takes it, and B opens too.
        yield* waitState(onB, "Open")
        yield* Effect.sleep("600 millis")
        assert.strictEqual(yield* onD.state, "Open")
        assert.strictEqual(yield* onB.state, "Open")
      }).pipe(Effect.scoped),
    { timeout: 20_000 }
  )

  it.live(
    "a trip made during an outage gives way when the fleet decided after it (its close is newer than the trip)",
    () =>
      Effect.gen(function*() {
        const server = yield* RedisServer.make({ persistence: true })
        const options: CircuitBreaker.Options = {
          name: "stock",
          trip: CircuitBreaker.consecutive(1),
          openDuration: "300 millis"
        }
        const b = yield* start(server, "b")
        const onB = yield* breakerOn(b, options)
        yield* fail(onB)
        yield* waitState(onB, "HalfOpen")
        // A probe on B closes the fleet (a decision made now).
        assert.strictEqual(yield* onB.protect(Effect.succeed("ok")), "ok")
        yield* waitState(onB, "Closed")
        const fleet = Context.get(b.context, RedisFleet.RedisFleet)
        yield* fleet.snapshot.pipe(
          Effect.flatMap(({ breakers: [stock] }) => stock.queued === 0 ? Effect.void : Effect.fail(stock)),
          Effect.retry(Schedule.spaced("10 millis").pipe(Schedule.upTo({ duration: "2 seconds" })))
        )
        yield* server.kill
        // D's trip happened, by the clocks, a minute before B's close: D's clock runs a minute behind.
        const d = yield* start(server, "d", { lazy: true })
        const lagging = laggingBy(60_000, yield* Clock.Clock)
        const onD = yield* breakerOn(d, { ...options, openDuration: "1 minute" }).pipe(
          Effect.provideService(Clock.Clock, lagging)
        )
        yield* fail(onD).pipe(Effect.provideService(Clock.Clock, lagging))
        assert.strictEqual(yield* onD.state.pipe(Effect.provideService(Clock.Clock, lagging)), "Open")
        yield* server.restart
        // The fleet's close is the newer decision: D's trip is rejected and D takes the fleet's state.
        yield* waitState(onD, "Closed")
        assert.strictEqual(yield* onB.state, "Closed")
        const [stock] = (yield* Context.get(d.context, RedisFleet.RedisFleet).snapshot).breakers
        assert.strictEqual(stock.rejected, 1)
      }).pipe(Effect.scoped),
    { timeout: 20_000 }
  )

  // A key the breaker does not hold takes a fleet state an idle sweep would keep (half-open, open with time left), and
  // stays fresh to any other (closed, an opening that elapsed).
  // The states are published, never written to Redis: a periodic resync (which forgets what Redis does not list) is
  // kept a minute away, and a first barrier round has B subscribed before they go out.
  it.live("a key the breaker does not hold takes a half-open or open fleet state, not a closed or elapsed one", () =>
    Effect.gen(function*() {
      const [a, b] = yield* quietPair
      const onB = yield* breakerOn(b, { name: "halves", trip: CircuitBreaker.consecutive(1) })
      const barrier = yield* makeBarrier(a, [b])
      yield* barrier.await
      const store = Context.get(b.context, RedisStore.RedisStore)
      const now = yield* Clock.currentTimeMillis
      const state = (phase: string, openUntil: number) =>
        ["applied", "5", "Live", phase, now - 60_000, openUntil, "1", "60000", "0", "x", "{\"_tag\":\"ProbeFailed\"}"]
          .map(String)
      for (
        const [key, reply] of [
          ["probing", state("HalfOpen", now - 1)],
          ["open", state("Open", now + 60_000)],
          ["closed", state("Closed", now - 1)],
          ["elapsed", state("Open", now - 1)]
        ] as const
      ) {
        yield* store.publish("fleet:events", JSON.stringify(["halves", `k${key}`, reply]))
      }
      yield* barrier.await
      assert.strictEqual(yield* onB.stateKey("probing"), "HalfOpen")
      assert.strictEqual(yield* onB.stateKey("open"), "Open")
      for (const key of ["closed", "elapsed"]) assert.isFalse(yield* holdsKey(onB, key), key)
      assert.strictEqual(yield* keysKnown(b, "halves"), 2)
    }).pipe(Effect.scoped))

  it.live("a trip made just before an instance shuts down still reaches the fleet", () =>
    withFleet((server, [, b]) =>
      Effect.gen(function*() {
        const options: CircuitBreaker.Options = { name: "shutdown", trip: CircuitBreaker.consecutive(1) }
        const onB = yield* breakerOn(b, options)
        const d = yield* start(server, "d")
        const onD = yield* breakerOn(d, options)
        yield* fail(onD)
        yield* Scope.close(d.scope, Exit.void)
        yield* waitState(onB, "Open")
      })
    ))

  it.live("what does not decode is skipped and counted; a state with an unreadable reason is applied as a restore", () =>
    withFleet((_, [a, b, c]) =>
      Effect.gen(function*() {
        const options: CircuitBreaker.Options = { name: "decoding", trip: CircuitBreaker.consecutive(3) }
        const onB = yield* breakerOn(b, options)
        const barrier = yield* makeBarrier(a, [b, c])
        const redis = Context.get(a.context, Redis.Redis)
        const publish = (message: string) => redis.send<number>("PUBLISH", "fleet-test:fleet:events", message)
        const now = Date.now()
        const reply = (
          reason: string
        ) => [
          "applied",
          "100",
          "Live",
          "Open",
          String(now),
          String(now + 60_000),
          "1",
          "60000",
          "0",
          "elsewhere",
          reason
        ]
        yield* publish("not json")
        yield* publish(JSON.stringify(["decoding", "kdefault", ["applied", "100"]]))
        yield* publish(
          JSON.stringify(["decoding", "kdefault", [...reply("{}").slice(0, 2), "Sideways", ...reply("{}").slice(3)]])
        )
        const transition = yield* nextTransition(onB, "Open")
        yield* publish(JSON.stringify(["decoding", "kdefault", reply("{\"_tag\":\"Bogus\"}")]))
        // The state is the fleet's; the reason only says why, and this one is not a reason this version knows.
        assert.deepStrictEqual((yield* Fiber.join(transition)).reason, {
          _tag: "Fleet",
          origin: "elsewhere",
          cause: { _tag: "Manual", action: "restore" }
        })
        // Still in the fleet: a real change arrives after the bad ones.
        yield* barrier.await
        const snapshot = yield* Context.get(b.context, RedisFleet.RedisFleet).snapshot
        // Three messages that did not decode, one reason.
        assert.strictEqual(snapshot.unreadable, 4)
        assert.strictEqual(yield* metricOn(b, "breaker_fleet_unreadable_total", { instance: "b" }), 4)
      })
    ))

  // Hosts come and go: each fails once (its circuit trips, and the fleet hears of it), then is never seen again. The
  // breaker holds at most `maxKeys`; its fleet member used to keep every key ever tripped, and each resync reloaded
  // them all (300 keys kept for 20 held).
  it.live(
    "what a fleet member keeps of a keyed breaker stays within the breaker's key bounds",
    () =>
      Effect.gen(function*() {
        const server = yield* RedisServer.make()
        const a = yield* start(server, "a")
        const maxKeys = 20
        const breaker = yield* breakerOn(a, {
          name: "per-host",
          trip: CircuitBreaker.consecutive(1),
          openDuration: "20 millis",
          keys: { idleTimeToLive: "50 millis", maxKeys }
        })
        for (let i = 0; i < 300; i++) yield* fail(breaker, `host-${i}`)
        yield* sent(a, "per-host")
        // Idle past idleTimeToLive, and past a resync: fresh keys sweep the old ones out locally.
        yield* Effect.sleep("300 millis")
        for (let i = 0; i < 2 * maxKeys; i++) yield* breaker.protectKey(Effect.void, `fresh-${i}`)
        const local = (yield* breaker.snapshots).length - 1
        assert.isAtMost(local, maxKeys, "keys held by the breaker itself")
        const keysKept = keysKnown(a, "per-host")
        assert.isAtMost(yield* keysKept, maxKeys, `keys the fleet member keeps for ${local} live keys`)
        // A resync (every 200 ms) brings none of the old keys back.
        yield* Effect.sleep("300 millis")
        assert.isAtMost(yield* keysKept, maxKeys, "after a resync")
        assert.isAtMost((yield* breaker.snapshots).length - 1, maxKeys, "keys held after a resync")
      }).pipe(Effect.scoped),
    { timeout: 30_000 }
  )

  it.live(
    "a key both instances forgot converges again when it trips again, from either side",
    () =>
      withFleet((_server, [a, b]) =>
        Effect.gen(function*() {
          const options: CircuitBreaker.Options = {
            name: "per-host",
            trip: CircuitBreaker.consecutive(1),
            openDuration: "1 second",
            keys: { idleTimeToLive: "50 millis", maxKeys: 4 }
          }
          const [onA, onB] = [yield* breakerOn(a, options), yield* breakerOn(b, options)]
          yield* fail(onA, "host-0")
          yield* waitState(onB, "Open", "host-0")
          // Its opening elapses, it idles, and fresh keys sweep it out on both; a resync does not bring it back.
          yield* Effect.sleep("1200 millis")
          for (const breaker of [onA, onB]) {
            for (let i = 0; i < 8; i++) yield* breaker.protectKey(Effect.void, `fresh-${i}`)
          }
          yield* Effect.sleep("300 millis")
          for (const [instance, breaker] of [[a, onA], [b, onB]] as const) {
            assert.isFalse(yield* holdsKey(breaker, "host-0"), `${instance.name} holds host-0`)
            assert.strictEqual(yield* keysKnown(instance, "per-host"), 0, `${instance.name} keeps epochs`)
          }
          // B trips it on the epoch it knows (none): the fleet takes it over its elapsed opening, and A applies it.
          yield* fail(onB, "host-0")
          yield* waitState(onA, "Open", "host-0")
          assert.strictEqual(yield* keysKnown(a, "per-host"), 1)
          // And back the other way: once the opening elapses, A's probe fails and reopens it for the fleet.
          yield* Effect.sleep("1100 millis")
          assert.strictEqual(yield* onB.stateKey("host-0"), "HalfOpen")
          yield* fail(onA, "host-0")
          yield* waitState(onB, "Open", "host-0")
        })
      ),
    { timeout: 30_000 }
  )

  it.live("the default instance name takes its random part from Random", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.make()
      const nameWith = (seed: string) =>
        RedisFleet.make().pipe(
          Effect.map((fleet) => fleet.instance),
          Effect.scoped,
          Random.withSeed(seed),
          Effect.provide(RedisStore.layer({ url: server.url, prefix: "fleet-test:" }))
        )
      const [first, again, other] = [yield* nameWith("s1"), yield* nameWith("s1"), yield* nameWith("s2")]
      assert.match(first, new RegExp(`:${process.pid}:[0-9a-z]{6}$`))
      assert.strictEqual(first, again)
      assert.notStrictEqual(first, other)
    }).pipe(Effect.scoped))

  it.live("invalid options fail with PolicyConfigError naming each option", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(
        RedisFleet.make({ instance: "", heartbeat: "often" as never, liveness: 0 }).pipe(
          Effect.scoped,
          Effect.provideService(RedisStore.RedisStore, RedisStore.RedisStore.of({} as never))
        )
      )
      assert.strictEqual(error.kind, "breaker fleet")
      assert.deepStrictEqual(error.issues, [
        { path: "instance", message: "Expected a non-empty string, got \"\"" },
        {
          path: "heartbeat",
          message: "Expected a duration, got \"often\", which is not a duration: use a number of milliseconds, " +
            "a Duration, or \"<amount> <unit>\" with a unit among nanos, micros, millis, seconds, minutes, hours, days, weeks " +
            "(\"30 seconds\")"
        },
        { path: "liveness", message: "Expected a positive duration, got 0 millis" }
      ])
    }))
})
