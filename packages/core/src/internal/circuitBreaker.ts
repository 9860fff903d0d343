/**
 * The breaker's state machine: admission and recording as synchronous steps over one mutable cell per key.
 *
 * Why mutable: the closed path must not allocate, and Effect fibers never interleave inside a synchronous step,
 * so a cell changed in one step is as atomic as a `Ref.modify`, at a fraction of the cost (see docs/benchmarks.md).
 * Nothing here runs an effect: `now` comes in from `Clock` (only `stateNow` looks the clock up itself, in the fiber it
 * is given, and only for an Open cell), transitions go out through `Emit`.
 *
 * @internal
 */
import * as Clock from "effect/Clock"
import type * as Fiber from "effect/Fiber"
import type { TripConfig } from "../BreakerFleet.ts"
import { monotonicMillis } from "./timeout.ts"
import { CountWindow, TimeWindow, type Window } from "./window.ts"

/** @internal */
export type Phase = "Closed" | "Open" | "HalfOpen"

/** @internal */
export type Mode = "Live" | "MetricsOnly" | "ForcedOpen" | "Disabled"

/** @internal */
export type StateTag = Phase | Exclude<Mode, "Live">

/** @internal */
export type Reason =
  | { readonly _tag: "ConsecutiveFailures"; readonly failures: number }
  | {
    readonly _tag: "FailureRate" | "SlowCallRate"
    readonly rate: number
    readonly threshold: number
    readonly calls: number
  }
  | { readonly _tag: "OpenElapsed" }
  | { readonly _tag: "ProbeFailed" }
  | { readonly _tag: "ProbesSucceeded"; readonly successes: number }
  | { readonly _tag: "Manual"; readonly action: "forceOpen" | "disable" | "metricsOnly" | "reset" | "restore" }
  | { readonly _tag: "Quorum"; readonly votes: number; readonly live: number }
  /** Applied from the fleet: `origin` is the instance where the change happened, `cause` why it happened there. */
  | { readonly _tag: "Fleet"; readonly origin: string; readonly cause: Reason }

/** Called synchronously for every transition; the breaker turns it into events and metrics. @internal */
export type Emit = (cell: Cell, from: StateTag, to: StateTag, reason: Reason, now: number, shadow: boolean) => void

/** One rate policy, resolved: the shape a fleet that counts calls reads too (`BreakerFleet.TripConfig`). @internal */
export type RatePolicy = TripConfig["rates"][number]

/** The validated, resolved options the machine runs on. @internal */
export interface Config {
  /** Consecutive failures that trip; 0 when there is no consecutive policy. */
  readonly consecutive: number
  readonly rates: ReadonlyArray<RatePolicy>
  /** Whether any policy needs call durations (a slow-call policy). */
  readonly timesCalls: boolean
  /** A call strictly slower than this is a slow call (the lowest `slowerThan`; Infinity without a slow-call policy). */
  readonly slowMillis: number
  readonly maxProbes: number
  readonly successThreshold: number
  readonly maxProbeMillis: number
  /** Gradual recovery: the first admitted share in HalfOpen; 0 for fixed probes. */
  readonly recoveryFactor: number
}

/** Admission verdicts. Non-negative values admit the call. @internal */
export const ADMIT = 0
/** @internal */
export const ADMIT_PROBE = 1
/** A MetricsOnly breaker runs a call the live breaker would have rejected; its outcome is not counted. @internal */
export const ADMIT_UNCOUNTED = 2
/** @internal */
export const REJECT_OPEN = -1
/** @internal */
export const REJECT_HALF_OPEN = -2
/** @internal */
export const REJECT_FORCED = -3

/** Outcomes, as the breaker classified the call's exit. @internal */
export const SUCCESS = 0
/** @internal */
export const FAILURE = 1
/** @internal */
export const IGNORED = 2

/** @internal */
export const RECENT_FAILURES = 50

/** @internal */
export class HalfOpen {
  /** Ids and start times of the probes in flight (fixed-probe mode). */
  readonly ids: Array<number> = []
  readonly starts: Array<number> = []
  nextId = 0
  /**
   * Gradual recovery: calls admitted and not finished. They hold no slot, but keep the key from eviction until
   * `maxProbeMillis` after the latest was admitted (`lastTrialAt`): one that hangs must not hold its key forever.
   */
  trials = 0
  lastTrialAt = 0
  successes = 0
  /** Gradual recovery: admission credit; a call is admitted when it reaches 1. */
  credit: number

