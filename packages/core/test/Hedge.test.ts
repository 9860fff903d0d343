import { assert, describe, it } from "@effect/vitest"
import { Cause, Clock, Data, Duration, Effect, Exit, Fiber, Metric, Ref, Schema } from "effect"
import { TestClock } from "effect/testing"
import * as Hedge from "../src/Hedge.ts"
import * as Timeout from "../src/Timeout.ts"
import { interruptedAfter, protectedCalls, runningIn, yieldTimes } from "./interruption.ts"

class Boom extends Data.TaggedError("Boom")<{ readonly attempt: number }> {}

interface Step {
  readonly latency: number
  readonly fails?: boolean
}

/**
 * An effect whose n-th run follows `steps[n]`: it takes `latency`, then answers `attempt n` or fails with
 * `Boom(n)`. Each run records when it started, and whether it was interrupted.
 */
const scripted = (steps: ReadonlyArray<Step>) =>
  Effect.gen(function*() {
    const runs = yield* Ref.make(0)
    const started = yield* Ref.make<ReadonlyArray<number>>([])
    const interrupted = yield* Ref.make<ReadonlyArray<number>>([])
    const effect = Effect.gen(function*() {
      const attempt = yield* Ref.getAndUpdate(runs, (n) => n + 1)
      const now = yield* Clock.currentTimeMillis
      yield* Ref.update(started, (all) => [...all, now])
      const step = steps[attempt]
      yield* Effect.sleep(Duration.millis(step.latency)).pipe(
        Effect.onInterrupt(() => Ref.update(interrupted, (all) => [...all, attempt]))
      )
      if (step.fails === true) return yield* new Boom({ attempt })
      return `attempt ${attempt}`
    })
    return { effect, started: Ref.get(started), interrupted: Ref.get(interrupted) }
  })

/** Runs `effect` and tells when it ended and how. */
const timed = <A, E>(effect: Effect.Effect<A, E>) =>
  Effect.gen(function*() {
    const exit = yield* Effect.exit(effect)
    return { at: yield* Clock.currentTimeMillis, exit }
  })

const metricValue = (id: string, attributes: Record<string, string> = {}) =>
  Metric.snapshot.pipe(Effect.map((all) => {
    const found = all.find((m) =>
      m.id === id && m.attributes?.["policy"] === "replicas" &&
      Object.entries(attributes).every(([k, v]) => m.attributes?.[k] === v)
    )
    return (found?.state as { readonly count?: number } | undefined)?.count
  }))

