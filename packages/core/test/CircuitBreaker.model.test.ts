/**
 * Model-based property tests for `CircuitBreaker`.
 *
 * Each run draws a breaker configuration (probes, success threshold, gradual recovery, a fixed or growing open
 * duration) and a sequence of 10 to 60 commands: calls that end every way a call can (success, failure, an error or
 * a defect the predicates ignore, a counted defect, interruption, a success value `isFailureResult` calls a failure),
 * calls left in flight and finished later in any order, clock advances, manual controls on one key or all, exports and restores. It plays them against a real
 * breaker and against `Model` (CircuitBreakerModel.ts), a small reference written from the module docs. After every
 * command both must agree on what a caller can see: how each call ended (ran, or was rejected with which error and
 * `retryAfter`), every key's state and snapshot figures, which keys are held, what `export` returns, and the
 * transitions published so far.
 *
 * Eviction is checked against its rules rather than a replica of the sweep: a key may leave once idle for
 * idleTimeToLive (unless its open time is still running, it has probes in flight, or it is under a manual control of
 * its own), and a key created at maxKeys pushes out the least recent Closed key, else the least recent Open or
 * HalfOpen one, never a probing or manually controlled one.
 *
 * Time is TestClock's only. Calls in flight wait on a gate that the harness opens, so the order in which they end is
 * the generated one. `MODEL_RUNS=10000` runs more sequences per property (default 1000).
 */
import { assert, describe, it } from "@effect/vitest"
import { Cause, Clock, Data, Deferred, Duration, Effect, Exit, Fiber, Schedule, Schema, Stream } from "effect"
import { TestClock } from "effect/testing"
import * as CircuitBreaker from "../src/CircuitBreaker.ts"
import {
  type Action,
  type Circuit,
  defaultKey,
  Model,
  type Outcome,
  type Persisted,
  type Reach,
  type Spec,
  type Ticket,
  type Verdict,
  type View
} from "./CircuitBreakerModel.ts"

class Boom extends Data.TaggedError("Boom") {}
/** An error `isFailure` rejects: the call fails with it, and the breaker counts it as neither. */
class Ignorable extends Data.TaggedError("Ignorable") {}
class Crash extends Error {}
/** A defect `isDefectFailure` rejects. */
class Benign extends Error {}

// -----------------------------------------------------------------------------
// the breaker's API, in one place
// -----------------------------------------------------------------------------

/** How a call ended, as the caller sees it. */
type Ended =
  | { readonly _tag: "Ran"; readonly outcome: Outcome }
  | { readonly _tag: "CircuitOpen"; readonly retryAfter: number }
  | { readonly _tag: "CircuitForcedOpen" }
  | { readonly _tag: "CircuitHalfOpen" }

/** The `retryAfter` a rejection's error reads: the open time left, infinite when forced, zero when half-open. */
const retryAfterOf = (end: Ended): number =>
  end._tag === "CircuitOpen" ? end.retryAfter : end._tag === "CircuitForcedOpen" ? Infinity : 0

const ended = (exit: Exit.Exit<number, Boom | Ignorable | CircuitBreaker.Rejection>, key: string): Ended => {
  // The caller gets the value `isFailureResult` called a failure all the same.
  if (Exit.isSuccess(exit)) return { _tag: "Ran", outcome: exit.value === 503 ? "failedResult" : "ok" }
  for (const reason of exit.cause.reasons) {
    if (Cause.isDieReason(reason)) {
      return { _tag: "Ran", outcome: reason.defect instanceof Benign ? "ignoredDefect" : "defect" }
    }
    if (!Cause.isFailReason(reason)) continue
    const error = reason.error
    switch (error._tag) {
      case "Boom":
        return { _tag: "Ran", outcome: "fail" }
      case "Ignorable":
        return { _tag: "Ran", outcome: "ignored" }
      case "CircuitBreakerError": {
        const why = error.reason
        const end: Ended = why._tag === "CircuitOpen"
          ? { _tag: "CircuitOpen", retryAfter: Duration.toMillis(why.retryAfter) }
          : { _tag: why._tag }
        // The getters read through to the reason.
        assert.deepStrictEqual(
          { breaker: error.breaker, key: error.key, retryAfter: Duration.toMillis(error.retryAfter) },
          { breaker: "model", key, retryAfter: retryAfterOf(end) },
          `${why._tag}: the error's getters`
        )
        return end
      }
    }
  }
  return { _tag: "Ran", outcome: "interrupt" }
}