  constructor(recoveryFactor: number) {
    // Starting at 1 - f admits the first call after Open, then every 1/f-th until successes raise the share.
    this.credit = 1 - recoveryFactor
  }
}

/** @internal */
export class RecentFailures {
  /** The last failure's time, whether or not it was remembered in the ring. */
  lastAt = -1
  readonly at: Array<number> = []
  readonly tags: Array<string> = []
  readonly messages: Array<string> = []
  next = 0
}

/** A key's openings: allocated at its first opening (or manual control), so a key that never opened stays small. @internal */
export class Openings {
  openedAt = -1
  openUntil = 0
  count = 0
  lastOpenMillis = 0
  /** 0 until the first close: the backoff rule only reads it after an opening. */
  closedAt = 0
  /** The failures that opened the circuit (see `tripFailuresOf`); -1 when unknown. */
  tripFailures = -1
  /** The monotonic time (ms) of this breaker's own trip, for `boundOpenTime`; valid in `monoGeneration` only. */
  openedMono = 0
  monoGeneration = -1
}

/**
 * One key's state. Optional parts (openings, windows, half-open, recent failures) are allocated on first use: a
 * timestamp held in a field costs a heap number per key once any key has stored one there, so the fields that only
 * matter after an opening or a failure live in those parts, behind accessors.
 *
 * @internal
 */
export class Cell {
  readonly key: string
  mode: Mode = "Live"
  phase: Phase = "Closed"
  generation = 0
  /** When the visible state (`stateOf`) was entered. */
  enteredAt: number
  lastCallAt: number
  streak = 0
  opened: Openings | null = null
  half: HalfOpen | null = null
  windows: Array<Window> | null = null
  calls = 0
  successes = 0
  failures = 0
  ignored = 0
  slowCalls = 0
  rejections = 0
  stateChanges = 0
  recent: RecentFailures | null = null

  constructor(key: string, now: number) {
    this.key = key
    this.enteredAt = now
    this.lastCallAt = now
  }

  private ensureOpened(): Openings {
    return this.opened ?? (this.opened = new Openings())
  }
  get openedAt(): number {
    return this.opened === null ? -1 : this.opened.openedAt
  }
  set openedAt(value: number) {
    this.ensureOpened().openedAt = value
  }
  get openUntil(): number {
    return this.opened === null ? 0 : this.opened.openUntil
  }
  set openUntil(value: number) {
    this.ensureOpened().openUntil = value
  }
  get openings(): number {
    return this.opened === null ? 0 : this.opened.count
  }
  set openings(value: number) {
    this.ensureOpened().count = value
  }
  get lastOpenMillis(): number {
    return this.opened === null ? 0 : this.opened.lastOpenMillis
  }
  set lastOpenMillis(value: number) {
    this.ensureOpened().lastOpenMillis = value
  }
  get closedAt(): number {
    return this.opened === null ? 0 : this.opened.closedAt
  }
  /** Notes the monotonic time of a trip this process made (see `boundOpenTime`). */
  markOpened(clock: Clock.Clock): void {
    const opened = this.ensureOpened()
    opened.openedMono = monotonicMillis(clock)
    opened.monoGeneration = this.generation
  }
  set closedAt(value: number) {
    this.ensureOpened().closedAt = value
  }
  get lastFailureAt(): number {
    return this.recent === null ? -1 : this.recent.lastAt
  }
  set lastFailureAt(value: number) {
    const recent = this.recent ?? (this.recent = new RecentFailures())
    recent.lastAt = value
  }
}

/**
 * Call durations counted into fixed buckets, for the breaker's latency histogram: a call costs a scan of the bounds
 * and a few additions, and allocates nothing; the exporter reads the counts when it scrapes.
 *
 * @internal
 */
export class Latency {
  /** Upper bounds in milliseconds, ascending, without duplicates. */
  readonly bounds: ReadonlyArray<number>
  /** Calls per bucket (not cumulative); the last one holds the calls slower than every bound. */
  readonly counts: Array<number>
  count = 0
  sum = 0
  min = Infinity
  max = 0

