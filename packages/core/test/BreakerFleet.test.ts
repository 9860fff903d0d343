import { assert, describe, it } from "@effect/vitest"
import { Data, type Duration, Effect, Fiber, Layer, Stream } from "effect"
import { TestClock } from "effect/testing"
import * as BreakerFleet from "../src/BreakerFleet.ts"
import * as CircuitBreaker from "../src/CircuitBreaker.ts"

class Boom extends Data.TaggedError("Boom") {}

/**
 * A fleet in memory that records what breakers ask of it, and answers with `lease` and `counted`: enough to see
 * the breaker's side of the contract, under TestClock.
 */
const recordingFleet = (answers: { lease: BreakerFleet.Lease; counted: boolean }) => {
  const members: Array<BreakerFleet.Member> = []
  const changes: Array<BreakerFleet.Change> = []
  const calls: Array<string> = []
  const fleet = BreakerFleet.BreakerFleet.of({
    instance: "test",
    join: (member) =>
      Effect.sync(() => {
        members.push(member)
        return {
          epoch: () => 7,
          announce: (change) => void changes.push(change),
          lease: (key) => Effect.sync(() => (calls.push(`lease ${key}`), answers.lease)),
          settleProbe: (key, lease, outcome) =>
            Effect.sync(() => (calls.push(`settle ${key} ${lease} ${outcome}`), answers.counted)),
          record: (key, epoch, outcome) =>
            Effect.sync(() => (calls.push(`record ${key} ${epoch} ${outcome}`), answers.counted))
        }
      })
  })
  return { members, changes, calls, layer: Layer.succeed(BreakerFleet.BreakerFleet, fleet) }
}

const failOnce = (breaker: CircuitBreaker.CircuitBreaker) => Effect.ignore(breaker.protect(Effect.fail(new Boom())))

