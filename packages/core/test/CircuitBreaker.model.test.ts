/**
 * Model-based property tests for `CircuitBreaker`.
 *
 * Each run generates a random sequence of commands (calls that succeed, fail or take time, clock advances, manual
 * controls, and in the last property calls that overlap a slow one) and plays it against a real breaker and against
 * `Model`, a small reference written from the module docs, not from `internal/circuitBreaker.ts`. After every
 * command both must agree on what a caller can see: how each call ended (ran, or was rejected with which error,
 * `retryAfter` and `forced`), `state()`, the snapshot's figures, and the transitions published so far.
 *
 * The model is naive on purpose:
 * - a call is recorded when it completes, and a window is the list of outcomes recorded since the machine last moved,
 *   filtered when read: its last n entries, or those whose time bucket is one of the last `buckets` (bucket k covers
 *   `[k * bucket, (k + 1) * bucket)` of TestClock time, which starts at 0);
 * - every machine transition starts a new generation with a clean slate (streak, windows, probe slots); every manual
 *   control starts a new generation too, orphaning the calls in flight (outcomes dropped, probe slots freed), and
 *   reset and disable also put the machine back to a fresh Closed;
 * - manual modes sit on top of the machine: `ForcedOpen` freezes it, `Disabled` counts the totals but leaves the
 *   machine fresh and idle, `MetricsOnly` runs it as if live, publishing its transitions as shadow ones.
 *
 * Time is TestClock's only; slow calls are forked, then driven by `TestClock.adjust`.
 */
import { assert, describe, it } from "@effect/vitest"
import { Clock, Data, Duration, Effect, Fiber, Result, Schedule, Schema, Stream } from "effect"
import { TestClock } from "effect/testing"
import * as CircuitBreaker from "../src/CircuitBreaker.ts"

class Boom extends Data.TaggedError("Boom") {}

// -----------------------------------------------------------------------------
// commands
// -----------------------------------------------------------------------------

const Millis = (maximum: number) => Schema.Int.check(Schema.isBetween({ minimum: 0, maximum }))

/** Random milliseconds, with the boundaries that matter for a configuration mixed in. */
const MillisAround = (boundaries: ReadonlyArray<number>, maximum: number) =>
  Schema.Union([Schema.Literals(boundaries), Millis(maximum)])

const Succeed = Schema.TaggedStruct("Succeed", {})
const Fail = Schema.TaggedStruct("Fail", {})
const Control = Schema.TaggedStruct("Control", {
  action: Schema.Literals(["forceOpen", "disable", "metricsOnly", "reset"])
})
/** A call that sleeps `ms` before it succeeds or fails: forked, then driven by `TestClock.adjust`. */
const Slow = <S extends Schema.Schema<number>>(ms: S) => Schema.TaggedStruct("Slow", { ok: Schema.Boolean, ms })
/**
 * Moves the clock. Reads move an Open circuit whose time is up to HalfOpen themselves, so an advance is not always
 * followed by the usual read (`read: false`): then the next call is the one that finds the open time up.
 */
const Advance = <S extends Schema.Schema<number>>(ms: S) => Schema.TaggedStruct("Advance", { ms, read: Schema.Boolean })
/** A slow call of `at + rest` ms with `inner` run `at` ms after it started. */
const Overlap = Schema.TaggedStruct("Overlap", {
  ok: Schema.Boolean,
  at: MillisAround([3000], 3500),
  rest: Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 2000 })),
  inner: Schema.Union([Succeed, Fail, Control])
})

/** `n` copies of a union member: the generator draws members uniformly, so copies weigh the draw. */
const times = <S>(n: number, member: S): Array<S> => Array.from({ length: n }, () => member)

// Calls 70%, clock advances 20%, controls 10%: enough controls to visit every mode, few enough to let the machine
// get somewhere between them.
const Sequential = Schema.Union([
  ...times(3, Succeed),
  ...times(3, Fail),
  Slow(Millis(2500)),
  ...times(2, Advance(MillisAround([1, 999, 1000], 2500))),
  Control
])