  constructor(bounds: ReadonlyArray<number>) {
    this.bounds = bounds
    this.counts = Array.from({ length: bounds.length + 1 }, () => 0)
  }

  observe(millis: number): void {
    const bounds = this.bounds
    let i = 0
    // `le` semantics: a call of exactly a bound counts in that bound's bucket.
    while (i < bounds.length && millis > bounds[i]) i++
    this.counts[i]++
    this.count++
    this.sum += millis
    if (millis < this.min) this.min = millis
    if (millis > this.max) this.max = millis
  }
}

/**
 * Whether a probe (or, under gradual recovery, an admitted call) is in flight whose outcome still decides at `now`: a
 * probe running for `maxProbeMillis` or longer no longer does (its late outcome is dropped).
 *
 * @internal
 */
export const probing = (cell: Cell, now: number, maxProbeMillis: number): boolean => {
  const half = cell.half
  if (half === null) return false
  if (half.trials > 0 && now - half.lastTrialAt < maxProbeMillis) return true
  const starts = half.starts
  for (let i = 0; i < starts.length; i++) if (now - starts[i] < maxProbeMillis) return true
  return false
}

/** The state a caller sees: the mode when it overrides the machine, the machine's phase otherwise. @internal */
export const stateOf = (cell: Cell): StateTag => cell.mode === "Live" ? cell.phase : cell.mode

/**
 * The cell's state as a call at this moment would find it (`stateOf` after `refresh`), read without moving the cell:
 * an Open cell whose time is up reads as HalfOpen, and nothing is emitted that needs a flush. Only an Open cell looks
 * `fiber`'s clock up: the lookup in the fiber's context costs more than the rest of the read.
 *
 * @internal
 */
export const stateNow = (cell: Cell, fiber: Fiber.Fiber<unknown, unknown>): StateTag => {
  if (cell.mode !== "Live") return cell.mode
  if (cell.phase !== "Open") return cell.phase
  const clock = fiber.getRef(Clock.Clock)
  const now = clock.currentTimeMillisUnsafe()
  boundOpenTime(cell, now, clock)
  return now >= cell.openUntil ? "HalfOpen" : "Open"
}

/**
 * The synchronous read of a breaker's default circuit (`stateNow`), by breaker, for this package's hot paths (a
 * fallback chain or a delivery queue checking the breaker before a call): a function call where `breaker.state` is an
 * effect, a clock read and a flush.
 *
 * @internal
 */
export const stateReaders = new WeakMap<object, (fiber: Fiber.Fiber<unknown, unknown>) => StateTag>()

/**
 * Decides whether a call may run. An Open cell whose open time has passed becomes HalfOpen here, at exactly
 * `openUntil`: there is no timer.
 *
 * @internal
 */
export const admit = (cell: Cell, config: Config, now: number, emit: Emit, clock: Clock.Clock): number => {
  cell.lastCallAt = now
  switch (cell.mode) {
    case "Disabled":
      return ADMIT
    case "ForcedOpen":
      cell.rejections++
      return REJECT_FORCED
  }
  if (cell.phase === "Closed") return ADMIT
  let verdict: number
  if (cell.phase === "Open") boundOpenTime(cell, now, clock)
  if (cell.phase === "Open" && now < cell.openUntil) {
    verdict = REJECT_OPEN
  } else {
    if (cell.phase === "Open") toHalfOpen(cell, config, now, emit)
    verdict = admitProbe(cell.half!, config, now)
  }
  if (verdict >= 0) return verdict
  cell.rejections++
  return cell.mode === "MetricsOnly" ? ADMIT_UNCOUNTED : verdict
}

// Open times are wall-clock times, so that they survive a restart and mean the same on every instance of a fleet. A
// wall clock stepped back (an NTP correction) would then keep the circuit open for the step on top of its open time.
// For a trip this process made (`markOpened`; a fleet's breakers are not marked: the fleet's own clock decides),
// the monotonic clock says how much of the open time is really left, and `openUntil` is brought in to that.
const boundOpenTime = (cell: Cell, now: number, clock: Clock.Clock): void => {
  const opened = cell.opened
  if (opened === null || opened.monoGeneration !== cell.generation) return
  const until = now + Math.max(0, opened.lastOpenMillis - (monotonicMillis(clock) - opened.openedMono))
  if (until < opened.openUntil) opened.openUntil = until
}