const protect = (breaker: CircuitBreaker.CircuitBreaker, key: string, work: Effect.Effect<number, Boom | Ignorable>) =>
  key === defaultKey ? breaker.protect(work) : breaker.protectKey(work, key)

const readState = (breaker: CircuitBreaker.CircuitBreaker, key: string) =>
  key === defaultKey ? breaker.state : breaker.stateKey(key)

const readSnapshot = (breaker: CircuitBreaker.CircuitBreaker, key: string) =>
  key === defaultKey ? breaker.snapshot : breaker.snapshotKey(key)

const control = (breaker: CircuitBreaker.CircuitBreaker, action: Action, key: string | undefined) =>
  breaker[action](key)

const viewOf = (s: CircuitBreaker.Snapshot, state: CircuitBreaker.State, machine: boolean): View => ({
  state,
  circuit: s.circuit,
  generation: s.generation,
  totalCalls: s.totalCalls,
  successCount: s.successCount,
  failureCount: s.failureCount,
  ignoredCount: s.ignoredCount,
  slowCallCount: s.slowCallCount,
  rejectedCount: s.rejectedCount,
  stateChanges: s.stateChanges,
  enteredStateAt: s.enteredStateAt,
  timeInStateMillis: s.timeInStateMillis,
  openedAt: s.openedAt,
  retryAfterMillis: s.retryAfterMillis,
  lastFailureAt: s.lastFailureAt,
  lastCallAt: s.lastCallAt,
  halfOpen: s.halfOpen === null
    ? null
    : {
      probesInFlight: s.halfOpen.probesInFlight,
      successes: s.halfOpen.successes,
      successThreshold: s.halfOpen.successThreshold
    },
  consecutiveFailures: machine ? s.consecutiveFailures : null,
  window: machine ? s.window : null,
  failureRate: machine ? s.failureRate : null,
  slowCallRate: machine ? s.slowCallRate : null
})

// -----------------------------------------------------------------------------
// commands
// -----------------------------------------------------------------------------

/** `n` copies of a union member: the generator draws members uniformly, so copies weigh the draw. */
const times = <S>(n: number, member: S): Array<S> => Array.from({ length: n }, () => member)

const Ms = (minimum: number, maximum: number) => Schema.Int.check(Schema.isBetween({ minimum, maximum }))

/** Random milliseconds, with the boundaries that matter for a configuration mixed in. */
const MillisAround = (boundaries: ReadonlyArray<number>, maximum: number) =>
  Schema.Union([Schema.Literals(boundaries), Ms(1, maximum)])

// Successes and failures most of the time; every other ending often enough to meet each state.
const OutcomeSchema = Schema.Union([
  ...times(4, Schema.Literal("ok")),
  ...times(4, Schema.Literal("fail")),
  Schema.Literals(["ignored", "defect", "ignoredDefect", "interrupt", "failedResult"])
])

const ActionSchema = Schema.Literals(["forceOpen", "disable", "metricsOnly", "reset"])

