/**
 * A reference implementation of the breaker's documented semantics, for `CircuitBreaker.model.test.ts`.
 *
 * It is written from the module docs of `CircuitBreaker.ts`, not from `internal/circuitBreaker.ts`, and it is naive
 * on purpose:
 * - a window is the list of outcomes recorded since the machine last moved, filtered when read: its last n entries,
 *   or those whose time bucket is one of the last `buckets` (bucket k covers `[k * bucket, (k + 1) * bucket)`);
 * - every machine transition starts a new generation with a clean slate (streak, windows, probe slots); every manual
 *   control starts a new generation too, orphaning the calls in flight (outcomes dropped, probe slots freed);
 * - manual modes sit on top of the machine: `ForcedOpen` freezes it, `Disabled` counts the totals but leaves the
 *   machine fresh and idle, `MetricsOnly` runs it as if live, publishing its transitions as shadow ones;
 * - keys live in a map in recency order; what may be evicted is a predicate (`mayIdleEvict`) and a choice at the cap
 *   (`capVictim`), so that the harness can check whatever amortised sweep the breaker runs against the rules.
 */
import type * as CircuitBreaker from "../src/CircuitBreaker.ts"
import { CREDIT_ROUNDING } from "../src/internal/circuitBreaker.ts"

export type Mode = "Live" | "ForcedOpen" | "Disabled" | "MetricsOnly"
export type Phase = "Closed" | "Open" | "HalfOpen"
export type Action = "forceOpen" | "disable" | "metricsOnly" | "reset"

/**
 * How a call ends: `ignored` fails with an error `isFailure` rejects, `ignoredDefect` dies with a defect
 * `isDefectFailure` rejects, `failedResult` succeeds with a value `isFailureResult` calls a failure.
 */
export type Outcome = "ok" | "fail" | "ignored" | "defect" | "ignoredDefect" | "interrupt" | "failedResult"

export type Window =
  | { readonly _tag: "Count"; readonly size: number }
  | { readonly _tag: "Time"; readonly bucketMillis: number; readonly buckets: number }

export interface Rate {
  readonly _tag: "FailureRate" | "SlowCallRate"
  readonly threshold: number
  readonly minimumCalls: number
  readonly window: Window
  /** SlowCallRate only: a call strictly slower than this is slow. */
  readonly slowerThan: number
}

/** What the model needs to know of a breaker's options, restated by hand. */
export interface Spec {
  /** Failures in a row that trip; Infinity without a consecutive policy. */
  readonly consecutive: number
  readonly rates: ReadonlyArray<Rate>
  /** The n-th consecutive opening lasts `openMillis[n - 1]`; the last one repeats (one entry: a fixed duration). */
  readonly openMillis: ReadonlyArray<number>
  readonly maxProbes: number
  readonly successThreshold: number
  readonly maxProbeMillis: number
  /** Gradual recovery's first share; 0 when off. */
  readonly recoveryFactor: number
  readonly idleMillis: number
  readonly maxKeys: number
}

export interface Persisted {
  readonly mode: Mode
  readonly phase: Phase
  readonly openedAt: number
  readonly openUntil: number
  readonly openings: number
  readonly lastOpenMillis: number
  readonly closedAt: number
}

interface Recorded {
  readonly at: number
  readonly failed: boolean
  /** Strictly slower than a slow-call policy's `slowerThan`. */
  readonly slow: boolean
}

/** An admitted call: its circuit (which may since have been evicted), generation, start, and probe slot. */
export interface Ticket {
  readonly circuit: Circuit
  readonly generation: number
  readonly startedAt: number
  /** The probe slot's id in HalfOpen (fixed probes), "trial" for a call admitted by gradual recovery. */
  readonly probe: number | "trial" | undefined
}