/** @internal */
export const CREDIT_ROUNDING = 1e-9

const admitProbe = (half: HalfOpen, config: Config, now: number): number => {
  if (config.recoveryFactor > 0) {
    const share = config.recoveryFactor + (1 - config.recoveryFactor) * half.successes / config.successThreshold
    half.credit += share
    // Within rounding of 1 counts as 1: ten shares of 0.1 add up to 0.9999999999999999.
    if (half.credit < 1 - CREDIT_ROUNDING) return REJECT_HALF_OPEN
    half.credit = Math.max(0, half.credit - 1)
    // No slot, but an id all the same: the fleet path hands it back (`releaseProbe`).
    half.nextId++
    half.trials++
    half.lastTrialAt = now
    return ADMIT_PROBE
  }
  // A probe that has run past the maximum probe time gives its slot back; its outcome will find no slot and be
  // dropped, so a hung probe can neither block HalfOpen nor decide it late.
  const starts = half.starts
  for (let i = starts.length - 1; i >= 0; i--) {
    if (now - starts[i] >= config.maxProbeMillis) {
      starts.splice(i, 1)
      half.ids.splice(i, 1)
    }
  }
  if (starts.length >= config.maxProbes) return REJECT_HALF_OPEN
  half.ids.push(half.nextId++)
  starts.push(now)
  return ADMIT_PROBE
}

/** The probe id handed to the call `admit` just let through as a probe. @internal */
export const lastProbeId = (cell: Cell): number => cell.half === null ? -1 : cell.half.nextId - 1

/**
 * The ordinal of the opening a trip would start now: the backoff restarts once the circuit has stayed closed at
 * least as long as it was last open, so a dependency that flaps keeps its long open durations.
 *
 * @internal
 */
export const nextOpening = (cell: Cell, now: number): number =>
  cell.phase === "Closed" && now - cell.closedAt >= cell.lastOpenMillis ? 1 : cell.openings + 1

/**
 * Whether recording this outcome could open the circuit, so the caller knows to compute an open duration first.
 * A probe's failure reopens; on a closed circuit a failure can trip any policy, and a success can trip a rate
 * policy by bringing the window to its minimum number of calls.
 *
 * @internal
 */
export const mayTrip = (cell: Cell, config: Config, generation: number, outcome: number): boolean =>
  cell.generation === generation && cell.mode !== "Disabled" && outcome !== IGNORED &&
  (cell.phase === "HalfOpen"
    ? outcome === FAILURE
    : cell.phase === "Closed" && (outcome === FAILURE || config.rates.length > 0))

/**
 * Records the outcome of a call admitted at `generation`. Outcomes from an earlier generation are dropped: the
 * state they would count against has gone.
 *
 * @internal
 */
export const record = (
  cell: Cell,
  config: Config,
  generation: number,
  probeId: number,
  outcome: number,
  durationMillis: number,
  now: number,
  openMillis: number,
  emit: Emit
): void => {
  if (cell.generation !== generation) return
  if (cell.phase === "HalfOpen" && cell.mode !== "Disabled" && cell.mode !== "ForcedOpen") {
    const half = cell.half!
    if (config.recoveryFactor > 0) {
      half.trials--
    } else {
      const slot = half.ids.indexOf(probeId)
      // Expired past the maximum probe time, and the slot already given to another probe.
      if (slot === -1) return
      const startedAt = half.starts[slot]
      half.ids.splice(slot, 1)
      half.starts.splice(slot, 1)
      // Expired too, though no call came to notice: a probe over its time never decides, whatever the traffic.
      if (now - startedAt >= config.maxProbeMillis) return
    }
    if (!count(cell, config, outcome, durationMillis, now)) return
    if (outcome === FAILURE) {
      toOpen(cell, now, openMillis, { _tag: "ProbeFailed" }, emit)
    } else if (++half.successes >= config.successThreshold) {
      toClosed(cell, now, { _tag: "ProbesSucceeded", successes: half.successes }, emit)
    }
    return
  }
  if (!count(cell, config, outcome, durationMillis, now)) return
  if (cell.mode === "Disabled" || cell.phase !== "Closed") return
  const reason = tripReason(cell, config)
  if (reason !== undefined) toOpen(cell, now, openMillis, reason, emit)
}

