import { assert, describe, it } from "@effect/vitest"
import { Cause, Clock, Data, Duration, Effect, Exit, Fiber, Metric, Option, Ref, Schema } from "effect"
import { TestClock } from "effect/testing"
import { limiters } from "../src/internal/timeout.ts"
import * as Timeout from "../src/Timeout.ts"
import { interruptedAfter, protectedCalls, runningIn } from "./interruption.ts"

class Boom extends Data.TaggedError("Boom")<{ readonly cause?: unknown }> {}

/** Takes `millis`, then answers `value`. */
const takes = <A>(millis: number, value: A) => Effect.as(Effect.sleep(Duration.millis(millis)), value)

/** Runs `effect` and tells when it ended and how. */
const timed = <A, E>(effect: Effect.Effect<A, E>) =>
  Effect.gen(function*() {
    const exit = yield* Effect.exit(effect)
    return { at: yield* Clock.currentTimeMillis, exit }
  })

const failureOf = <A, E>(exit: Exit.Exit<A, E>): E => {
  assert.isTrue(Exit.isFailure(exit))
  const error = Cause.findErrorOption((exit as Exit.Failure<A, E>).cause)
  assert.isTrue(Option.isSome(error))
  return Option.getOrThrow(error)
}

const metricValue = (id: string) =>
  Metric.snapshot.pipe(Effect.map((all) => {
    const found = all.find((m) => m.id === id && m.attributes?.["policy"] === "db")
    const state = found?.state as { readonly count?: number; readonly value?: number } | undefined
    return state?.count ?? state?.value
  }))