export type Verdict =
  /** The call runs; without a ticket (MetricsOnly overriding a rejection) its outcome is not counted. */
  | { readonly _tag: "Run"; readonly ticket: Ticket | undefined }
  | { readonly _tag: "CircuitOpen"; readonly retryAfter: number }
  | { readonly _tag: "CircuitForcedOpen" }
  | { readonly _tag: "CircuitHalfOpen" }

/** Everything compared per key after each command. `null` machine figures: not asserted (see `Circuit.view`). */
export interface View {
  readonly state: CircuitBreaker.State
  readonly circuit: Phase
  readonly generation: number
  readonly totalCalls: number
  readonly successCount: number
  readonly failureCount: number
  readonly ignoredCount: number
  readonly slowCallCount: number
  readonly rejectedCount: number
  readonly stateChanges: number
  readonly enteredStateAt: number
  readonly timeInStateMillis: number
  readonly openedAt: number | null
  readonly retryAfterMillis: number | null
  readonly lastFailureAt: number | null
  readonly lastCallAt: number
  readonly halfOpen: {
    readonly probesInFlight: number
    readonly successes: number
    readonly successThreshold: number
  } | null
  readonly consecutiveFailures: number | null
  readonly window: {
    readonly calls: number
    readonly failures: number
    readonly successes: number
    readonly slowCalls: number
  } | null
  readonly failureRate: number | null
  readonly slowCallRate: number | null
}

const inWindow = (window: Window, recorded: ReadonlyArray<Recorded>, now: number): ReadonlyArray<Recorded> =>
  window._tag === "Count"
    ? recorded.slice(-window.size)
    : recorded.filter((r) =>
      Math.floor(r.at / window.bucketMillis) > Math.floor(now / window.bucketMillis) - window.buckets
    )

const isHit = (policy: Rate, r: Recorded): boolean => policy._tag === "FailureRate" ? r.failed : r.slow

const rateOf = (hits: ReadonlyArray<boolean>): number =>
  hits.length === 0 ? 0 : hits.filter((hit) => hit).length / hits.length

const modeOf: Record<Action, Mode> = {
  forceOpen: "ForcedOpen",
  disable: "Disabled",
  metricsOnly: "MetricsOnly",
  reset: "Live"
}

/** Publishes a transition, as `key: from->to (reason) at t, generation g`, shadow ones (MetricsOnly) marked. */
export type Publish = (line: string) => void

/** Tallies a situation a run reached: the generator is only as good as what it makes happen. */
export type Reach = (situation: string) => void

/** One key's circuit. */
export class Circuit {
  readonly key: string
  readonly spec: Spec
  readonly reach: Reach
  mode: Mode = "Live"
  phase: Phase = "Closed"
  generation = 0
  enteredAt: number
  lastCallAt: number
  openedAt = -1
  openUntil = 0
  openings = 0
  lastOpenMillis = 0
  closedAt = 0
  streak = 0
  /** Outcomes recorded since the machine last moved (the windows are views of it). */
  recorded: Array<Recorded> = []
  probes: Array<{ readonly id: number; readonly startedAt: number }> = []
  nextProbe = 0
  /** Gradual recovery: the calls admitted and not finished, for eviction (they hold no slot), and the latest's start. */
  trials = 0
  lastTrialAt = 0
  probeSuccesses = 0
  credit = 0
  calls = 0
  successes = 0
  failures = 0
  ignored = 0
  slowCalls = 0
  rejected = 0
  stateChanges = 0
  lastFailureAt = -1

  constructor(key: string, spec: Spec, now: number, reach: Reach) {
    this.key = key
    this.spec = spec
    this.reach = reach
    this.enteredAt = now
    this.lastCallAt = now
  }

  get state(): CircuitBreaker.State {
    return this.mode === "Live" ? this.phase : this.mode
  }

  /** Open becomes HalfOpen at `openUntil`, seen by the next call or read; a forced-open or disabled breaker waits. */
  refresh(now: number, publish: Publish): void {
    const running = this.mode === "Live" || this.mode === "MetricsOnly"
    if (running && this.phase === "Open" && now >= this.openUntil) this.move("HalfOpen", "OpenElapsed", now, publish)
  }