// The same, plus overlapping calls (1 draw in 6), with boundaries around slowerThan (500ms) and maxProbeTime (3s).
const WithOverlaps = Schema.Union([
  ...times(3, Succeed),
  ...times(3, Fail),
  Slow(MillisAround([500, 501, 2999, 3000], 3500)),
  ...times(2, Advance(MillisAround([1, 1000, 2000], 12_000))),
  Control,
  ...times(2, Overlap)
])

type Command = typeof WithOverlaps.Type
type Action = typeof Control.Type["action"]

const Commands = <S extends Schema.Schema<Command>>(command: S) => Schema.Array(command).check(Schema.isMaxLength(40))

const show = (command: Command): string => {
  switch (command._tag) {
    case "Succeed":
    case "Fail":
      return command._tag
    case "Slow":
      return `Slow(${command.ok ? "ok" : "fail"}, ${command.ms}ms)`
    case "Advance":
      return `Advance(${command.ms}ms${command.read ? "" : ", unread"})`
    case "Control":
      return command.action
    case "Overlap":
      return `Overlap(${command.ok ? "ok" : "fail"}, ${command.at + command.rest}ms, at ${command.at}ms: ${
        show(command.inner)
      })`
  }
}

// -----------------------------------------------------------------------------
// model
// -----------------------------------------------------------------------------

type Mode = "Live" | "ForcedOpen" | "Disabled" | "MetricsOnly"
type Phase = "Closed" | "Open" | "HalfOpen"

type Window =
  | { readonly _tag: "Count"; readonly size: number }
  | { readonly _tag: "Time"; readonly bucketMillis: number; readonly buckets: number }

interface Rate {
  readonly threshold: number
  readonly minimumCalls: number
  readonly window: Window
}

/** What the model needs to know of a breaker's options, restated by hand. */
interface Spec {
  readonly consecutive: number
  readonly failureRate: Rate
  readonly slowCallRate?: Rate & { readonly slowerThan: number } | undefined
  readonly openMillis: number
  readonly maxProbes: number
  readonly successThreshold: number
  readonly maxProbeMillis: number
}

interface Recorded {
  readonly at: number
  readonly failed: boolean
  readonly slow: boolean
}

/** An admitted call: the generation it belongs to, when it started, and its probe slot in HalfOpen. */
interface Ticket {
  readonly generation: number
  readonly startedAt: number
  readonly probe: number | undefined
}

type Verdict =
  /** The call runs; without a ticket (MetricsOnly overriding a rejection) its outcome is not counted. */
  | { readonly _tag: "Run"; readonly ticket: Ticket | undefined }
  | { readonly _tag: "CircuitOpen"; readonly retryAfter: number; readonly forced: boolean }
  | { readonly _tag: "CircuitHalfOpen" }

/** Everything compared after each command. `null` machine figures: not asserted (see `Model.view`). */
interface View {
  readonly state: CircuitBreaker.State
  readonly circuit: Phase
  readonly generation: number
  readonly totalCalls: number
  readonly successCount: number
  readonly failureCount: number
  readonly slowCallCount: number
  readonly rejectedCount: number
  readonly stateChanges: number
  readonly enteredStateAt: number
  readonly retryAfterMillis: number | null
  readonly halfOpen: { readonly probesInFlight: number; readonly successes: number } | null
  readonly consecutiveFailures: number | null
  readonly failureRate: number | null
  readonly slowCallRate: number | null
}

const inWindow = (window: Window, recorded: ReadonlyArray<Recorded>, now: number): ReadonlyArray<Recorded> =>
  window._tag === "Count"
    ? recorded.slice(-window.size)
    : recorded.filter((r) =>
      Math.floor(r.at / window.bucketMillis) > Math.floor(now / window.bucketMillis) - window.buckets
    )

const rate = (hits: ReadonlyArray<boolean>): number =>
  hits.length === 0 ? 0 : hits.filter((hit) => hit).length / hits.length

const holds = (policy: Rate, hits: ReadonlyArray<boolean>): boolean =>
  hits.length >= policy.minimumCalls && rate(hits) >= policy.threshold

const modeOf: Record<Action, Mode> = {
  forceOpen: "ForcedOpen",
  disable: "Disabled",
  metricsOnly: "MetricsOnly",
  reset: "Live"
}