describe("BreakerFleet (the breaker's side)", () => {
  it.effect("breakers join the fleet in context unless they say fleet: false", () => {
    const fleet = recordingFleet({ lease: { _tag: "Local" }, counted: true })
    return Effect.gen(function*() {
      yield* CircuitBreaker.make({ name: "shared" })
      yield* CircuitBreaker.make({ name: "solo", fleet: false })
      yield* CircuitBreaker.make({
        name: "voted",
        fleet: { counting: "quorum", quorum: { instances: 2, window: "30 seconds" } }
      })
      assert.deepStrictEqual(fleet.members.map((m) => [m.breaker, m.counting, m.quorum]), [
        ["shared", "local", { instances: 0, share: 0, windowMillis: 0 }],
        ["voted", "quorum", { instances: 2, share: 0, windowMillis: 30_000 }]
      ])
    }).pipe(Effect.scoped, Effect.provide(fleet.layer))
  })

  it.effect("quorum counting without instances or share is a config error naming the field", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(CircuitBreaker.make({ name: "q", fleet: { counting: "quorum" } }))
      assert.strictEqual(error._tag, "PolicyConfigError")
      assert.deepStrictEqual(error.issues.map((issue) => issue.path), ["fleet.quorum"])
      assert.match(error.issues[0].message, /quorum.instances or quorum.share/)
    }).pipe(Effect.scoped))

  it.effect("trips and closes are announced, Open -> HalfOpen is not, manual controls always are", () => {
    const fleet = recordingFleet({ lease: { _tag: "Local" }, counted: true })
    return Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({
        name: "b",
        trip: CircuitBreaker.consecutive(1),
        openDuration: "1 second"
      })
      yield* failOnce(breaker)
      yield* TestClock.adjust("1 second")
      yield* breaker.protect(Effect.void) // HalfOpen (not announced), then Closed by the local probe
      yield* breaker.reset() // already Closed: no transition, but the fleet may differ
      yield* breaker.forceOpen("tenant")
      assert.deepStrictEqual(fleet.changes.map((c) => [c.key, c.kind, c.reason._tag, c.state.phase]), [
        ["default", "trip", "ConsecutiveFailures", "Open"],
        ["default", "close", "ProbesSucceeded", "Closed"],
        [undefined, "manual", "Manual", "Closed"],
        ["tenant", "manual", "Manual", "Closed"]
      ])
      assert.strictEqual(fleet.changes[3].state.mode, "ForcedOpen")
      assert.strictEqual(fleet.changes[0].state.openUntil, 1_000)
    }).pipe(Effect.scoped, Effect.provide(fleet.layer))
  })

  it.effect("a state from the fleet applies with a Fleet reason and is not announced back", () => {
    const fleet = recordingFleet({ lease: { _tag: "Local" }, counted: true })
    return Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ name: "b" })
      const seen = yield* breaker.transitions.pipe(Stream.take(2), Stream.runCollect, Effect.forkScoped)
      yield* Effect.yieldNow
      const member = fleet.members[0]
      const open: CircuitBreaker.PersistedState = {
        mode: "Live",
        phase: "Open",
        openedAt: 0,
        openUntil: 5_000,
        openings: 1,
        lastOpenMillis: 5_000,
        closedAt: 0
      }
      yield* member.apply("default", {
        epoch: 3,
        state: open,
        origin: "other",
        reason: { _tag: "ConsecutiveFailures", failures: 5 }
      })
      yield* member.apply(undefined, {
        epoch: 4,
        state: { ...open, mode: "ForcedOpen" },
        origin: "ops",
        reason: {
          _tag: "Manual",
          action: "forceOpen"
        }
      })
      const transitions = yield* Fiber.join(seen)
      assert.deepStrictEqual(transitions.map((t) => [t.to, t.reason]), [
        ["Open", { _tag: "Fleet", origin: "other", cause: { _tag: "ConsecutiveFailures", failures: 5 } }],
        ["ForcedOpen", { _tag: "Fleet", origin: "ops", cause: { _tag: "Manual", action: "forceOpen" } }]
      ])
      assert.strictEqual(fleet.changes.length, 0)
      assert.strictEqual(CircuitBreaker.describeReason(transitions[0].reason), "5 consecutive failures (on other)")
    }).pipe(Effect.scoped, Effect.provide(fleet.layer))
  })

  it.effect("a denied lease rejects the probe with CircuitHalfOpen without running it", () => {
    const fleet = recordingFleet({ lease: { _tag: "Denied" }, counted: true })
    return Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ name: "b", trip: CircuitBreaker.consecutive(1), openDuration: 1000 })
      yield* failOnce(breaker)
      yield* TestClock.adjust("1 second")
      let ran = 0
      const error = yield* Effect.flip(breaker.protect(Effect.sync(() => ran++)))
      assert.strictEqual(error.reason._tag, "CircuitHalfOpen")
      assert.strictEqual(ran, 0)
      // The local slot came back: a second probe asks the fleet again.
      yield* Effect.flip(breaker.protect(Effect.void))
      assert.deepStrictEqual(fleet.calls, ["lease default", "lease default"])
      assert.strictEqual((yield* breaker.snapshot).rejectedCount, 2)
    }).pipe(Effect.scoped, Effect.provide(fleet.layer))
  })

  it.effect("a granted probe is settled by the fleet, not by the local machine", () => {
    const fleet = recordingFleet({ lease: { _tag: "Granted", lease: "9|x" }, counted: true })
    return Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ name: "b", trip: CircuitBreaker.consecutive(1), openDuration: 1000 })
      yield* failOnce(breaker)
      yield* TestClock.adjust("1 second")
      yield* breaker.protect(Effect.void)
      assert.deepStrictEqual(fleet.calls, ["lease default", "settle default 9|x success"])
      // The fleet decides: locally still HalfOpen, its slot free for the next probe.
      assert.strictEqual(yield* breaker.state, "HalfOpen")
      assert.strictEqual((yield* breaker.snapshot).halfOpen?.probesInFlight, 0)
    }).pipe(Effect.scoped, Effect.provide(fleet.layer))
  })

  it.effect("an unreachable fleet leaves the decision to the local machine", () => {
    const fleet = recordingFleet({ lease: { _tag: "Granted", lease: "9|x" }, counted: false })
    return Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({
        name: "b",
        trip: CircuitBreaker.consecutive(2),
        openDuration: 1000,
        fleet: { counting: "global" }
      })
      yield* failOnce(breaker)
      yield* failOnce(breaker)
      assert.strictEqual(yield* breaker.state, "Open")
      yield* TestClock.adjust("1 second")
      yield* breaker.protect(Effect.void)
      assert.strictEqual(yield* breaker.state, "Closed")
      assert.deepStrictEqual(fleet.calls, [
        "record default 7 failure",
        "record default 7 failure",
        "lease default",
        "settle default 9|x success"
      ])
    }).pipe(Effect.scoped, Effect.provide(fleet.layer))
  })

  it.effect("global counting: an outcome from an earlier generation stays out of the new window", () => {
    const fleet = recordingFleet({ lease: { _tag: "Local" }, counted: true })
    return Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({
        name: "b",
        trip: CircuitBreaker.failureRate({ threshold: 0.5, minimumCalls: 5, window: CircuitBreaker.lastCalls(10) }),
        fleet: { counting: "global" }
      })
      yield* breaker.protect(Effect.void)
      const slow = yield* Effect.forkChild(
        Effect.ignore(breaker.protect(Effect.delay(Effect.fail(new Boom()), "1 second"))),
        { startImmediately: true }
      )
      yield* breaker.reset() // a new generation: the slow call was admitted before it
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(slow)
      const snapshot = yield* breaker.snapshot
      // A real call: the lifetime totals count it, but not the window of a generation it was not admitted in.
      assert.deepStrictEqual([snapshot.totalCalls, snapshot.failureCount], [2, 1])
      assert.deepStrictEqual(snapshot.window, { calls: 0, failures: 0, successes: 0, slowCalls: 0 })
      assert.strictEqual(snapshot.failureRate, 0)
    }).pipe(Effect.scoped, Effect.provide(fleet.layer))
  })

  it.effect("global counting: an outcome from an earlier generation leaves the consecutive streak alone", () => {
    const fleet = recordingFleet({ lease: { _tag: "Local" }, counted: true })
    return Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({
        name: "b",
        trip: CircuitBreaker.consecutive(5),
        fleet: { counting: "global" }
      })
      const late = (effect: Effect.Effect<void, Boom>, after: Duration.Input) =>
        Effect.forkChild(Effect.ignore(breaker.protect(Effect.delay(effect, after))), { startImmediately: true })
      const lateFailure = yield* late(Effect.fail(new Boom()), "1 second")
      const lateSuccess = yield* late(Effect.void, "2 seconds")
      yield* breaker.reset() // a new generation: both calls were admitted before it
      yield* failOnce(breaker)
      assert.strictEqual((yield* breaker.snapshot).consecutiveFailures, 1)
      // The late failure does not lengthen the new generation's streak...
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(lateFailure)
      assert.strictEqual((yield* breaker.snapshot).consecutiveFailures, 1)
      // ...and the late success does not end it.
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(lateSuccess)
      const snapshot = yield* breaker.snapshot
      assert.deepStrictEqual([snapshot.consecutiveFailures, snapshot.totalCalls], [1, 3])
    }).pipe(Effect.scoped, Effect.provide(fleet.layer))
  })

  it.effect("global counting: the fleet counts, the local machine only tallies", () => {
    const fleet = recordingFleet({ lease: { _tag: "Local" }, counted: true })
    return Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({
        name: "b",
        trip: CircuitBreaker.consecutive(1),
        fleet: { counting: "global" }
      })
      yield* failOnce(breaker)
      yield* breaker.protect(Effect.void)
      assert.strictEqual(yield* breaker.state, "Closed")
      const snapshot = yield* breaker.snapshot
      assert.deepStrictEqual([snapshot.failureCount, snapshot.successCount], [1, 1])
      assert.deepStrictEqual(fleet.calls, ["record default 7 failure", "record default 7 success"])
    }).pipe(Effect.scoped, Effect.provide(fleet.layer))
  })
})