  admit(now: number, publish: Publish): Verdict {
    this.lastCallAt = now
    const ticket = (probe: Ticket["probe"]): Verdict => ({
      _tag: "Run",
      ticket: { circuit: this, generation: this.generation, startedAt: now, probe }
    })
    if (this.mode === "Disabled") return ticket(undefined)
    if (this.mode === "ForcedOpen") {
      this.rejected++
      return { _tag: "CircuitForcedOpen" }
    }
    this.refresh(now, publish)
    if (this.phase === "Closed") return ticket(undefined)
    let rejection: Verdict
    if (this.phase === "Open") {
      rejection = { _tag: "CircuitOpen", retryAfter: this.openUntil - now }
    } else if (this.spec.recoveryFactor > 0) {
      // Each call adds the current share to the credit, and runs when the credit reaches 1.
      const f = this.spec.recoveryFactor
      this.credit += f + (1 - f) * this.probeSuccesses / this.spec.successThreshold
      // Within rounding of 1 counts as 1 (ten shares of 0.1 add up to 0.9999999999999999).
      if (this.credit >= 1 - CREDIT_ROUNDING) {
        this.credit = Math.max(0, this.credit - 1)
        this.trials++
        this.lastTrialAt = now
        this.reach(
          this.probeSuccesses > 0
            ? "gradual recovery: a call admitted after a success"
            : "gradual recovery: a call admitted"
        )
        return ticket("trial")
      }
      this.reach("gradual recovery: a call rejected")
      rejection = { _tag: "CircuitHalfOpen" }
    } else {
      // A probe running for maxProbeTime or longer gives its slot back.
      const before = this.probes.length
      this.probes = this.probes.filter((probe) => now - probe.startedAt < this.spec.maxProbeMillis)
      if (this.probes.length < before) this.reach("a probe past maxProbeTime gave its slot to a call")
      if (this.probes.length < this.spec.maxProbes) {
        if (this.probes.length > 0) this.reach("a probe admitted beside another")
        const id = this.nextProbe++
        this.probes.push({ id, startedAt: now })
        return ticket(id)
      }
      rejection = { _tag: "CircuitHalfOpen" }
    }
    this.rejected++
    if (this.mode === "MetricsOnly") {
      this.reach("MetricsOnly ran a call the live breaker would have rejected")
      return { _tag: "Run", ticket: undefined }
    }
    return rejection
  }

  /** Records how an admitted call ended, `now` being when it ended. */
  settle(ticket: Ticket, outcome: Outcome, now: number, publish: Publish): void {
    const duration = now - ticket.startedAt
    // Admitted before a transition or a manual control: dropped (its probe slot went with the old generation).
    if (ticket.generation !== this.generation) {
      this.reach("an outcome of an earlier generation dropped")
      return
    }
    if (ticket.probe === "trial") this.trials--
    if (typeof ticket.probe === "number") {
      const slot = this.probes.findIndex((probe) => probe.id === ticket.probe)
      // Its slot is gone: it ran past maxProbeTime and another call noticed.
      if (slot === -1) {
        this.reach("a late probe found its slot taken")
        return
      }
      // A finished probe gives its slot back, whatever happens to its outcome.
      this.probes.splice(slot, 1)
      // Ran past maxProbeTime, though no call noticed: the late outcome is dropped all the same.
      if (duration >= this.spec.maxProbeMillis) {
        this.reach("a late probe, unnoticed, dropped")
        return
      }
      if (outcome === "interrupt") this.reach("a probe interrupted")
    }
    // Interruption and errors or defects the predicates reject count as neither success nor failure.
    if (outcome === "ignored" || outcome === "ignoredDefect" || outcome === "interrupt") {
      this.reach(`an outcome ignored: ${outcome}`)
      this.ignored++
      return
    }
    const failed = outcome !== "ok"
    if (outcome === "failedResult") this.reach("a success value counted as a failure")
    this.calls++
    if (failed) {
      this.failures++
      this.lastFailureAt = now
    } else {
      this.successes++
    }
    const slow = this.spec.rates.some((policy) => policy._tag === "SlowCallRate" && duration > policy.slowerThan)
    if (slow) this.slowCalls++
    this.streak = failed ? this.streak + 1 : 0
    this.recorded.push({ at: now, failed, slow })
    // Disabled counts, but never trips.
    if (this.mode === "Disabled") return
    if (this.phase === "HalfOpen") {
      if (failed) this.open("ProbeFailed", now, publish)
      else if (++this.probeSuccesses >= this.spec.successThreshold) {
        if (this.spec.successThreshold > 1) this.reach("closed after several probe successes")
        this.close(now, publish)
      }
    } else if (this.phase === "Closed") {
      const reason = this.tripReason(now)
      if (reason !== undefined) {
        this.reach(`tripped: ${reason}`)
        this.open(reason, now, publish)
      }
    }
  }