describe("Hedge", () => {
  describe("racing", () => {
    it.effect("no hedge starts when the primary answers before `delay`", () =>
      Effect.gen(function*() {
        const hedge = yield* Hedge.make({ name: "replicas", delay: "100 millis", maxHedges: 2 })
        assert.strictEqual(yield* hedge.protect(Effect.succeed("at once")), "at once")
        const script = yield* scripted([{ latency: 99 }])
        const fiber = yield* Effect.forkChild(timed(hedge.protect(script.effect)))
        yield* TestClock.adjust("1 second")
        assert.deepStrictEqual(yield* Fiber.join(fiber), { at: 99, exit: Exit.succeed("attempt 0") })
        assert.deepStrictEqual(yield* script.started, [0])
        assert.deepStrictEqual(yield* hedge.snapshot, {
          name: "replicas",
          delayMillis: 100,
          maxHedges: 2,
          calls: 2,
          hedges: 0,
          wins: [2, 0, 0],
          inFlight: 0
        })
      }))

    it.effect("a slow primary gets a hedge at exactly `delay`; the first success wins, the loser is interrupted", () =>
      Effect.gen(function*() {
        const hedge = yield* Hedge.make({ name: "replicas", delay: "100 millis" })
        const script = yield* scripted([{ latency: 500 }, { latency: 50 }])
        const fiber = yield* Effect.forkChild(timed(hedge.protect(script.effect)))
        yield* TestClock.adjust("99 millis")
        assert.deepStrictEqual(yield* script.started, [0])
        yield* TestClock.adjust("1 millis")
        assert.deepStrictEqual(yield* script.started, [0, 100])
        yield* TestClock.adjust("1 second")
        assert.deepStrictEqual(yield* Fiber.join(fiber), { at: 150, exit: Exit.succeed("attempt 1") })
        assert.deepStrictEqual(yield* script.interrupted, [0])
        const snapshot = yield* hedge.snapshot
        assert.strictEqual(snapshot.hedges, 1)
        assert.deepStrictEqual(snapshot.wins, [0, 1])
      }))

    it.effect("starts exactly `maxHedges` hedges, `delay` apart", () =>
      Effect.gen(function*() {
        const hedge = yield* Hedge.make({ name: "replicas", delay: "100 millis", maxHedges: 3 })
        const script = yield* scripted([{ latency: 1000 }, { latency: 1000 }, { latency: 1000 }, { latency: 1000 }])
        const fiber = yield* Effect.forkChild(timed(hedge.protect(script.effect)))
        yield* TestClock.adjust("10 seconds")
        // The primary, first to finish, wins; the hedges still running are interrupted.
        assert.deepStrictEqual(yield* Fiber.join(fiber), { at: 1000, exit: Exit.succeed("attempt 0") })
        assert.deepStrictEqual(yield* script.started, [0, 100, 200, 300])
        assert.deepStrictEqual(yield* script.interrupted, [1, 2, 3])
        assert.strictEqual((yield* hedge.snapshot).hedges, 3)
      }))

    it.effect("a failure does not end the race while another attempt runs", () =>
      Effect.gen(function*() {
        const hedge = yield* Hedge.make({ name: "replicas", delay: "100 millis", maxHedges: 2 })
        // The primary fails at 150 ms; the first hedge, started at 100 ms, succeeds at 300 ms.
        const script = yield* scripted([{ latency: 150, fails: true }, { latency: 200 }, { latency: 500 }])
        const fiber = yield* Effect.forkChild(timed(hedge.protect(script.effect)))
        yield* TestClock.adjust("1 second")
        assert.deepStrictEqual(yield* Fiber.join(fiber), { at: 300, exit: Exit.succeed("attempt 1") })
        // The failure started no hedge early: the second one came at 200 ms, as planned.
        assert.deepStrictEqual(yield* script.started, [0, 100, 200])
        assert.deepStrictEqual(yield* script.interrupted, [2])
        assert.deepStrictEqual((yield* hedge.snapshot).wins, [0, 1, 0])
      }))

    it.effect("when every attempt has failed, the call fails with the last failure", () =>
      Effect.gen(function*() {
        const hedge = yield* Hedge.make({ name: "replicas", delay: "100 millis", maxHedges: 2 })
        // Failures at 400 ms (primary), 250 ms and 300 ms: the primary fails last.
        const script = yield* scripted([
          { latency: 400, fails: true },
          { latency: 150, fails: true },
          { latency: 100, fails: true }
        ])
        const fiber = yield* Effect.forkChild(timed(hedge.protect(script.effect)))
        yield* TestClock.adjust("1 second")
        assert.deepStrictEqual(yield* Fiber.join(fiber), { at: 400, exit: Exit.fail(new Boom({ attempt: 0 })) })
        assert.deepStrictEqual(yield* script.interrupted, [])
        const snapshot = yield* hedge.snapshot
        assert.strictEqual(snapshot.hedges, 2)
        assert.deepStrictEqual(snapshot.wins, [0, 0, 0])
        assert.strictEqual(snapshot.inFlight, 0)
      }))

    it.effect("a primary failing alone fails the call at once, with no hedge", () =>
      Effect.gen(function*() {
        const hedge = yield* Hedge.make({ name: "replicas", delay: "100 millis", maxHedges: 2 })
        const script = yield* scripted([{ latency: 50, fails: true }])
        const fiber = yield* Effect.forkChild(timed(hedge.protect(script.effect)))
        yield* TestClock.adjust("1 second")
        assert.deepStrictEqual(yield* Fiber.join(fiber), { at: 50, exit: Exit.fail(new Boom({ attempt: 0 })) })
        // Failing without suspending, too.
        const boom = new Boom({ attempt: 7 })
        assert.strictEqual(yield* Effect.flip(hedge.protect(Effect.fail(boom))), boom)
        assert.strictEqual((yield* hedge.snapshot).hedges, 0)
      }))

    it.effect("interrupting the caller interrupts every attempt", () =>
      Effect.gen(function*() {
        const hedge = yield* Hedge.make({ name: "replicas", delay: "100 millis", maxHedges: 2 })
        const script = yield* scripted([{ latency: 1000 }, { latency: 1000 }, { latency: 1000 }])
        const fiber = yield* Effect.forkChild(hedge.protect(script.effect))
        yield* TestClock.adjust("250 millis")
        assert.strictEqual((yield* hedge.snapshot).inFlight, 1)
        yield* Fiber.interrupt(fiber)
        assert.deepStrictEqual([...(yield* script.interrupted)].sort(), [0, 1, 2])
        yield* TestClock.adjust("1 second")
        const snapshot = yield* hedge.snapshot
        assert.strictEqual(snapshot.hedges, 2)
        assert.deepStrictEqual(snapshot.wins, [0, 0, 0])
        assert.strictEqual(snapshot.inFlight, 0)
      }))

    it.effect("a caller interrupted at any point, hedges started or not, leaves no attempt running", () =>
      Effect.gen(function*() {
        for (const [name, call] of Object.entries(protectedCalls)) {
          for (let turns = 0; turns < 30; turns++) {
            const hedge = yield* Hedge.make({ name: "replicas", delay: "10 millis", maxHedges: 2 })
            const running = { count: 0 }
            // The clock moves on while the caller starts: the hedges start at some turn of the sweep.
            yield* interruptedAfter(
              hedge.protect(runningIn(running, call)),
              turns,
              Effect.andThen(yieldTimes(3), TestClock.adjust("25 millis"))
            )
            const label = `${name}, interrupted after ${turns} turns`
            assert.strictEqual(running.count, 0, `${label}: an attempt runs on`)
            assert.strictEqual((yield* hedge.snapshot).inFlight, 0, label)
          }
        }
      }).pipe(Effect.scoped))

    it.effect("the winner's value comes once the losers have stopped", () =>
      Effect.gen(function*() {
        const hedge = yield* Hedge.make({ name: "replicas", delay: "100 millis" })
        const runs = yield* Ref.make(0)
        // The primary hangs and takes 30 ms to clean up when interrupted; the hedge answers in 50 ms.
        const effect = Effect.flatMap(Ref.getAndUpdate(runs, (n) => n + 1), (attempt) =>
          attempt === 0
            ? Effect.never.pipe(Effect.onInterrupt(() => Effect.sleep("30 millis")))
            : Effect.as(Effect.sleep("50 millis"), "hedge"))
        const fiber = yield* Effect.forkChild(timed(hedge.protect(effect)))
        yield* TestClock.adjust("1 second")
        assert.deepStrictEqual(yield* Fiber.join(fiber), { at: 180, exit: Exit.succeed("hedge") })
      }))

    it.effect("a timeout inside the hedge times out each attempt on its own", () =>
      Effect.gen(function*() {
        const hedge = yield* Hedge.make({ name: "replicas", delay: "100 millis", maxHedges: 1 })
        const timeout = yield* Timeout.make({ name: "replicas", duration: "300 millis" })
        const script = yield* scripted([{ latency: 1000 }, { latency: 1000 }])
        const fiber = yield* Effect.forkChild(timed(hedge.protect(timeout.protect(script.effect))))
        yield* TestClock.adjust("1 second")
        // The primary times out at 300 ms, its hedge at 400 ms: the call fails with the last TimeoutError.
        const { at, exit } = yield* Fiber.join(fiber)
        assert.strictEqual(at, 400)
        assert.isTrue(Exit.isFailure(exit) && Cause.squash(exit.cause) instanceof Timeout.TimeoutError)
        assert.deepStrictEqual(yield* script.interrupted, [0, 1])
        assert.strictEqual((yield* timeout.snapshot).timeouts, 2)
      }))

    // An attempt's latency in tens of milliseconds, and whether it fails.
    const Draw = Schema.Tuple([Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 60 })), Schema.Boolean])

    // Latencies end in k + 1 (mod 10) for attempt k, and hedges start on multiples of 100 ms: no two events share
    // an instant, so the model below is exact.
    it.effect.prop(
      "the outcome is the first success among the attempts started, hedges starting while none has come",
      [
        Schema.Tuple([Draw, Draw, Draw, Draw])
      ],
      ([draws]) =>
        Effect.gen(function*() {
          const delay = 100
          const steps = draws.map(([tens, fails], k) => ({ latency: tens * 10 + k + 1, fails }))
          const finish = (k: number) => k * delay + steps[k].latency

          // The model: hedge k starts at k * delay unless the race has ended by then.
          const started = [0]
          const endOf = () => {
            const success = Math.min(...started.filter((k) => !steps[k].fails).map(finish))
            const allFailed = started.every((k) => steps[k].fails) ? Math.max(...started.map(finish)) : Infinity
            return Math.min(success, allFailed)
          }
          for (let k = 1; k < steps.length && endOf() > k * delay; k++) started.push(k)
          const winners = started.filter((k) => !steps[k].fails).sort((a, b) => finish(a) - finish(b))
          const lastFailure = [...started].sort((a, b) => finish(b) - finish(a))[0]
          const expected = winners.length > 0
            ? { at: finish(winners[0]), exit: Exit.succeed(`attempt ${winners[0]}`) }
            : { at: finish(lastFailure), exit: Exit.fail(new Boom({ attempt: lastFailure })) }

          const hedge = yield* Hedge.make({ name: "replicas", delay: Duration.millis(delay), maxHedges: 3 })
          const script = yield* scripted(steps)
          const fiber = yield* Effect.forkChild(timed(hedge.protect(script.effect)))
          yield* TestClock.adjust("10 seconds")
          assert.deepStrictEqual(yield* Fiber.join(fiber), expected)
          assert.deepStrictEqual(yield* script.started, started.map((k) => k * delay))
          const snapshot = yield* hedge.snapshot
          assert.strictEqual(snapshot.hedges, started.length - 1)
          assert.deepStrictEqual(snapshot.wins, [0, 1, 2, 3].map((k) => winners[0] === k ? 1 : 0))
        }),
      { arbitrary: { runs: 200 } }
    )
  })

  describe("metrics and options", () => {
    it.effect("exports calls, hedges and wins by attempt, tagged with the policy", () =>
      Effect.gen(function*() {
        const hedge = yield* Hedge.make({ name: "replicas", delay: "100 millis", maxHedges: 2 })
        yield* hedge.protect(Effect.void)
        const script = yield* scripted([{ latency: 1000 }, { latency: 1000 }, { latency: 10 }])
        const fiber = yield* Effect.forkChild(hedge.protect(script.effect))
        yield* TestClock.adjust("1 second")
        yield* Fiber.join(fiber)
        assert.strictEqual(yield* metricValue("hedge_calls_total"), 2)
        assert.strictEqual(yield* metricValue("hedge_hedges_total"), 2)
        assert.strictEqual(yield* metricValue("hedge_wins_total", { attempt: "0" }), 1)
        assert.strictEqual(yield* metricValue("hedge_wins_total", { attempt: "1" }), 0)
        assert.strictEqual(yield* metricValue("hedge_wins_total", { attempt: "2" }), 1)
      }))

    it.effect("rejects invalid options, naming each one", () =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(Hedge.make({ name: "replicas", delay: "0 millis", maxHedges: 0 }))
        assert.strictEqual(error.kind, "hedge")
        assert.deepStrictEqual(error.issues.map((issue) => issue.path), ["delay", "maxHedges"])
        assert.strictEqual(error.issues[0].message, "Expected a positive duration, got 0 millis")
        // Each hedge has its own win counter, made up front.
        const tooMany = yield* Effect.flip(Hedge.make({ name: "replicas", delay: "10 millis", maxHedges: 1e12 }))
        assert.deepStrictEqual(tooMany.issues.map((issue) => `${issue.path}: ${issue.message}`), [
          "maxHedges: Expected a value less than or equal to 100, got 1000000000000"
        ])
      }))
  })
})