describe("Timeout", () => {
  describe("deadline", () => {
    it.effect("an attempt that finishes in less than `duration` succeeds; at exactly `duration` it times out", () =>
      Effect.gen(function*() {
        const timeout = yield* Timeout.make({ name: "db", duration: "1 second" })
        const early = yield* Effect.forkChild(timed(timeout.protect(takes(999, "early"))))
        const exact = yield* Effect.forkChild(timed(timeout.protect(takes(1000, "exact"))))
        const late = yield* Effect.forkChild(timed(timeout.protect(takes(1001, "late"))))
        yield* TestClock.adjust("2 seconds")

        assert.deepStrictEqual(yield* Fiber.join(early), { at: 999, exit: Exit.succeed("early") })
        const atDeadline = yield* Fiber.join(exact)
        const afterDeadline = yield* Fiber.join(late)
        // Both fail at the deadline, the one that would have finished there included.
        assert.strictEqual(atDeadline.at, 1000)
        assert.strictEqual(afterDeadline.at, 1000)
        const error = failureOf(atDeadline.exit)
        assert.instanceOf(error, Timeout.TimeoutError)
        assert.strictEqual(failureOf(afterDeadline.exit)._tag, "TimeoutError")
        assert.deepStrictEqual(yield* timeout.snapshot, {
          name: "db",
          durationMillis: 1000,
          calls: 3,
          timeouts: 2,
          inFlight: 0
        })
      }))

    it.effect("an attempt finishing at its deadline times out even when it wakes before the timer", () =>
      Effect.gen(function*() {
        const timeout = yield* Timeout.make({ name: "db", duration: "1 second" })
        // The attempt's own sleep is registered before the timer's, so at 1000 ms it finishes first.
        const fiber = yield* Effect.forkChild(timed(timeout.protect(takes(1000, "exact"))))
        yield* TestClock.adjust("1 second")
        const { at, exit } = yield* Fiber.join(fiber)
        assert.strictEqual(at, 1000)
        assert.strictEqual(failureOf(exit)._tag, "TimeoutError")
        assert.strictEqual((yield* timeout.snapshot).timeouts, 1)
      }))

    it.effect("the TimeoutError names the operation and the duration", () =>
      Effect.gen(function*() {
        const timeout = yield* Timeout.make({ name: "search", duration: "1500 millis" })
        const fiber = yield* Effect.forkChild(Effect.flip(timeout.protect(Effect.never)))
        yield* TestClock.adjust("1500 millis")
        const error = yield* Fiber.join(fiber)
        assert.strictEqual(error.operation, "search")
        assert.strictEqual(Duration.toMillis(error.duration), 1500)
        assert.strictEqual(error.message, "Operation \"search\" timed out after 1s 500ms")
        assert.isTrue(Timeout.isTimeoutError(error))
        assert.isFalse(Timeout.isTimeoutError(new Cause.TimeoutError()))
        // It survives a round trip through its Schema, as it would across a wire.
        const codec = Schema.toCodecJson(Timeout.TimeoutError)
        const decoded = Schema.decodeUnknownSync(codec)(Schema.encodeSync(codec)(error))
        assert.strictEqual(decoded.message, error.message)
      }))

    it.effect("the timed-out attempt is interrupted", () =>
      Effect.gen(function*() {
        const timeout = yield* Timeout.make({ name: "db", duration: "1 second" })
        const interrupted = yield* Ref.make(false)
        const fiber = yield* Effect.forkChild(
          Effect.flip(timeout.protect(Effect.never.pipe(Effect.onInterrupt(() => Ref.set(interrupted, true)))))
        )
        yield* TestClock.adjust("999 millis")
        assert.isFalse(yield* Ref.get(interrupted))
        yield* TestClock.adjust("1 millis")
        assert.isTrue(yield* Ref.get(interrupted))
        assert.strictEqual((yield* Fiber.join(fiber))._tag, "TimeoutError")
      }))

    it.effect("the caller gets the TimeoutError once the interrupted attempt has stopped", () =>
      Effect.gen(function*() {
        const timeout = yield* Timeout.make({ name: "db", duration: "1 second" })
        const cleanedUpAt = yield* Ref.make(-1)
        const slowToStop = Effect.never.pipe(
          Effect.onInterrupt(() =>
            Effect.sleep("300 millis").pipe(
              Effect.andThen(Clock.currentTimeMillis),
              Effect.flatMap((now) => Ref.set(cleanedUpAt, now))
            )
          )
        )
        const fiber = yield* Effect.forkChild(timed(timeout.protect(slowToStop)))
        yield* TestClock.adjust("1 second")
        // Timed out and counted, but still in flight while its finalizer runs.
        assert.deepStrictEqual(yield* timeout.snapshot, {
          name: "db",
          durationMillis: 1000,
          calls: 1,
          timeouts: 1,
          inFlight: 1
        })
        yield* TestClock.adjust("300 millis")
        const { at, exit } = yield* Fiber.join(fiber)
        assert.strictEqual(at, 1300)
        assert.strictEqual(yield* Ref.get(cleanedUpAt), 1300)
        assert.strictEqual(failureOf(exit)._tag, "TimeoutError")
        assert.strictEqual((yield* timeout.snapshot).inFlight, 0)
      }))

    it.effect.prop(
      "each of many overlapping calls times out exactly when its own duration has passed",
      [
        // Starts on a 100 ms grid and latencies around the deadline: many events share an instant.
        Schema.Array(
          Schema.Tuple([
            Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 30 })),
            Schema.Literals([0, 1, 100, 999, 1000, 1001, 1100])
          ])
        )
      ],
      ([grid]) =>
        Effect.gen(function*() {
          const calls = grid.map(([slot, latency]) => [slot * 100, latency] as const)
          const timeout = yield* Timeout.make({ name: "db", duration: "1 second" })
          const fibers = yield* Effect.forEach(calls, ([startAt, latency], i) =>
            Effect.forkChild(
              Effect.sleep(Duration.millis(startAt)).pipe(Effect.andThen(timed(timeout.protect(takes(latency, i)))))
            ))
          yield* TestClock.adjust("5 seconds")
          const results = yield* Effect.forEach(fibers, Fiber.join)
          calls.forEach(([startAt, latency], i) => {
            const { at, exit } = results[i]
            if (latency < 1000) {
              assert.deepStrictEqual({ at, exit }, { at: startAt + latency, exit: Exit.succeed(i) })
            } else {
              assert.strictEqual(at, startAt + 1000)
              assert.strictEqual(failureOf(exit)._tag, "TimeoutError")
            }
          })
          const snapshot = yield* timeout.snapshot
          assert.strictEqual(snapshot.calls, calls.length)
          assert.strictEqual(snapshot.timeouts, calls.filter(([, latency]) => latency >= 1000).length)
          assert.strictEqual(snapshot.inFlight, 0)
        }),
      { arbitrary: { runs: 100 } }
    )
  })

  describe("outcomes", () => {
    it.effect("values, typed errors and defects pass through unchanged, with or without suspending", () =>
      Effect.gen(function*() {
        const timeout = yield* Timeout.make({ name: "db", duration: "1 second" })
        const boom = new Boom({})
        assert.strictEqual(yield* timeout.protect(Effect.succeed(1)), 1)
        assert.strictEqual(yield* Effect.flip(timeout.protect(Effect.fail(boom))), boom)
        const defect = yield* Effect.exit(timeout.protect(Effect.die("bug")))
        assert.deepStrictEqual(defect, Exit.die("bug"))

        const fibers = yield* Effect.forEach(
          [
            takes(10, 2),
            Effect.andThen(Effect.sleep("10 millis"), Effect.fail(boom)),
            Effect.andThen(
              Effect.sleep("10 millis"),
              Effect.die("late bug")
            )
          ],
          (effect) => Effect.forkChild(Effect.exit(timeout.protect(effect)))
        )
        yield* TestClock.adjust("10 millis")
        assert.deepStrictEqual(yield* Effect.forEach(fibers, Fiber.join), [
          Exit.succeed(2),
          Exit.fail(boom),
          Exit.die("late bug")
        ])
        assert.deepStrictEqual(yield* timeout.snapshot, {
          name: "db",
          durationMillis: 1000,
          calls: 6,
          timeouts: 0,
          inFlight: 0
        })
      }))

    it.effect("interrupting the caller interrupts the attempt, and is no timeout", () =>
      Effect.gen(function*() {
        const timeout = yield* Timeout.make({ name: "db", duration: "1 second" })
        const interrupted = yield* Ref.make(false)
        const caller = yield* Effect.forkChild(
          timeout.protect(Effect.never.pipe(Effect.onInterrupt(() => Ref.set(interrupted, true))))
        )
        yield* TestClock.adjust("500 millis")
        assert.strictEqual((yield* timeout.snapshot).inFlight, 1)
        yield* Fiber.interrupt(caller)
        assert.isTrue(yield* Ref.get(interrupted))
        yield* TestClock.adjust("1 second")
        const snapshot = yield* timeout.snapshot
        assert.strictEqual(snapshot.timeouts, 0)
        assert.strictEqual(snapshot.inFlight, 0)
      }))

    it.effect("an attempt stopping after its caller was interrupted is in flight until it has stopped", () =>
      Effect.gen(function*() {
        const timeout = yield* Timeout.make({ name: "db", duration: "10 seconds" })
        // Interrupting the attempt takes a second: its finalizer closes a connection, say.
        const closing = Effect.never.pipe(Effect.onInterrupt(() => Effect.sleep("1 second")))
        const caller = yield* Effect.forkChild(timeout.protect(closing))
        yield* TestClock.adjust("10 millis")
        const interrupting = yield* Effect.forkChild(Fiber.interrupt(caller))
        yield* TestClock.adjust("500 millis")
        const stopping = (yield* timeout.snapshot).inFlight
        yield* TestClock.adjust("500 millis")
        yield* Fiber.join(interrupting)
        assert.deepStrictEqual([stopping, (yield* timeout.snapshot).inFlight], [1, 0])
      }))

    it.effect("a caller interrupted at any point leaves nothing in flight and no timer running", () =>
      Effect.gen(function*() {
        for (const [name, call] of Object.entries(protectedCalls)) {
          for (let turns = 0; turns < 30; turns++) {
            const timeout = yield* Timeout.make({ name: "db", duration: "1 second" })
            const running = { count: 0 }
            yield* interruptedAfter(timeout.protect(runningIn(running, call)), turns)
            const label = `${name}, interrupted after ${turns} turns`
            assert.strictEqual(running.count, 0, `${label}: the attempt runs on`)
            assert.strictEqual((yield* timeout.snapshot).inFlight, 0, label)
            // The timer runs only while a deadline is pending: an idle policy holds no fiber.
            assert.isFalse(limiters.get(timeout)!.deadlines.active, `${label}: the timer runs on`)
          }
        }
      }).pipe(Effect.scoped))

    it.effect("a timeout aborts the AbortSignal of a promise-based call", () =>
      Effect.gen(function*() {
        const timeout = yield* Timeout.make({ name: "http", duration: "2 seconds" })
        let signalSeen: { readonly aborted: boolean } | undefined
        // A request that hangs until it is aborted, as `fetch` does against a stuck server.
        const request = Effect.tryPromise({
          try: (signal) => {
            signalSeen = signal
            return new Promise<string>((_resolve, reject) => {
              signal.addEventListener("abort", () => reject(new Error("aborted")))
            })
          },
          catch: (cause) => new Boom({ cause })
        })
        const fiber = yield* Effect.forkChild(Effect.flip(timeout.protect(request)))
        yield* TestClock.adjust("1999 millis")
        assert.isFalse(signalSeen!.aborted)
        yield* TestClock.adjust("1 millis")
        assert.isTrue(signalSeen!.aborted)
        assert.strictEqual((yield* Fiber.join(fiber))._tag, "TimeoutError")
      }))
  })

  describe("metrics and options", () => {
    it.effect("exports calls, timeouts and calls in flight, tagged with the policy", () =>
      Effect.gen(function*() {
        const timeout = yield* Timeout.make({ name: "db", duration: "1 second" })
        yield* timeout.protect(Effect.void)
        const slow = yield* Effect.forkChild(Effect.ignore(timeout.protect(Effect.never)))
        yield* Effect.forkChild(Effect.ignore(timeout.protect(takes(1500, 0))))
        yield* TestClock.adjust("1 millis")
        assert.strictEqual(yield* metricValue("timeout_calls_total"), 3)
        assert.strictEqual(yield* metricValue("timeout_in_flight"), 2)
        yield* TestClock.adjust("1 second")
        yield* Fiber.join(slow)
        assert.strictEqual(yield* metricValue("timeout_timeouts_total"), 2)
        assert.strictEqual(yield* metricValue("timeout_in_flight"), 0)
      }))

    it.effect("rejects invalid options, naming each one", () =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(Timeout.make({ name: "", duration: 0 }))
        assert.strictEqual(error._tag, "PolicyConfigError")
        assert.strictEqual(error.kind, "timeout")
        assert.deepStrictEqual(error.issues.map((issue) => issue.path), ["name", "duration"])
        assert.strictEqual(error.issues[1].message, "Expected a positive duration, got 0 millis")
        const unparsable = yield* Effect.flip(Timeout.make({ name: "db", duration: "soon" as Duration.Input }))
        assert.match(unparsable.issues[0].message, /^Expected a duration/)
      }))
  })

  describe("timeout combinator", () => {
    it.effect("works data-first and data-last, without a policy", () =>
      Effect.gen(function*() {
        const piped = yield* Effect.forkChild(timed(takes(100, "piped").pipe(Timeout.timeout("1 second", "report"))))
        const direct = yield* Effect.forkChild(timed(Timeout.timeout(Effect.never, "1 second", "report")))
        const quick = yield* Timeout.timeout(Effect.succeed("quick"), "1 second", "report")
        yield* TestClock.adjust("1 second")
        assert.strictEqual(quick, "quick")
        assert.deepStrictEqual(yield* Fiber.join(piped), { at: 100, exit: Exit.succeed("piped") })
        const { at, exit } = yield* Fiber.join(direct)
        assert.strictEqual(at, 1000)
        const error = failureOf(exit)
        assert.strictEqual(error.operation, "report")
        assert.strictEqual(Duration.toMillis(error.duration), 1000)
      }))

    it.effect("a zero or negative duration times out every call that suspends", () =>
      Effect.gen(function*() {
        assert.strictEqual(yield* Timeout.timeout(Effect.succeed("sync"), 0, "cache"), "sync")
        const zero = yield* Effect.flip(Timeout.timeout(takes(1, "async"), 0, "cache"))
        const negative = yield* Effect.flip(Timeout.timeout(takes(1, "async"), -5, "cache"))
        assert.deepStrictEqual([zero._tag, Duration.toMillis(zero.duration)], ["TimeoutError", 0])
        assert.deepStrictEqual([negative._tag, Duration.toMillis(negative.duration)], ["TimeoutError", 0])
      }))

    it.effect("an infinite duration never times out", () =>
      Effect.gen(function*() {
        const fiber = yield* Effect.forkChild(Timeout.timeout(takes(3_600_000, "done"), Duration.infinity, "batch"))
        yield* TestClock.adjust("1 hour")
        assert.strictEqual(yield* Fiber.join(fiber), "done")
      }))
  })
})