class Model {
  mode: Mode = "Live"
  phase: Phase = "Closed"
  generation = 0
  enteredAt = 0
  openUntil = 0
  streak = 0
  /** Outcomes recorded since the machine last moved (the windows are views of it). */
  recorded: Array<Recorded> = []
  probes: Array<{ readonly id: number; readonly startedAt: number }> = []
  probeSuccesses = 0
  nextProbe = 0
  calls = 0
  successes = 0
  failures = 0
  slowCalls = 0
  rejected = 0
  stateChanges = 0
  /** Every transition published, as `from->to at t`, shadow ones (MetricsOnly) marked. */
  transitions: Array<string> = []

  readonly spec: Spec

  constructor(spec: Spec) {
    this.spec = spec
  }

  get state(): CircuitBreaker.State {
    return this.mode === "Live" ? this.phase : this.mode
  }

  /** Open becomes HalfOpen at `openUntil`, seen by the next call or read; a forced-open or disabled breaker waits. */
  refresh(now: number): void {
    const running = this.mode === "Live" || this.mode === "MetricsOnly"
    if (running && this.phase === "Open" && now >= this.openUntil) this.move("HalfOpen", now)
  }

  admit(now: number): Verdict {
    const ticket = (probe: number | undefined): Verdict => ({
      _tag: "Run",
      ticket: { generation: this.generation, startedAt: now, probe }
    })
    if (this.mode === "Disabled") return ticket(undefined)
    if (this.mode === "ForcedOpen") {
      this.rejected++
      return { _tag: "CircuitOpen", retryAfter: Infinity, forced: true }
    }
    this.refresh(now)
    if (this.phase === "Closed") return ticket(undefined)
    let rejection: Verdict
    if (this.phase === "Open") {
      rejection = { _tag: "CircuitOpen", retryAfter: this.openUntil - now, forced: false }
    } else {
      // A probe running for maxProbeTime or longer gives its slot back.
      this.probes = this.probes.filter((probe) => now - probe.startedAt < this.spec.maxProbeMillis)
      if (this.probes.length < this.spec.maxProbes) {
        const id = this.nextProbe++
        this.probes.push({ id, startedAt: now })
        return ticket(id)
      }
      rejection = { _tag: "CircuitHalfOpen" }
    }
    this.rejected++
    return this.mode === "MetricsOnly" ? { _tag: "Run", ticket: undefined } : rejection
  }

  /** Records how an admitted call ended, `now` being when it completed. */
  settle(ticket: Ticket, failed: boolean, now: number): void {
    const duration = now - ticket.startedAt
    if (ticket.probe !== undefined) {
      const slot = this.probes.findIndex((probe) => probe.id === ticket.probe)
      // Its slot is gone: it ran past maxProbeTime and another probe took it, or a transition or control orphaned it.
      if (slot === -1) return
      // A finished probe gives its slot back, whatever happens to its outcome.
      this.probes.splice(slot, 1)
      // Ran past maxProbeTime: the late outcome is dropped.
      if (duration >= this.spec.maxProbeMillis) return
    }
    // Admitted before a transition or a manual control: dropped.
    if (ticket.generation !== this.generation) return
    const slow = this.spec.slowCallRate !== undefined && duration > this.spec.slowCallRate.slowerThan
    this.calls++
    if (failed) this.failures++
    else this.successes++
    if (slow) this.slowCalls++
    // Disabled counts the totals, but never trips.
    if (this.mode === "Disabled") return
    this.streak = failed ? this.streak + 1 : 0
    this.recorded.push({ at: now, failed, slow })
    if (this.phase === "HalfOpen") {
      if (failed) this.move("Open", now)
      else if (++this.probeSuccesses >= this.spec.successThreshold) this.move("Closed", now)
    } else if (this.phase === "Closed" && this.trips(now)) {
      this.move("Open", now)
    }
  }

  trips(now: number): boolean {
    const { consecutive, failureRate, slowCallRate } = this.spec
    return this.streak >= consecutive ||
      holds(failureRate, inWindow(failureRate.window, this.recorded, now).map((r) => r.failed)) ||
      (slowCallRate !== undefined &&
        holds(slowCallRate, inWindow(slowCallRate.window, this.recorded, now).map((r) => r.slow)))
  }