  tripReason(now: number): string | undefined {
    if (this.streak >= this.spec.consecutive) return "ConsecutiveFailures"
    for (const policy of this.spec.rates) {
      const hits = inWindow(policy.window, this.recorded, now).map((r) => isHit(policy, r))
      if (hits.length >= policy.minimumCalls && rateOf(hits) >= policy.threshold) return policy._tag
    }
    return undefined
  }

  /**
   * The opening a trip starts now: the count goes on from the last one, unless the circuit has stayed closed at
   * least as long as it was last open.
   */
  nextOpening(now: number): number {
    return this.phase === "Closed" && now - this.closedAt >= this.lastOpenMillis ? 1 : this.openings + 1
  }

  open(reason: string, now: number, publish: Publish): void {
    const opening = this.nextOpening(now)
    const durations = this.spec.openMillis
    const millis = durations[Math.min(opening, durations.length) - 1]
    if (durations.length > 1 && opening > durations.length) this.reach("an opening past the schedule's end")
    if (durations.length > 1 && opening === 1 && this.openings > 0) this.reach("the opening count restarted")
    this.openings = opening
    this.openedAt = now
    this.openUntil = now + millis
    this.lastOpenMillis = millis
    this.move("Open", reason, now, publish)
  }

  close(now: number, publish: Publish): void {
    this.closedAt = now
    this.move("Closed", "ProbesSucceeded", now, publish)
  }

  /** A machine transition: a new generation, and a clean slate (streak, windows, probes). */
  move(to: Phase, reason: string, now: number, publish: Publish): void {
    const from = this.phase
    this.phase = to
    this.generation++
    publish(
      `${this.key}: ${from}->${to} (${reason}) at ${now}, generation ${this.generation}${
        this.mode === "Live" ? "" : " shadow"
      }`
    )
    this.stateChanges++
    if (this.mode === "Live") this.enteredAt = now
    this.clearMachine()
    this.credit = 1 - this.spec.recoveryFactor
  }

  clearMachine(): void {
    this.streak = 0
    this.recorded = []
    this.probes = []
    this.trials = 0
    this.probeSuccesses = 0
  }

  /** A manual control; `publish` is a no-op when a new key takes the breaker-wide mode. */
  control(action: Action, now: number, publish: Publish): void {
    const before = this.state
    // A new generation orphans the calls in flight: their outcomes will be dropped, so their probe slots go now.
    this.generation++
    this.probes = []
    this.trials = 0
    // Reset, entering Disabled and leaving it start the machine afresh: Closed, empty windows, no backoff.
    if (action === "reset" || action === "disable" || this.mode === "Disabled") {
      this.phase = "Closed"
      this.closedAt = now
      this.openings = 0
      this.lastOpenMillis = 0
      this.clearMachine()
    }
    this.mode = modeOf[action]
    this.changed(before, `Manual ${action}`, now, publish)
  }