/**
 * Counts an outcome into the totals and windows without deciding anything: the fleet decided instead. An outcome of
 * a call admitted at an earlier generation still counts in the totals (the call happened), but stays out of the
 * windows, which belong to the generation that cleared them (as `record` drops it). False when it is ignored.
 *
 * @internal
 */
export const tally = (
  cell: Cell,
  config: Config,
  generation: number,
  outcome: number,
  durationMillis: number,
  now: number
): boolean => count(cell, config, outcome, durationMillis, now, cell.generation === generation)

/**
 * Gives back a probe's slot (under gradual recovery, ends its trial) without recording its outcome: the fleet
 * recorded it, or refused the probe. A probe of an earlier generation has nothing left to give back.
 *
 * @internal
 */
export const releaseProbe = (cell: Cell, config: Config, generation: number, probeId: number): void => {
  const half = cell.half
  if (half === null || cell.generation !== generation) return
  if (config.recoveryFactor > 0) {
    half.trials--
    return
  }
  const slot = half.ids.indexOf(probeId)
  if (slot === -1) return
  half.ids.splice(slot, 1)
  half.starts.splice(slot, 1)
}

// Counts an outcome into the totals and (unless `windowed` is false) the windows; false when it is ignored.
const count = (
  cell: Cell,
  config: Config,
  outcome: number,
  durationMillis: number,
  now: number,
  windowed = true
): boolean => {
  if (outcome === IGNORED) {
    cell.ignored++
    return false
  }
  cell.calls++
  const failed = outcome === FAILURE
  // The streak is the consecutive policy's window: a late outcome stays out of it as out of the others.
  if (failed) {
    cell.failures++
    cell.lastFailureAt = now
    if (windowed) cell.streak++
  } else {
    cell.successes++
    if (windowed) cell.streak = 0
  }
  const slow = durationMillis > config.slowMillis
  if (slow) cell.slowCalls++
  const rates = config.rates
  if (rates.length > 0 && windowed) {
    const windows = cell.windows ?? (cell.windows = makeWindows(config, now))
    for (let i = 0; i < rates.length; i++) {
      const policy = rates[i]
      // A slow-call window counts by its own threshold; the others by the breaker's (the lowest).
      windows[i].record(failed, policy._tag === "SlowCallRate" ? durationMillis > policy.slowMillis : slow, now)
    }
  }
  return true
}

const tripReason = (cell: Cell, config: Config): Reason | undefined => {
  if (config.consecutive > 0 && cell.streak >= config.consecutive) {
    return { _tag: "ConsecutiveFailures", failures: cell.streak }
  }
  const windows = cell.windows
  if (windows === null) return undefined
  for (let i = 0; i < config.rates.length; i++) {
    const policy = config.rates[i]
    const window = windows[i]
    const hits = policy._tag === "FailureRate" ? window.failures : window.slow
    // At or above the threshold trips (as resilience4j and Polly); thresholds are > 0, so a clean window never does.
    // The rate is compared, not `hits` to `threshold * calls`: 0.55 * 100 is 55.00000000000001, and 55 of 100 calls
    // would not trip at 0.55. A rate equal to the threshold is the same double as it, rounding being monotone.
    const rate = hits / window.calls
    if (window.calls >= policy.minimumCalls && rate >= policy.threshold) {
      return { _tag: policy._tag, rate, threshold: policy.threshold, calls: window.calls }
    }
  }
  return undefined
}

/** @internal */
export const makeWindows = (config: Config, now: number): Array<Window> =>
  config.rates.map((policy) =>
    policy.window._tag === "Count"
      ? new CountWindow(policy.window.size)
      : new TimeWindow(policy.window.buckets, policy.window.bucketMillis, now)
  )

const clearWindows = (cell: Cell, now: number): void => {
  const windows = cell.windows
  if (windows !== null) { for (let i = 0; i < windows.length; i++) windows[i].clear(now) }
}

const move = (cell: Cell, to: Phase, now: number, reason: Reason, emit: Emit): void => {
  const from = cell.phase
  const visible = cell.mode === "Live"
  cell.phase = to
  cell.generation++
  cell.stateChanges++
  if (visible) cell.enteredAt = now
  emit(cell, from, to, reason, now, !visible)
}