  /** A machine transition: a new generation, and a clean slate (streak, windows, probes). */
  move(to: Phase, now: number): void {
    this.transitions.push(`${this.phase}->${to} at ${now}${this.mode === "Live" ? "" : " (shadow)"}`)
    this.phase = to
    this.generation++
    this.stateChanges++
    if (this.mode === "Live") this.enteredAt = now
    if (to === "Open") this.openUntil = now + this.spec.openMillis
    this.streak = 0
    this.recorded = []
    this.probes = []
    this.probeSuccesses = 0
  }

  control(action: Action, now: number): void {
    const before = this.state
    // A new generation orphans the calls in flight: their outcomes will be dropped, so their probe slots go now.
    this.generation++
    this.probes = []
    // Reset and disable start the machine afresh (and the machine is still fresh when Disabled is left).
    if (action === "reset" || action === "disable") {
      this.phase = "Closed"
      this.streak = 0
      this.recorded = []
      this.probeSuccesses = 0
    }
    this.mode = modeOf[action]
    if (this.state !== before) {
      this.stateChanges++
      this.enteredAt = now
      this.transitions.push(`${before}->${this.state} at ${now}`)
    }
  }

  /**
   * What a read at `now` shows. While Disabled, the streak and the rates are not asserted: the docs say a disabled
   * breaker "still counts" but not whether that feeds the idle machine; what is asserted is that nothing of it is
   * left once the breaker is no longer disabled.
   */
  view(now: number): View {
    this.refresh(now)
    const { failureRate, slowCallRate } = this.spec
    const machine = this.mode !== "Disabled"
    return {
      state: this.state,
      circuit: this.phase,
      generation: this.generation,
      totalCalls: this.calls,
      successCount: this.successes,
      failureCount: this.failures,
      slowCallCount: this.slowCalls,
      rejectedCount: this.rejected,
      stateChanges: this.stateChanges,
      enteredStateAt: this.enteredAt,
      retryAfterMillis: this.phase === "Open" && this.mode !== "ForcedOpen" ? this.openUntil - now : null,
      halfOpen: this.phase === "HalfOpen"
        ? { probesInFlight: this.probes.length, successes: this.probeSuccesses }
        : null,
      consecutiveFailures: machine ? this.streak : null,
      failureRate: machine ? rate(inWindow(failureRate.window, this.recorded, now).map((r) => r.failed)) : null,
      slowCallRate: !machine
        ? null
        : slowCallRate === undefined
        ? 0
        : rate(inWindow(slowCallRate.window, this.recorded, now).map((r) => r.slow))
    }
  }
}

// -----------------------------------------------------------------------------
// harness
// -----------------------------------------------------------------------------

/** How a call ended, as the caller sees it. */
type Ended =
  | { readonly _tag: "Ran"; readonly ok: boolean }
  | { readonly _tag: "CircuitOpen"; readonly retryAfter: number; readonly forced: boolean }
  | { readonly _tag: "CircuitHalfOpen" }

const ended = (result: Result.Result<void, Boom | CircuitBreaker.Rejection>): Ended => {
  if (Result.isSuccess(result)) return { _tag: "Ran", ok: true }
  const error = result.failure
  switch (error._tag) {
    case "Boom":
      return { _tag: "Ran", ok: false }
    case "CircuitOpen":
      return { _tag: "CircuitOpen", retryAfter: Duration.toMillis(error.retryAfter), forced: error.forced }
    case "CircuitHalfOpen":
      return { _tag: "CircuitHalfOpen" }
  }
}

const expectedEnd = (verdict: Verdict, ok: boolean): Ended => verdict._tag === "Run" ? { _tag: "Ran", ok } : verdict

const work = (ok: boolean, ms: number): Effect.Effect<void, Boom> => {
  const outcome = ok ? Effect.void : Effect.fail(new Boom())
  return ms === 0 ? outcome : Effect.andThen(Effect.sleep(Duration.millis(ms)), outcome)
}