  restore(state: Persisted, now: number, publish: Publish): void {
    const before = this.state
    this.generation++
    this.mode = state.mode
    this.phase = state.phase
    this.openedAt = state.openedAt
    this.openUntil = state.openUntil
    this.openings = state.openings
    this.lastOpenMillis = state.lastOpenMillis
    this.closedAt = state.closedAt
    this.clearMachine()
    this.credit = 1 - this.spec.recoveryFactor
    this.changed(before, "Manual restore", now, publish)
  }

  changed(before: CircuitBreaker.State, reason: string, now: number, publish: Publish): void {
    if (this.state === before) return
    this.stateChanges++
    this.enteredAt = now
    publish(`${this.key}: ${before}->${this.state} (${reason}) at ${now}, generation ${this.generation}`)
  }

  persisted(): Persisted {
    return {
      mode: this.mode,
      phase: this.phase,
      openedAt: this.openedAt,
      openUntil: this.openUntil,
      openings: this.openings,
      lastOpenMillis: this.lastOpenMillis,
      closedAt: this.closedAt
    }
  }

  /**
   * What a read shows (after `refresh`). While Disabled, the streak and the rates are not asserted: the docs say a
   * disabled breaker "still counts" but not whether that feeds the idle machine; what is asserted is that nothing
   * of it is left once the breaker is no longer disabled.
   */
  view(now: number): View {
    const machine = this.mode !== "Disabled"
    const rate = (kind: Rate["_tag"], lifetime: number) => {
      const policy = this.spec.rates.find((candidate) => candidate._tag === kind)
      // Without a window of that kind, the rate is over the key's lifetime.
      if (policy === undefined) return this.calls === 0 ? 0 : lifetime / this.calls
      return rateOf(inWindow(policy.window, this.recorded, now).map((r) => isHit(policy, r)))
    }
    return {
      state: this.state,
      circuit: this.phase,
      generation: this.generation,
      totalCalls: this.calls,
      successCount: this.successes,
      failureCount: this.failures,
      ignoredCount: this.ignored,
      slowCallCount: this.slowCalls,
      rejectedCount: this.rejected,
      stateChanges: this.stateChanges,
      enteredStateAt: this.enteredAt,
      timeInStateMillis: now - this.enteredAt,
      openedAt: this.openedAt < 0 ? null : this.openedAt,
      retryAfterMillis: this.phase === "Open" && this.mode !== "ForcedOpen" ? this.openUntil - now : null,
      lastFailureAt: this.lastFailureAt < 0 ? null : this.lastFailureAt,
      lastCallAt: this.lastCallAt,
      // Gradual recovery has no probe slots: its calls in flight do not show here.
      halfOpen: this.phase === "HalfOpen"
        ? {
          probesInFlight: this.probes.length,
          successes: this.probeSuccesses,
          successThreshold: this.spec.successThreshold
        }
        : null,
      consecutiveFailures: machine ? this.streak : null,
      window: machine ? this.windowFigures(now) : null,
      failureRate: machine ? rate("FailureRate", this.failures) : null,
      slowCallRate: machine ? rate("SlowCallRate", this.slowCalls) : null
    }
  }

  /**
   * The current window: the first rate policy's, or without one the streak (its failures in a row and nothing
   * else).
   */
  windowFigures(now: number): NonNullable<View["window"]> {
    const policy = this.spec.rates[0]
    if (policy === undefined) return { calls: this.streak, failures: this.streak, successes: 0, slowCalls: 0 }
    const inside = inWindow(policy.window, this.recorded, now)
    const failures = inside.filter((r) => r.failed).length
    return {
      calls: inside.length,
      failures,
      successes: inside.length - failures,
      slowCalls: inside.filter((r) => r.slow).length
    }
  }