// The failures that opened a circuit, from why it opened: the streak, or the failures (or slow calls) at the rate that
// tripped it; a probe that failed adds one to the failures that opened it before. -1 when nothing says (a quorum).
const tripFailuresOf = (reason: Reason, before: number): number => {
  switch (reason._tag) {
    case "ConsecutiveFailures":
      return reason.failures
    case "FailureRate":
    case "SlowCallRate":
      return Math.round(reason.rate * reason.calls)
    case "ProbeFailed":
      return before < 0 ? -1 : before + 1
    case "Fleet":
      return tripFailuresOf(reason.cause, before)
    default:
      return -1
  }
}

/** The failures that opened the circuit, while it is open or half-open; null otherwise or when unknown. @internal */
export const tripFailures = (cell: Cell): number | null =>
  cell.phase === "Closed" || cell.opened === null || cell.opened.tripFailures < 0 ? null : cell.opened.tripFailures

const toOpen = (cell: Cell, now: number, openMillis: number, reason: Reason, emit: Emit): void => {
  const opened = cell.opened
  cell.openings = nextOpening(cell, now)
  cell.opened!.tripFailures = tripFailuresOf(reason, opened === null ? -1 : opened.tripFailures)
  cell.openedAt = now
  cell.openUntil = now + openMillis
  cell.lastOpenMillis = openMillis
  cell.half = null
  cell.streak = 0
  clearWindows(cell, now)
  move(cell, "Open", now, reason, emit)
}

const toHalfOpen = (cell: Cell, config: Config, now: number, emit: Emit): void => {
  cell.half = new HalfOpen(config.recoveryFactor)
  move(cell, "HalfOpen", now, { _tag: "OpenElapsed" }, emit)
}

const toClosed = (cell: Cell, now: number, reason: Reason, emit: Emit): void => {
  cell.closedAt = now
  cell.half = null
  cell.streak = 0
  clearWindows(cell, now)
  move(cell, "Closed", now, reason, emit)
}

/**
 * Moves an Open cell whose time is up to HalfOpen, as a call would; snapshots call it so that what they show
 * matches what the next call will see.
 *
 * @internal
 */
export const refresh = (cell: Cell, config: Config, now: number, emit: Emit, clock: Clock.Clock): void => {
  if (cell.phase === "Open") boundOpenTime(cell, now, clock)
  if (cell.phase === "Open" && now >= cell.openUntil && cell.mode !== "ForcedOpen" && cell.mode !== "Disabled") {
    toHalfOpen(cell, config, now, emit)
  }
  const windows = cell.windows
  if (windows !== null) { for (let i = 0; i < windows.length; i++) windows[i].advance(now) }
}

/**
 * Manual controls. Each starts a new generation, so calls admitted before it cannot count against what follows.
 *
 * @internal
 */
export const setMode = (
  cell: Cell,
  mode: Mode,
  action: "forceOpen" | "disable" | "metricsOnly" | "reset",
  now: number,
  emit: Emit,
  reason: Reason = { _tag: "Manual", action }
): void => {
  const from = stateOf(cell)
  cell.generation++
  if (action === "reset" || mode === "Disabled" || cell.mode === "Disabled") {
    // Disabled counts without ever tripping, so its counts must neither carry into a machine that trips nor
    // inherit one's; reset starts afresh by definition. ForcedOpen freezes the machine, so its snapshot still
    // shows what led up to it.
    cell.phase = "Closed"
    cell.closedAt = now
    cell.openings = 0
    cell.lastOpenMillis = 0
    cell.half = null
    cell.streak = 0
    clearWindows(cell, now)
  } else if (cell.half !== null) {
    // The new generation orphans the probes in flight: their outcomes will be dropped, so their slots go now.
    cell.half.ids.length = 0
    cell.half.starts.length = 0
    cell.half.trials = 0
  }
  cell.mode = mode
  const to = stateOf(cell)
  if (from === to) return
  cell.enteredAt = now
  cell.stateChanges++
  emit(cell, from, to, reason, now, false)
}

/** A cell's durable part: enough to come back in the same state after a restart. @internal */
export interface Persisted {
  readonly mode: Mode
  readonly phase: Phase
  readonly openedAt: number
  readonly openUntil: number
  readonly openings: number
  readonly lastOpenMillis: number
  readonly closedAt: number
}