const commandSchema = (keys: ReadonlyArray<string>, advances: ReadonlyArray<number>, maxAdvance: number) => {
  const Key = Schema.Literals(keys)
  /** A call that ends at once. */
  const Call = Schema.TaggedStruct("Call", { key: Key, outcome: OutcomeSchema })
  /** A call left in flight until a `Finish` picks it (or the sequence ends). */
  const Start = Schema.TaggedStruct("Start", { key: Key, outcome: OutcomeSchema })
  /** Ends the call in flight at `pick` (modulo how many there are) the way it was started to. */
  const Finish = Schema.TaggedStruct("Finish", { pick: Ms(0, 7) })
  /**
   * Moves the clock. Reads move an Open circuit whose time is up to HalfOpen themselves, so an advance is not always
   * followed by the usual read (`read: false`): then the next call is the one that finds the open time up.
   */
  const Advance = Schema.TaggedStruct("Advance", { ms: MillisAround(advances, maxAdvance), read: Schema.Boolean })
  const Control = Schema.TaggedStruct("Control", {
    key: Schema.Union([Key, Schema.Literal("all")]),
    action: ActionSchema
  })
  const Export = Schema.TaggedStruct("Export", { key: Key })
  /**
   * Restores an earlier export (the `pick`-th, modulo how many) or a made-up Open (for `ms`) or HalfOpen state, then
   * makes a call at once: the first call after a restore is the one that finds out what was restored.
   */
  const Restore = Schema.TaggedStruct("Restore", {
    key: Key,
    source: Schema.Literals(["export", "Open", "HalfOpen"]),
    pick: Ms(0, 7),
    ms: MillisAround([1, 1000], 3000),
    after: OutcomeSchema
  })
  return Schema.Union([
    ...times(6, Call),
    ...times(3, Start),
    ...times(3, Finish),
    ...times(3, Advance),
    ...times(2, Control),
    Export,
    Restore
  ])
}

type Command = ReturnType<typeof commandSchema>["Type"]

const sequence = (command: Schema.Schema<Command>) =>
  Schema.Array(command).check(Schema.isMinLength(10), Schema.isMaxLength(60))

const on = (key: string) => key === defaultKey ? "" : ` on ${key}`