  /**
   * Whether the key holds calls whose outcome still decides HalfOpen at `now`: probes that have run for less than
   * maxProbeTime, or gradual recovery's calls while the latest has (a hung one must not hold its key forever).
   */
  probing(now: number): boolean {
    return this.phase === "HalfOpen" &&
      (this.probes.some((probe) => now - probe.startedAt < this.spec.maxProbeMillis) ||
        (this.trials > 0 && now - this.lastTrialAt < this.spec.maxProbeMillis))
  }
}

export const defaultKey = "default"

/** A breaker: the default circuit, the keys in recency order (least recent first), and the breaker-wide mode. */
export class Model {
  readonly spec: Spec
  readonly reach: Reach
  readonly defaultCircuit: Circuit
  /** Insertion order is recency order: a use moves a key to the end. */
  readonly keys = new Map<string, Circuit>()
  baseAction: Action = "reset"
  /** Every transition published, in order. */
  readonly transitions: Array<string> = []
  readonly publish: Publish = (line) => {
    this.transitions.push(line)
  }
  /** The key the last command created, and the keys it held just before (for the eviction check). */
  created: { readonly key: string; readonly before: ReadonlyArray<Circuit> } | undefined

  constructor(spec: Spec, now: number, reach: Reach) {
    this.spec = spec
    this.reach = reach
    this.defaultCircuit = new Circuit(defaultKey, spec, now, reach)
  }

  /** A circuit as it would be made now: fresh, under the breaker-wide mode (set silently). */
  fresh(key: string, now: number): Circuit {
    const circuit = new Circuit(key, this.spec, now, this.reach)
    if (this.baseAction !== "reset") circuit.control(this.baseAction, now, () => {})
    return circuit
  }

  /** The circuit of a key for a call, control or restore: created on first use, and now the most recent. */
  use(key: string, now: number): Circuit {
    if (key === defaultKey) return this.defaultCircuit
    let circuit = this.keys.get(key)
    if (circuit === undefined) {
      this.created = { key, before: [...this.keys.values()] }
      circuit = this.fresh(key, now)
    } else {
      this.keys.delete(key)
    }
    this.keys.set(key, circuit)
    return circuit
  }

  /** The circuit a read of `key` shows, refreshed; an unknown key reads as a fresh circuit. */
  read(key: string, now: number): Circuit {
    const circuit = key === defaultKey ? this.defaultCircuit : this.keys.get(key) ?? this.fresh(key, now)
    circuit.refresh(now, this.publish)
    return circuit
  }

  control(action: Action, key: string | undefined, now: number): void {
    if (key !== undefined) {
      this.use(key, now).control(action, now, this.publish)
      return
    }
    this.baseAction = action
    for (const circuit of [this.defaultCircuit, ...this.keys.values()]) circuit.control(action, now, this.publish)
  }

  restore(state: Persisted, key: string, now: number): void {
    this.use(key, now).restore(state, now, this.publish)
  }

  /**
   * Whether a key is under a manual control of its own: its mode is not the one a new key would get (a
   * breaker-wide control's), so dropping it would lose the control.
   */
  manual(circuit: Circuit): boolean {
    return circuit.mode !== modeOf[this.baseAction]
  }

  /**
   * Idle eviction may drop a key idle for idleTimeToLive, unless its open time is still running, it is probing, or
   * it is under a manual control of its own.
   */
  mayIdleEvict(circuit: Circuit, now: number): boolean {
    return now - circuit.lastCallAt >= this.spec.idleMillis &&
      !(circuit.phase === "Open" && now < circuit.openUntil) && !circuit.probing(now) && !this.manual(circuit)
  }

  /**
   * The key a new key pushes out at the cap: the least recent Closed key, else the least recent Open or HalfOpen
   * one; never one that is probing or under a manual control of its own. None when every key is kept.
   */
  capVictim(held: ReadonlyArray<Circuit>, now: number): Circuit | undefined {
    const candidates = held.filter((circuit) => !circuit.probing(now) && !this.manual(circuit))
    return candidates.find((circuit) => circuit.phase === "Closed") ?? candidates[0]
  }

  drop(key: string): void {
    this.keys.delete(key)
  }
}