/** @internal */
export const persist = (cell: Cell): Persisted => ({
  mode: cell.mode,
  phase: cell.phase,
  openedAt: cell.openedAt,
  openUntil: cell.openUntil,
  openings: cell.openings,
  lastOpenMillis: cell.lastOpenMillis,
  closedAt: cell.closedAt
})

/** @internal */
export const restore = (
  cell: Cell,
  config: Config,
  state: Persisted,
  now: number,
  emit: Emit,
  reason: Reason = { _tag: "Manual", action: "restore" }
): void => {
  const from = stateOf(cell)
  cell.generation++
  cell.mode = state.mode
  cell.phase = state.phase
  cell.openedAt = state.openedAt
  cell.openUntil = state.openUntil
  cell.openings = state.openings
  // What opened it, where the reason says (a fleet's change carries the other instance's).
  cell.opened!.tripFailures = state.phase === "Closed" ? -1 : tripFailuresOf(reason, -1)
  cell.lastOpenMillis = state.lastOpenMillis
  cell.closedAt = state.closedAt
  cell.streak = 0
  cell.half = state.phase === "HalfOpen" ? new HalfOpen(config.recoveryFactor) : null
  clearWindows(cell, now)
  const to = stateOf(cell)
  if (from === to) return
  cell.enteredAt = now
  cell.stateChanges++
  emit(cell, from, to, reason, now, false)
}

/** What a key's window holds now (see `Snapshot.window`). @internal */
export interface WindowFigures {
  readonly calls: number
  readonly failures: number
  readonly successes: number
  readonly slowCalls: number
}

/**
 * The current window: the first rate policy's window, or, for a breaker with only a consecutive policy, the current
 * streak (the only calls that policy looks at).
 *
 * @internal
 */
export const windowFigures = (cell: Cell, config: Config): WindowFigures => {
  if (config.rates.length === 0) return { calls: cell.streak, failures: cell.streak, successes: 0, slowCalls: 0 }
  const window = cell.windows === null ? undefined : cell.windows[0]
  if (window === undefined) return { calls: 0, failures: 0, successes: 0, slowCalls: 0 }
  return {
    calls: window.calls,
    failures: window.failures,
    successes: window.calls - window.failures,
    slowCalls: window.slow
  }
}

/** Adds a failure to the bounded ring of recent failures. @internal */
export const rememberFailure = (cell: Cell, at: number, tag: string, message: string): void => {
  const recent = cell.recent ?? (cell.recent = new RecentFailures())
  const i = recent.next
  recent.at[i] = at
  recent.tags[i] = tag
  recent.messages[i] = message
  recent.next = i + 1 === RECENT_FAILURES ? 0 : i + 1
}

/** The recent failures, oldest first. @internal */
export const recentFailures = (
  cell: Cell
): Array<{ readonly at: number; readonly tag: string; readonly message: string }> => {
  const recent = cell.recent
  if (recent === null) return []
  const size = recent.at.length
  const out: Array<{ at: number; tag: string; message: string }> = []
  const start = size < RECENT_FAILURES ? 0 : recent.next
  for (let n = 0; n < size; n++) {
    const i = (start + n) % size
    out.push({ at: recent.at[i], tag: recent.tags[i], message: recent.messages[i] })
  }
  return out
}

/** Human-readable reason, for logs and the demo. @internal */
export const describe = (reason: Reason): string => {
  switch (reason._tag) {
    case "ConsecutiveFailures":
      return `${reason.failures} consecutive failures`
    case "FailureRate":
      return `failure rate ${percent(reason.rate)} >= ${percent(reason.threshold)} over ${reason.calls} calls`
    case "SlowCallRate":
      return `slow-call rate ${percent(reason.rate)} >= ${percent(reason.threshold)} over ${reason.calls} calls`
    case "OpenElapsed":
      return "open duration elapsed, probing"
    case "ProbeFailed":
      return "probe failed"
    case "ProbesSucceeded":
      return `${reason.successes} probe${reason.successes === 1 ? "" : "s"} succeeded`
    case "Manual":
      return `manual ${reason.action}`
    case "Quorum":
      return `${reason.votes} of ${reason.live} live instance${reason.live === 1 ? "" : "s"} open`
    case "Fleet":
      return `${describe(reason.cause)} (on ${reason.origin})`
  }
}

const percent = (x: number) => `${Math.round(x * 1000) / 10}%`