const show = (command: Command): string => {
  switch (command._tag) {
    case "Call":
    case "Start":
      return `${command._tag}(${command.outcome})${on(command.key)}`
    case "Finish":
      return `Finish(#${command.pick})`
    case "Advance":
      return `Advance(${command.ms}ms${command.read ? "" : ", unread"})`
    case "Control":
      return `${command.action}${command.key === "all" ? "()" : on(command.key)}`
    case "Export":
      return `Export${on(command.key)}`
    case "Restore":
      return `Restore(${command.source === "export" ? `export #${command.pick}` : command.source}${
        command.source === "Open" ? ` for ${command.ms}ms` : ""
      })${on(command.key)}, then Call(${command.after})`
  }
}

// -----------------------------------------------------------------------------
// configurations
// -----------------------------------------------------------------------------

/** What each run draws besides its commands. */
const Config = Schema.Struct({
  maxProbes: Ms(1, 3),
  successThreshold: Ms(1, 3),
  // Off half the time. 0.1 is not exact in binary: ten shares of it must still reach a credit of 1.
  recoveryFactor: Schema.Union([
    Schema.Literal(0),
    Schema.Literal(0),
    Schema.Literal(0),
    Schema.Literal(0.1),
    Schema.Literal(0.25),
    Schema.Literal(0.5)
  ]),
  growing: Schema.Boolean,
  maxProbeMillis: Schema.Literals([1000, 3000])
})
type Config = typeof Config.Type

// A growing open duration: 500ms, 1s, then 2s for every later opening (the schedule's last delay repeats).
const growingMillis = [500, 1000, 2000]
const growing = Schedule.exponential("500 millis").pipe(Schedule.upTo({ times: 3 }))

interface Setup {
  readonly options: CircuitBreaker.Options
  readonly spec: Spec
}

const setup = (
  config: Config,
  base: { readonly openMillis: number; readonly trip: ReadonlyArray<CircuitBreaker.TripPolicy> },
  spec: Pick<Spec, "consecutive" | "rates">,
  keys?: { readonly idleMillis: number; readonly maxKeys: number }
): Setup => ({
  options: {
    name: "model",
    trip: base.trip,
    openDuration: config.growing ? growing : Duration.millis(base.openMillis),
    halfOpen: {
      maxProbes: config.maxProbes,
      successThreshold: config.successThreshold,
      maxProbeTime: Duration.millis(config.maxProbeMillis),
      ...(config.recoveryFactor > 0 ? { recoveryFactor: config.recoveryFactor } : {})
    },
    isFailure: (error) => !(error instanceof Ignorable),
    isDefectFailure: (defect) => !(defect instanceof Benign),
    isFailureResult: (status) => status === 503,
    ...(keys === undefined ? {} : {
      keys: { idleTimeToLive: Duration.millis(keys.idleMillis), maxKeys: keys.maxKeys }
    })
  },
  spec: {
    ...spec,
    openMillis: config.growing ? growingMillis : [base.openMillis],
    maxProbes: config.maxProbes,
    successThreshold: config.successThreshold,
    maxProbeMillis: config.maxProbeMillis,
    recoveryFactor: config.recoveryFactor,
    idleMillis: keys?.idleMillis ?? 3_600_000,
    maxKeys: keys?.maxKeys ?? 10_000
  }
})

// consecutive(3), or 50% failures over the last 6 calls (at least 4); open 1s.
const oneCircuit = (config: Config) =>
  setup(config, {
    openMillis: 1000,
    trip: [
      CircuitBreaker.consecutive(3),
      CircuitBreaker.failureRate({ threshold: 0.5, minimumCalls: 4, window: CircuitBreaker.lastCalls(6) })
    ]
  }, {
    consecutive: 3,
    rates: [{
      _tag: "FailureRate",
      threshold: 0.5,
      minimumCalls: 4,
      window: { _tag: "Count", size: 6 },
      slowerThan: Infinity
    }]
  })

// 75% failures over a rolling 10s window (at least 4 calls), or half the last 4 calls slower than 500ms (at least 2);
// open 2s. The failure rate is high enough to leave the slow-call rate room to trip first.
const windows = (config: Config) =>
  setup(config, {
    openMillis: 2000,
    trip: [
      CircuitBreaker.failureRate({
        threshold: 0.75,
        minimumCalls: 4,
        window: CircuitBreaker.rolling("10 seconds", { buckets: 10 })
      }),
      CircuitBreaker.slowCallRate({
        threshold: 0.5,
        slowerThan: "500 millis",
        minimumCalls: 2,
        window: CircuitBreaker.lastCalls(4)
      })
    ]
  }, {
    consecutive: Infinity,
    rates: [
      {
        _tag: "FailureRate",
        threshold: 0.75,
        minimumCalls: 4,
        window: { _tag: "Time", bucketMillis: 1000, buckets: 10 },
        slowerThan: Infinity
      },
      {
        _tag: "SlowCallRate",
        threshold: 0.5,
        minimumCalls: 2,
        window: { _tag: "Count", size: 4 },
        slowerThan: 500
      }
    ]
  })

// Three keys besides the default circuit, at most two held; idle keys go after 5s. consecutive(2), open 2s.
const keyed = (config: Config) =>
  setup(
    config,
    { openMillis: 2000, trip: [CircuitBreaker.consecutive(2)] },
    { consecutive: 2, rates: [] },
    { idleMillis: 5000, maxKeys: 2 }
  )

// -----------------------------------------------------------------------------
// harness
// -----------------------------------------------------------------------------

/** The call's work: a status code when it succeeds. */
const outcomeEffect = (outcome: Outcome): Effect.Effect<number, Boom | Ignorable> => {
  switch (outcome) {
    case "ok":
      return Effect.succeed(200)
    case "failedResult":
      return Effect.succeed(503)
    case "fail":
      return Effect.fail(new Boom())
    case "ignored":
      return Effect.fail(new Ignorable())
    case "defect":
      return Effect.die(new Crash("crash"))
    case "ignoredDefect":
      return Effect.die(new Benign("benign"))
    case "interrupt":
      return Effect.interrupt
  }
}

const expectedEnd = (verdict: Verdict, outcome: Outcome): Ended =>
  verdict._tag === "Run" ? { _tag: "Ran", outcome } : verdict

interface InFlight {
  readonly fiber: Fiber.Fiber<number, Boom | Ignorable | CircuitBreaker.Rejection>
  readonly gate: Deferred.Deferred<void>
  readonly key: string
  readonly outcome: Outcome
  readonly ticket: Ticket | undefined
  readonly label: string
}

/** Per property, how many times each situation was reached (see `Reach`), runs included. */
const reached = new Map<string, Map<string, number>>()

const tally = (property: string): Reach => {
  const counts = reached.get(property) ?? new Map<string, number>()
  reached.set(property, counts)
  return (situation) => counts.set(situation, (counts.get(situation) ?? 0) + 1)
}

/** Plays `commands` against a fresh breaker and a fresh model, keys drawn from `keys`. */
const play = (
  property: string,
  keys: ReadonlyArray<string>,
  { options, spec }: Setup,
  commands: ReadonlyArray<Command>
) =>
  Effect.gen(function*() {
    const reach = tally(property)
    reach("runs")
    const breaker = yield* CircuitBreaker.make(options)
    let now = 0
    const model = new Model(spec, now, reach)
    const published: Array<string> = []
    yield* breaker.transitions.pipe(
      Stream.runForEach((t) =>
        Effect.sync(() =>
          published.push(
            `${t.key}: ${t.from}->${t.to} (${
              t.reason._tag === "Manual" ? `Manual ${t.reason.action}` : t.reason._tag
            }) at ${t.at}, generation ${t.generation}${t.shadow ? " shadow" : ""}`
          )
        )
      ),
      Effect.forkScoped({ startImmediately: true })
    )
    const trace: Array<string> = []
    const where = (what: string) => `${what}\ncommands:\n${trace.map((line, i) => `  #${i} ${line}`).join("\n")}`
    const inFlight: Array<InFlight> = []
    const exports: Array<Persisted> = []

    /** Checks the keys the breaker holds against the eviction rules, and drops from the model the ones it let go. */
    const checkKeys = (held: ReadonlyArray<string>, label: string) => {
      const modelKeys = [...model.keys.keys()]
      const gone = modelKeys.filter((key) => !held.includes(key))
      const unexpected = held.filter((key) => !model.keys.has(key))
      if (unexpected.length > 0) {
        assert.fail(where(`${label}: the breaker holds ${JSON.stringify(unexpected)}, which the model never made`))
      }
      const created = model.created
      // Idle keys go as new keys arrive, so only a command that created a key may have let any go.
      const idle = new Set(created?.before.filter((circuit) => model.mayIdleEvict(circuit, now)))
      // Gone must be what an idle sweep may drop, plus the victim at the cap when this command created a key.
      const explains = (swept: ReadonlySet<Circuit>): boolean => {
        const expected = new Set([...swept].map((circuit) => circuit.key))
        if (created !== undefined) {
          const left = created.before.filter((circuit) => !swept.has(circuit))
          const victim = left.length >= spec.maxKeys ? model.capVictim(left, now) : undefined
          if (victim !== undefined) expected.add(victim.key)
        }
        return expected.size === gone.length && gone.every((key) => expected.has(key))
      }
      if (created !== undefined && created.before.length >= spec.maxKeys) {
        const kept = created.before.filter((circuit) => circuit.probing(now) || model.manual(circuit))
        if (kept.some((circuit) => circuit.probing(now))) reach("a key created at the cap beside a probing key")
        if (kept.some((circuit) => model.manual(circuit))) reach("a key created at the cap beside a manual key")
        if (created.before.every((circuit) => circuit.phase !== "Closed")) {
          reach("a key created at the cap with no Closed key held")
        }
      }
      const sweptAtMost = new Set([...idle].filter((circuit) => gone.includes(circuit.key)))
      const explained = explains(sweptAtMost) ||
        [...sweptAtMost].some((circuit) => explains(new Set([...sweptAtMost].filter((c) => c !== circuit))))
      if (!explained) {
        const describeKey = (circuit: Circuit) =>
          `${circuit.key} (${circuit.state}/${circuit.phase}, last call ${circuit.lastCallAt}${
            circuit.probing(now) ? ", probing" : ""
          }${model.manual(circuit) ? ", manual" : ""})`
        const victim = created === undefined || created.before.length < spec.maxKeys
          ? undefined
          : model.capVictim(created.before, now)
        assert.fail(where(
          `${label}: eviction broke its rules: held ${JSON.stringify(held)}; model had ${
            [...model.keys.values()].map(describeKey).join(", ")
          }${
            created === undefined ? "" : `, then created ${created.key}`
          } (maxKeys ${spec.maxKeys}, idle after ${spec.idleMillis}ms); may go: ${
            JSON.stringify([...idle].map((circuit) => circuit.key))
          } (idle)${victim === undefined ? "" : `, ${victim.key} (the cap's choice, unless the idle ones went)`}`
        ))
      }
      for (const key of gone) {
        reach(idle.has(model.keys.get(key)!) ? "an idle key evicted" : "a key evicted at the cap")
        model.drop(key)
      }
      model.created = undefined
    }

    const check = (label: string) =>
      Effect.gen(function*() {
        assert.strictEqual(yield* Clock.currentTimeMillis, now, where(`${label}: clock`))
        const snapshots = yield* breaker.snapshots
        checkKeys(snapshots.slice(1).map((s) => s.key), label)
        // `snapshots` refreshed the default circuit, then every key in recency order: so does the model.
        model.read(defaultKey, now)
        for (const key of model.keys.keys()) model.read(key, now)
        const differences: Array<string> = []
        for (const key of keys) {
          const state = yield* readState(breaker, key)
          const s = yield* readSnapshot(breaker, key)
          if (s.state !== state) differences.push(`  ${key}: snapshot state ${s.state}, state ${state}`)
          const listed = snapshots.find((snapshot) => snapshot.key === key)
          if (listed !== undefined && JSON.stringify(listed) !== JSON.stringify(s)) {
            differences.push(
              `  ${key}: snapshots lists ${JSON.stringify(listed)}, its snapshot is ${JSON.stringify(s)}`
            )
          }
          const expected = model.read(key, now).view(now)
          const actual = viewOf(s, state, expected.consecutiveFailures !== null)
          for (const field of Object.keys(expected) as Array<keyof View>) {
            if (JSON.stringify(actual[field]) !== JSON.stringify(expected[field])) {
              differences.push(
                `  ${key}.${field}: breaker ${JSON.stringify(actual[field])}, model ${JSON.stringify(expected[field])}`
              )
            }
          }
        }
        // Let the subscriber take what the breaker published.
        yield* Effect.yieldNow
        // Key by key: one breaker-wide control moves every key in one step, in an order nothing promises.
        for (const key of new Set([...keys, ...model.keys.keys()])) {
          const ofKey = (lines: ReadonlyArray<string>) => lines.filter((line) => line.startsWith(`${key}: `))
          const actual = ofKey(published)
          const expected = ofKey(model.transitions)
          let same = 0
          while (same < actual.length && actual[same] === expected[same]) same++
          if (same < actual.length || same < expected.length) {
            differences.push(
              `  ${key}'s transitions from #${same}: breaker ${JSON.stringify(actual.slice(same))}, model ${
                JSON.stringify(expected.slice(same))
              }`
            )
          }
        }
        if (differences.length > 0) {
          assert.fail(where(`${label}: breaker and model differ on\n${differences.join("\n")}`))
        }
      })

    /** Starts a call; one that runs waits on its gate, and is returned to be finished later. */
    const start = (key: string, outcome: Outcome, gated: boolean, label: string) =>
      Effect.gen(function*() {
        const verdict = model.use(key, now).admit(now, model.publish)
        const gate = yield* Deferred.make<void>()
        const work = gated ? Effect.andThen(Deferred.await(gate), outcomeEffect(outcome)) : outcomeEffect(outcome)
        const fiber = yield* Effect.forkChild(protect(breaker, key, work), { startImmediately: true })
        if (gated && verdict._tag === "Run") {
          const early = fiber.pollUnsafe()
          if (early !== undefined) {
            assert.deepStrictEqual(ended(early, key), expectedEnd(verdict, outcome), where(`${label}: call`))
          }
          return { fiber, gate, key, outcome, ticket: verdict.ticket, label }
        }
        const exit = yield* Fiber.await(fiber)
        if (verdict._tag === "Run" && verdict.ticket !== undefined) {
          verdict.ticket.circuit.settle(verdict.ticket, outcome, now, model.publish)
        }
        assert.deepStrictEqual(ended(exit, key), expectedEnd(verdict, outcome), where(`${label}: call`))
        return undefined
      })

    const finish = (call: InFlight) =>
      Effect.gen(function*() {
        if (call.outcome === "interrupt") yield* Fiber.interrupt(call.fiber)
        else yield* Deferred.succeed(call.gate, undefined)
        const exit = yield* Fiber.await(call.fiber)
        if (call.ticket !== undefined) call.ticket.circuit.settle(call.ticket, call.outcome, now, model.publish)
        assert.deepStrictEqual(
          ended(exit, call.key),
          { _tag: "Ran", outcome: call.outcome },
          where(`${call.label}, finished at ${now}: call`)
        )
      })

    for (let i = 0; i < commands.length; i++) {
      const command = commands[i]
      const label = `#${i} ${show(command)}`
      trace.push(show(command))
      switch (command._tag) {
        case "Call":
          yield* start(command.key, command.outcome, false, label)
          break
        case "Start": {
          const call = yield* start(command.key, command.outcome, true, label)
          if (call !== undefined) inFlight.push(call)
          if (inFlight.length >= 3) reach("three calls in flight")
          break
        }
        case "Finish": {
          if (inFlight.length === 0) break
          const [call] = inFlight.splice(command.pick % inFlight.length, 1)
          yield* finish(call)
          break
        }
        case "Advance":
          yield* TestClock.adjust(Duration.millis(command.ms))
          now += command.ms
          break
        case "Control": {
          const key = command.key === "all" ? undefined : command.key
          yield* control(breaker, command.action, key)
          model.control(command.action, key, now)
          break
        }
        case "Export": {
          const saved = yield* breaker.export(command.key)
          assert.deepStrictEqual(saved, model.read(command.key, now).persisted(), where(`${label}: export`))
          exports.push(saved)
          break
        }
        case "Restore": {
          const state: Persisted = command.source === "export" && exports.length > 0
            ? exports[command.pick % exports.length]
            : {
              mode: "Live",
              phase: command.source === "Open" ? "Open" : "HalfOpen",
              openedAt: now,
              openUntil: command.source === "Open" ? now + command.ms : now,
              openings: 1,
              lastOpenMillis: command.source === "Open" ? command.ms : 0,
              closedAt: 0
            }
          yield* breaker.restore(state, command.key)
          model.restore(state, command.key, now)
          yield* check(`${label}, restored`)
          if (state.phase === "HalfOpen") reach("a call right after restoring into HalfOpen")
          yield* start(command.key, command.after, false, `${label}, call after restore`)
          break
        }
      }
      if (command._tag !== "Advance" || command.read) yield* check(label)
    }
    // The calls still in flight end, in the order they started.
    for (const call of inFlight) {
      trace.push(`Finish(${call.label})`)
      yield* finish(call)
      yield* check(`drain: ${call.label}`)
    }
  })