/** Plays `commands` against a fresh breaker made with `options` and a fresh model of `spec`. */
const play = (options: CircuitBreaker.Options, spec: Spec, commands: ReadonlyArray<Command>) =>
  Effect.gen(function*() {
    const breaker = yield* CircuitBreaker.make(options)
    const model = new Model(spec)
    let now = 0
    const published: Array<string> = []
    yield* breaker.transitions.pipe(
      Stream.runForEach((t) =>
        Effect.sync(() => published.push(`${t.from}->${t.to} at ${t.at}${t.shadow ? " (shadow)" : ""}`))
      ),
      Effect.forkScoped({ startImmediately: true })
    )
    const trace: Array<string> = []
    const where = (what: string) => `${what}\ncommands:\n${trace.map((line, i) => `  #${i} ${line}`).join("\n")}`

    const advance = (ms: number) =>
      Effect.gen(function*() {
        yield* TestClock.adjust(Duration.millis(ms))
        now += ms
      })

    const check = (label: string) =>
      Effect.gen(function*() {
        assert.strictEqual(yield* Clock.currentTimeMillis, now, where(`${label}: clock`))
        const state = yield* breaker.state()
        const s = yield* breaker.snapshot()
        const expected = model.view(now)
        const machine = expected.consecutiveFailures !== null
        const actual: View = {
          state,
          circuit: s.circuit,
          generation: s.generation,
          totalCalls: s.totalCalls,
          successCount: s.successCount,
          failureCount: s.failureCount,
          slowCallCount: s.slowCallCount,
          rejectedCount: s.rejectedCount,
          stateChanges: s.stateChanges,
          enteredStateAt: s.enteredStateAt,
          retryAfterMillis: s.retryAfterMillis,
          halfOpen: s.halfOpen === null
            ? null
            : { probesInFlight: s.halfOpen.probesInFlight, successes: s.halfOpen.successes },
          consecutiveFailures: machine ? s.consecutiveFailures : null,
          failureRate: machine ? s.failureRate : null,
          slowCallRate: machine ? s.slowCallRate : null
        }
        assert.strictEqual(s.state, state, where(`${label}: snapshot().state vs state()`))
        const differences = (Object.keys(expected) as Array<keyof View>)
          .filter((key) => JSON.stringify(actual[key]) !== JSON.stringify(expected[key]))
          .map((key) => `  ${key}: breaker ${JSON.stringify(actual[key])}, model ${JSON.stringify(expected[key])}`)
        // Let the subscriber take what the breaker published.
        yield* Effect.yieldNow
        const expectedTransitions = model.transitions
        let same = 0
        while (same < published.length && published[same] === expectedTransitions[same]) same++
        if (same < published.length || same < expectedTransitions.length) {
          differences.push(
            `  transitions from #${same}: breaker ${JSON.stringify(published.slice(same))}, model ${
              JSON.stringify(expectedTransitions.slice(same))
            }`
          )
        }
        if (differences.length > 0) {
          assert.fail(where(`${label}: breaker and model differ on\n${differences.join("\n")}`))
        }
      })

    /** A call that completes at once: admitted, run and recorded in one step. */
    const quickCall = (ok: boolean, label: string) =>
      Effect.gen(function*() {
        const verdict = model.admit(now)
        const result = yield* Effect.result(breaker.protect(work(ok, 0)))
        if (verdict._tag === "Run" && verdict.ticket !== undefined) model.settle(verdict.ticket, !ok, now)
        assert.deepStrictEqual(ended(result), expectedEnd(verdict, ok), where(`${label}: call`))
      })

    const control = (action: Action) =>
      Effect.gen(function*() {
        yield* breaker[action]()
        model.control(action, now)
      })

    /** A call of `ms` ms, with `during` run `at` ms after it started. */
    const slowCall = (ok: boolean, ms: number, at: number, during: Effect.Effect<void>, label: string) =>
      Effect.gen(function*() {
        const verdict = model.admit(now)
        const fiber = yield* Effect.forkChild(Effect.result(breaker.protect(work(ok, ms))), {
          startImmediately: true
        })
        yield* advance(at)
        yield* during
        yield* advance(ms - at)
        const result = yield* Fiber.join(fiber)
        if (verdict._tag === "Run" && verdict.ticket !== undefined) model.settle(verdict.ticket, !ok, now)
        assert.deepStrictEqual(ended(result), expectedEnd(verdict, ok), where(`${label}: slow call`))
      })

    for (let i = 0; i < commands.length; i++) {
      const command = commands[i]
      const label = `#${i} ${show(command)}`
      trace.push(show(command))
      switch (command._tag) {
        case "Succeed":
        case "Fail":
          yield* quickCall(command._tag === "Succeed", label)
          break
        case "Slow":
          yield* slowCall(command.ok, command.ms, 0, Effect.void, label)
          break
        case "Advance":
          yield* advance(command.ms)
          break
        case "Control":
          yield* control(command.action)
          break
        case "Overlap": {
          const inner = command.inner
          const during = Effect.gen(function*() {
            if (inner._tag === "Control") yield* control(inner.action)
            else yield* quickCall(inner._tag === "Succeed", `${label}, inner call`)
            yield* check(`${label}, mid-flight`)
          })
          yield* slowCall(command.ok, command.at + command.rest, command.at, during, label)
          break
        }
      }
      if (command._tag !== "Advance" || command.read) yield* check(label)
    }
  })