// -----------------------------------------------------------------------------
// properties
// -----------------------------------------------------------------------------

const runCount = Number(process.env["MODEL_RUNS"] ?? 1000)
// `size` grows with the runs (from 0); past 60 it no longer limits the length.
const runs = { timeout: Math.max(60_000, runCount * 60), arbitrary: { runs: runCount, size: 100 } }

const oneKey = ["default"]
const keys = ["default", "a", "b", "c"]

const properties = {
  oneCircuit: "one circuit: every call ending, probes, gradual recovery, growing open durations, export and restore",
  windows: "rolling and slow-call windows with calls in flight finishing in any order",
  keys: "keys: per-key and breaker-wide controls, idle eviction and the cap"
} as const

/** What each property is there to reach, at least once in 1000 runs (each is reached dozens of times). */
const mustReach: Record<keyof typeof properties, ReadonlyArray<string>> = {
  oneCircuit: [
    "a call right after restoring into HalfOpen",
    "a success value counted as a failure",
    "a probe admitted beside another",
    "a probe interrupted",
    "a probe past maxProbeTime gave its slot to a call",
    "an outcome ignored: ignored",
    "an outcome ignored: ignoredDefect",
    "an outcome ignored: interrupt",
    "an outcome of an earlier generation dropped",
    "closed after several probe successes",
    "gradual recovery: a call admitted after a success",
    "gradual recovery: a call rejected",
    "MetricsOnly ran a call the live breaker would have rejected",
    "the opening count restarted",
    "three calls in flight",
    "tripped: ConsecutiveFailures",
    "tripped: FailureRate"
  ],
  windows: [
    "a probe admitted beside another",
    "three calls in flight",
    "tripped: FailureRate",
    "tripped: SlowCallRate"
  ],
  keys: [
    "a key created at the cap beside a manual key",
    "a key created at the cap beside a probing key",
    "a key created at the cap with no Closed key held",
    "a key evicted at the cap",
    "an idle key evicted"
  ]
}

describe("CircuitBreaker model", () => {
  it.effect.prop(
    properties.oneCircuit,
    [Config, sequence(commandSchema(oneKey, [1, 499, 500, 999, 1000, 2000, 2999, 3000], 3500))],
    ([config, commands]) => play(properties.oneCircuit, oneKey, oneCircuit(config), commands),
    runs
  )

  it.effect.prop(
    properties.windows,
    [Config, sequence(commandSchema(oneKey, [1, 500, 501, 1000, 2000, 3000], 12_000))],
    ([config, commands]) => play(properties.windows, oneKey, windows(config), commands),
    runs
  )

  it.effect.prop(
    properties.keys,
    [Config, sequence(commandSchema(keys, [1, 1000, 2000, 3000, 5000], 6000))],
    ([config, commands]) => play(properties.keys, keys, keyed(config), commands),
    runs
  )

  // The keyed property found these in an intermediate version of the eviction rules (a key whose gradual-recovery
  // call was in flight counted as not probing; an idle sweep moved the keys it kept to the back, out of recency
  // order). Shrunk, and kept as deterministic replays through the same harness.
  describe("cases the properties found", () => {
    const config: Config = {
      maxProbes: 1,
      successThreshold: 1,
      recoveryFactor: 0,
      growing: false,
      maxProbeMillis: 3000
    }

    it.effect("gradual recovery: a HalfOpen key with an admitted call in flight is kept at the cap", () =>
      play("cases", keys, keyed({ ...config, recoveryFactor: 0.5 }), [
        { _tag: "Call", key: "b", outcome: "fail" },
        { _tag: "Call", key: "b", outcome: "fail" },
        { _tag: "Advance", ms: 2000, read: true },
        // b is HalfOpen: gradual recovery admits this call, which decides whether b closes.
        { _tag: "Start", key: "b", outcome: "ok" },
        { _tag: "Call", key: "a", outcome: "fail" },
        { _tag: "Call", key: "a", outcome: "fail" },
        // At the cap, no Closed key: the least recent Open or HalfOpen key that is not probing goes, a.
        { _tag: "Call", key: "c", outcome: "ok" },
        { _tag: "Finish", pick: 0 }
      ]))

    it.effect("at the cap, the least recently used Open key goes, though an idle sweep looked at it first", () =>
      play("cases", keys, keyed(config), [
        { _tag: "Start", key: "b", outcome: "fail" },
        { _tag: "Call", key: "b", outcome: "fail" },
        { _tag: "Advance", ms: 4000, read: true },
        // b trips at 4s, open until 6s; its last call was at 0.
        { _tag: "Finish", pick: 0 },
        { _tag: "Call", key: "c", outcome: "fail" },
        { _tag: "Call", key: "c", outcome: "fail" },
        // At 5s b has been idle for idleTimeToLive, but its open time is still running: kept by the idle sweep. At
        // the cap, with no Closed key, the least recently used Open key goes: b, not c.
        { _tag: "Advance", ms: 1000, read: true },
        { _tag: "Call", key: "a", outcome: "ok" }
      ]))
  })

  it("every property reaches what it is there to test", () => {
    for (const [property, situations] of Object.entries(mustReach)) {
      const counts = reached.get(properties[property as keyof typeof properties])
      // Run on its own (vitest -t) or with fewer runs, a property proves nothing here.
      if (counts === undefined || (counts.get("runs") ?? 0) < 1000) continue
      const missed = situations.filter((situation) => (counts.get(situation) ?? 0) === 0)
      assert.deepStrictEqual(missed, [], `${property} never reached these in ${counts.get("runs")} runs`)
    }
  })
})