// -----------------------------------------------------------------------------
// properties
// -----------------------------------------------------------------------------

// `size` grows with the runs (from 0); past 40 it no longer limits the length, so most runs get up to 40 commands.
const runs = { timeout: 60_000, arbitrary: { runs: 1000, size: 100 } }

// consecutive(3) or 50% failures over the last 6 calls (at least 4), open 1s, 2 probe successes close.
const sequentialSpec: Spec = {
  consecutive: 3,
  failureRate: { threshold: 0.5, minimumCalls: 4, window: { _tag: "Count", size: 6 } },
  openMillis: 1000,
  maxProbes: 1,
  successThreshold: 2,
  maxProbeMillis: 60_000
}
const sequentialOptions = (openDuration: CircuitBreaker.Options["openDuration"]): CircuitBreaker.Options => ({
  name: "model",
  trip: [
    CircuitBreaker.consecutive(3),
    CircuitBreaker.failureRate({ threshold: 0.5, minimumCalls: 4, window: CircuitBreaker.lastCalls(6) })
  ],
  openDuration,
  halfOpen: { maxProbes: 1, successThreshold: 2 }
})

// 50% failures over a rolling 10s window (at least 3 calls), or 75% of the last 4 calls slower than 500ms (at
// least 2); open 2s; 2 probe successes close; probes expire after 3s.
const overlappingSpec: Spec = {
  consecutive: Infinity,
  failureRate: { threshold: 0.5, minimumCalls: 3, window: { _tag: "Time", bucketMillis: 1000, buckets: 10 } },
  slowCallRate: { threshold: 0.75, minimumCalls: 2, window: { _tag: "Count", size: 4 }, slowerThan: 500 },
  openMillis: 2000,
  maxProbes: 1,
  successThreshold: 2,
  maxProbeMillis: 3000
}
const overlappingOptions: CircuitBreaker.Options = {
  name: "model",
  trip: [
    CircuitBreaker.failureRate({
      threshold: 0.5,
      minimumCalls: 3,
      window: CircuitBreaker.rolling("10 seconds", { buckets: 10 })
    }),
    CircuitBreaker.slowCallRate({
      threshold: 0.75,
      slowerThan: "500 millis",
      minimumCalls: 2,
      window: CircuitBreaker.lastCalls(4)
    })
  ],
  openDuration: "2 seconds",
  halfOpen: { maxProbes: 1, successThreshold: 2, maxProbeTime: "3 seconds" }
}

describe("CircuitBreaker model", () => {
  it.effect.prop(
    "sequential calls and controls agree with the model (open duration: 1 second)",
    [Commands(Sequential)],
    ([commands]) => play(sequentialOptions("1 second"), sequentialSpec, commands),
    runs
  )

  // A schedule whose every delay is 1 second must behave exactly as the fixed duration.
  it.effect.prop(
    "sequential calls and controls agree with the model (open duration: Schedule.spaced 1 second)",
    [Commands(Sequential)],
    ([commands]) => play(sequentialOptions(Schedule.spaced("1 second")), sequentialSpec, commands),
    runs
  )

  it.effect.prop(
    "slow-call rate, rolling window, overlapping calls and mid-call controls agree with the model",
    [Commands(WithOverlaps)],
    ([commands]) => play(overlappingOptions, overlappingSpec, commands),
    runs
  )
})
