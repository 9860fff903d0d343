/**
 * Circuit breakers for calls to unreliable dependencies: fail fast while a dependency is down, probe it as it
 * comes back, and show what happened as snapshots, events and metrics.
 *
 * A breaker guards one dependency. It can also be keyed, guarding one circuit per host or tenant under one
 * definition, with idle keys evicted.
 *
 * **Details**
 *
 * - Rejections: a call the breaker turns away fails with `CircuitBreakerError`, whose `reason` says why
 *   (`CircuitOpen`, `CircuitHalfOpen`, `CircuitForcedOpen`). `Effect.catchTag("CircuitBreakerError", f)` handles
 *   them all, `Effect.catchReason("CircuitBreakerError", "CircuitOpen", f)` one kind. A rejection is built once per
 *   key, generation, reason and millisecond and shared, without a stack, so rejecting stays cheap under load.
 * - `Closed`: calls run; the trip policies decide when the circuit opens. Several policies trip when any holds:
 *   - `consecutive(n)`: n failures in a row, in order of completion; a success resets the streak;
 *   - `failureRate` over `lastCalls(n)` (the last n recorded calls) or `rolling(duration, { buckets })` (a time
 *     window of aligned buckets, `[k * bucket, (k + 1) * bucket)`): trips when failures / calls is at or above
 *     `threshold`, once the window holds at least `minimumCalls` calls;
 *   - `slowCallRate`: the same over calls strictly slower than `slowerThan` (failed or not), timed on the monotonic
 *     clock: a wall clock stepped forward (an NTP correction) makes no call in flight slow.
 * - `Open`: calls fail at once (reason `CircuitOpen`), with `retryAfter` the open time left. The first call at
 *   exactly `openedAt + openDuration` moves the circuit to `HalfOpen`; there is no timer, so idle breakers cost
 *   nothing. `openDuration` may be a `Schedule`: the n-th consecutive opening lasts the schedule's n-th delay
 *   (the last delay repeats once it ends), and the count restarts once the circuit has stayed closed as long as it
 *   was last open. A schedule that fails (a bug in code of the user's) is logged as an error and treated as ended,
 *   or, at the first opening, the default 30 seconds apply. Open times are wall-clock times (they survive a
 *   restart and are shared by a fleet); a wall clock stepped back (an NTP correction) does not hold a circuit this
 *   breaker opened past its open time: the monotonic clock says how much of it is left. A fleet's circuits follow
 *   the fleet's times, so its instances' clocks must agree.
 * - `HalfOpen`: up to `maxProbes` probes run at once; other callers fail at once (reason `CircuitHalfOpen`,
 *   `retryAfter` zero), never queued. A probe failure reopens at once with the next open duration;
 *   `successThreshold` probe successes close. A probe's slot comes back when it finishes, is interrupted, is
 *   ignored, or runs past `maxProbeTime` (its late outcome is then dropped, whether or not another call noticed),
 *   and at once on a transition or a manual control, whose new generation orphans it. With `recoveryFactor` f, the
 *   circuit admits a share of calls instead: f at first, rising linearly to 1 as the K = `successThreshold`
 *   successes come in. Admission is deterministic: each call adds the current share to a credit that starts at
 *   1 - f, and runs when the credit reaches 1 (the first call always runs).
 * - `ForcedOpen` rejects everything (reason `CircuitForcedOpen`, `retryAfter` infinite); `Disabled` admits
 *   everything and still counts; `MetricsOnly` runs the machine as if live and publishes its transitions (with
 *   `shadow: true`), but never rejects: a call the live breaker would have rejected runs, uncounted, and adds to
 *   `rejectedCount`. `reset`, entering `Disabled` and leaving it start the machine afresh (`Closed`, empty windows,
 *   no backoff); `ForcedOpen` freezes it, and `MetricsOnly` runs it as it was.
 * - Every admission carries the circuit's generation. Any transition or manual control starts a new one, and an
 *   outcome from an earlier generation (a slow call admitted before a trip) is dropped.
 * - Classification: by default every typed failure and every defect counts as a failure, except the local
 *   rejections of our own policies (the `CircuitBreakerError` of a breaker inside this one, `BulkheadFull`, a rate
 *   limiter's rejection), which say nothing about the dependency. `isFailure` and `isDefectFailure` narrow that; an
 *   error they reject is ignored. Interruption and ignored errors count as neither success nor failure, and free a
 *   probe's slot. Every success counts as a success, unless `isFailureResult` says its value is a failure (an HTTP
 *   503 returned as a response): then the breaker records a failure, and the caller still gets the value.
 * - Keys: a key is made on first use and lives in recency order. Idle for `keys.idleTimeToLive`, it is evicted as
 *   new keys arrive (each new key looks at two more keys, from the least recently used on, passing over the ones it
 *   keeps), unless it is open with time left. At
 *   `keys.maxKeys`, a new key evicts the least recently used `Closed` key; only when none is left, the least recently
 *   used `Open` or `HalfOpen` one. Never evicted, by idle time or at the cap: a key under a manual control of its own
 *   (a per-key `forceOpen`, `disable`, `metricsOnly`, or a `restore` into a mode the breaker as a whole is not in),
 *   and a key with a probe in flight for less than `maxProbeTime` (a probe that hangs does not hold its key forever;
 *   under gradual recovery, a key whose latest admitted call is in flight and younger than that).
 *   When every key is kept, the map grows past the cap rather than lose one.
 * - Snapshots hold both the lifetime totals (`totalCalls`, `failureCount`, ...) and the current `window` (see
 *   `Snapshot`).
 * - Across instances: made where a `BreakerFleet` is provided (`RedisFleet.layer` in `@effect-resilience/redis`), the
 *   breaker shares its state with the breakers of the same name elsewhere (`fleet` picks `local`, `global` or `quorum`
 *   counting, or `false` to stay solo). What the fleet applies shows on `transitions` with the reason `Fleet`.
 *
 * **Gotchas**
 *
 * - Put retries and timeouts inside the breaker, so that it sees one outcome per call.
 * - Resetting a breaker that is already closed clears its windows but publishes no transition.
 * - Without a slow-call policy, the latency histogram times calls on the wall clock, which the breaker reads anyway
 *   (a monotonic read costs about 100 ns a call): a wall clock stepped forward while calls are in flight puts them in
 *   its slowest buckets, one stepped back counts them as 0 ms. With a slow-call policy, the histogram is monotonic too.
 *
 * **Example** (Falling back while a dependency is down)
 *
 * ```ts
 * import { CircuitBreaker } from "@effect-resilience/core"
 * import { Data, Effect } from "effect"
 *
 * class SearchDown extends Data.TaggedError("SearchDown") {}
 *
 * const program = Effect.gen(function*() {
 *   const breaker = yield* CircuitBreaker.make({
 *     name: "search",
 *     trip: CircuitBreaker.consecutive(2),
 *     openDuration: "30 seconds"
 *   })
 *   const search = Effect.fail(new SearchDown()).pipe(breaker.protect)
 *   yield* Effect.ignore(search)
 *   yield* Effect.ignore(search)
 *   // Open now: the call is not made, and the fallback answers at once.
 *   return yield* search.pipe(
 *     Effect.catchTag("CircuitBreakerError", (e) => Effect.succeed(`cached (${e.breaker}: ${e.reason._tag})`))
 *   )
 * }).pipe(Effect.scoped)
 * ```
 *
 * @since 0.1.0
 */
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as Fiber from "effect/Fiber"
import { dual } from "effect/Function"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as PubSub from "effect/PubSub"
import * as Pull from "effect/Pull"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as BreakerFleet from "./BreakerFleet.ts"
import * as internal from "./internal/circuitBreaker.ts"
import { isFailureResult as isClassifiedResult } from "./internal/failureResult.ts"
import * as fleetLink from "./internal/fleet.ts"
import { admissions, type Admitted, guard, type Run } from "./internal/guard.ts"
import { actionOf, defaultKey, Keys } from "./internal/keys.ts"
import * as metrics from "./internal/metrics.ts"
import { enlist, RegistryService } from "./internal/registry.ts"
import { isLocalRejection, LocalRejectionTypeId } from "./internal/rejection.ts"
import { stackless } from "./internal/stackless.ts"
import { monotonicMillis } from "./internal/timeout.ts"
import {
  decode,
  DurationInput,
  durationIssue,
  Fraction,
  maxEventBuffer,
  millisOf,
  orDefault,
  type PolicyConfigError,
  PositiveInt,
  PositiveIntUpTo
} from "./PolicyConfig.ts"

/**
 * @example
 * ```ts
 * import { CircuitBreaker } from "@effect-resilience/core"
 *
 * const isBreaker = (u: object) => CircuitBreaker.TypeId in u
 * ```
 *
 * @since 0.1.0
 * @category type IDs
 */
export const TypeId: TypeId = "~@effect-resilience/core/CircuitBreaker"

/**
 * @example
 * ```ts
 * import type { CircuitBreaker } from "@effect-resilience/core"
 *
 * type Id = CircuitBreaker.TypeId // "~@effect-resilience/core/CircuitBreaker"
 * ```
 *
 * @since 0.1.0
 * @category type IDs
 */
export type TypeId = "~@effect-resilience/core/CircuitBreaker"

// -----------------------------------------------------------------------------
// models
// -----------------------------------------------------------------------------

/**
 * The state a caller sees: the machine's `Closed`, `Open` or `HalfOpen`, or a manual mode that overrides it.
 *
 * @example
 * ```ts
 * import type { CircuitBreaker } from "@effect-resilience/core"
 *
 * const rejects = (state: CircuitBreaker.State) => state === "Open" || state === "ForcedOpen"
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type State = "Closed" | "Open" | "HalfOpen" | "ForcedOpen" | "Disabled" | "MetricsOnly"

/**
 * The states, for schemas and iteration.
 *
 * @example
 * ```ts
 * import { CircuitBreaker } from "@effect-resilience/core"
 *
 * CircuitBreaker.states.includes("HalfOpen") // true
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export const states: ReadonlyArray<State> = ["Closed", "Open", "HalfOpen", "ForcedOpen", "Disabled", "MetricsOnly"]

/**
 * Why a transition happened.
 *
 * @example
 * ```ts
 * import type { CircuitBreaker } from "@effect-resilience/core"
 *
 * const tripped = (reason: CircuitBreaker.Reason) =>
 *   reason._tag === "ConsecutiveFailures" || reason._tag === "FailureRate" || reason._tag === "SlowCallRate"
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type Reason = internal.Reason

/**
 * One state change of one key, as published on `transitions`.
 *
 * `shadow` is true for the transitions a `MetricsOnly` breaker computes but does not enforce.
 *
 * @example
 * ```ts
 * import { CircuitBreaker } from "@effect-resilience/core"
 * import { Effect, Stream } from "effect"
 *
 * const logOpenings = (breaker: CircuitBreaker.CircuitBreaker) =>
 *   breaker.transitions.pipe(
 *     Stream.filter((t: CircuitBreaker.Transition) => t.to === "Open"),
 *     Stream.runForEach((t) => Effect.logWarning(`${t.breaker}/${t.key}: ${CircuitBreaker.describeReason(t.reason)}`))
 *   )
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Transition {
  readonly breaker: string
  readonly key: string
  readonly from: State
  readonly to: State
  readonly reason: Reason
  /** Epoch milliseconds, from `Clock`. */
  readonly at: number
  readonly generation: number
  readonly shadow: boolean
}

/**
 * A failure kept in a snapshot's bounded list of recent failures (the last 50).
 *
 * @example
 * ```ts
 * import type { CircuitBreaker } from "@effect-resilience/core"
 *
 * const describe = (f: CircuitBreaker.RecentFailure) => `${new Date(f.at).toISOString()} ${f.tag}: ${f.message}`
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface RecentFailure {
  readonly at: number
  readonly tag: string
  readonly message: string
}

/**
 * Everything a dashboard needs about one key, as plain serializable data. Times are epoch milliseconds.
 *
 * **Details**
 *
 * - Lifetime totals: `totalCalls`, `successCount`, `failureCount`, `ignoredCount`, `slowCallCount` and
 *   `rejectedCount` count since the key was created (or the breaker made), whatever the windows say.
 * - The current window, `window` (resilience4j's buffered calls): the calls, failures, successes and slow calls in
 *   the window of the breaker's first rate policy (`failureRate` or `slowCallRate`), which slides and is cleared on
 *   every transition. A breaker with only a `consecutive` policy has no window but the current streak: `window`
 *   then holds the `consecutiveFailures` failures in a row and nothing else.
 * - `failureRate` and `slowCallRate` read the first window of that kind when the breaker has one, and the
 *   lifetime totals otherwise.
 * - `circuit` is the machine's phase, which differs from `state` under a manual mode (under `MetricsOnly` it is
 *   the state the breaker would enforce).
 *
 * @example
 * ```ts
 * import type { CircuitBreaker } from "@effect-resilience/core"
 *
 * const healthPercentage = (s: CircuitBreaker.Snapshot) => Math.round((1 - s.failureRate) * 100)
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Snapshot {
  readonly name: string
  readonly key: string
  readonly state: State
  readonly circuit: "Closed" | "Open" | "HalfOpen"
  readonly generation: number
  readonly totalCalls: number
  readonly successCount: number
  readonly failureCount: number
  readonly ignoredCount: number
  readonly slowCallCount: number
  readonly rejectedCount: number
  readonly consecutiveFailures: number
  /**
   * While the circuit is open or half-open: the failures that opened it (the failures in a row, or the failures or
   * slow calls at the rate that tripped it; each half-open probe that failed adds one). `null` while closed, or when
   * nothing says (opened by a quorum, or restored without a reason).
   */
  readonly tripFailures: number | null
  /**
   * What moves the circuit: the failures in a row that open it (`null` without a `consecutive` policy) and the probe
   * successes that close it.
   */
  readonly thresholds: {
    readonly failures: number | null
    readonly successes: number
  }
  /** The current window's figures (see above); the lifetime totals are the `...Count` fields. */
  readonly window: {
    readonly calls: number
    readonly failures: number
    readonly successes: number
    readonly slowCalls: number
  }
  readonly failureRate: number
  readonly slowCallRate: number
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
  readonly recentFailures: ReadonlyArray<RecentFailure>
}

/**
 * A key's durable state, as `export` returns it and `restore` takes it back: enough for an open breaker to come
 * back open after a restart. Windows and counts are not part of it.
 *
 * @example
 * ```ts
 * import { CircuitBreaker } from "@effect-resilience/core"
 * import { Schema } from "effect"
 *
 * const fromJson = Schema.decodeUnknownSync(Schema.fromJsonString(CircuitBreaker.PersistedState))
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export const PersistedState = Schema.Struct({
  mode: Schema.Literals(["Live", "MetricsOnly", "ForcedOpen", "Disabled"]),
  phase: Schema.Literals(["Closed", "Open", "HalfOpen"]),
  openedAt: Schema.Finite,
  openUntil: Schema.Finite,
  openings: Schema.Int,
  lastOpenMillis: Schema.Finite,
  closedAt: Schema.Finite
})

/**
 * @example
 * ```ts
 * import type { CircuitBreaker } from "@effect-resilience/core"
 *
 * const isOpen = (saved: CircuitBreaker.PersistedState) => saved.phase === "Open" || saved.mode === "ForcedOpen"
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type PersistedState = typeof PersistedState.Type

/**
 * A sliding window for a rate policy.
 *
 * @example
 * ```ts
 * import { CircuitBreaker } from "@effect-resilience/core"
 *
 * const windows: ReadonlyArray<CircuitBreaker.Window> = [CircuitBreaker.lastCalls(100), CircuitBreaker.rolling("1 minute")]
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type Window =
  | { readonly _tag: "Count"; readonly size: number }
  | { readonly _tag: "Time"; readonly length: Duration.Input; readonly buckets: number }

/**
 * When a closed circuit opens.
 *
 * @example
 * ```ts
 * import { CircuitBreaker } from "@effect-resilience/core"
 *
 * const policies: ReadonlyArray<CircuitBreaker.TripPolicy> = [
 *   CircuitBreaker.consecutive(5),
 *   CircuitBreaker.failureRate({ threshold: 0.5, minimumCalls: 20, window: CircuitBreaker.lastCalls(100) })
 * ]
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type TripPolicy =
  | { readonly _tag: "Consecutive"; readonly failures: number }
  | {
    readonly _tag: "FailureRate"
    readonly threshold: number
    readonly minimumCalls: number
    readonly window: Window
  }
  | {
    readonly _tag: "SlowCallRate"
    readonly threshold: number
    readonly minimumCalls: number
    readonly slowerThan: Duration.Input
    readonly window: Window
  }

/**
 * Options for `make`. Only `name` is required.
 *
 * @example
 * ```ts
 * import type { CircuitBreaker } from "@effect-resilience/core"
 *
 * const options: CircuitBreaker.Options<{ readonly status: number }> = {
 *   name: "search",
 *   isFailureResult: (response) => response.status >= 500,
 *   openDuration: "10 seconds",
 *   halfOpen: { maxProbes: 2, successThreshold: 2 },
 *   keys: { idleTimeToLive: "10 minutes", maxKeys: 50_000 }
 * }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Options<A = unknown> {
  /**
   * Names the breaker in errors, events, metrics, the registry and the HTTP API's paths: 1 to 200 characters, no
   * control characters, neither "." nor "..".
   */
  readonly name: string
  /** One policy or several (the circuit opens when any holds). Default: `consecutive(5)`. */
  readonly trip?: TripPolicy | ReadonlyArray<TripPolicy> | undefined
  /**
   * How long the circuit stays open: a duration, or a `Schedule` of growing delays. Default: 30 seconds. A schedule
   * that fails is logged and keeps its last delay (30 seconds at the first opening).
   */
  readonly openDuration?: Duration.Input | Schedule.Schedule<unknown, number> | undefined
  readonly halfOpen?: {
    /** Probes allowed at once. Default: 1. */
    readonly maxProbes?: number | undefined
    /** Probe successes that close the circuit. Default: 1. */
    readonly successThreshold?: number | undefined
    /** A probe running longer than this frees its slot. Default: 1 minute. */
    readonly maxProbeTime?: Duration.Input | undefined
    /** Gradual recovery: the first share of calls admitted, in (0, 1]. Off by default. */
    readonly recoveryFactor?: number | undefined
  } | undefined
  /**
   * Which typed errors count as failures; the others are ignored. Default: all. A predicate here that throws makes
   * the call a defect: the call is recorded as one (`isDefectFailure` decides, a failure if it throws too), and the
   * caller gets the thrown value as a defect beside its own exit, as after a finalizer that dies.
   */
  readonly isFailure?: ((error: unknown) => boolean) | undefined
  /** Which defects count as failures; the others are ignored. Default: all. */
  readonly isDefectFailure?: ((defect: unknown) => boolean) | undefined
  /**
   * Which success values count as failures (an HTTP 503 returned as a value): the call still returns its value to
   * the caller, and the breaker records a failure. Default: none. If it throws, the call is a defect, as for
   * `isFailure`.
   */
  readonly isFailureResult?: ((value: A) => boolean) | undefined
  /**
   * Keyed breakers: how long an idle key is kept (default 1 hour) and how many keys at most (default 10,000). Keys
   * under a manual control of their own or with a probe in flight (for less than `maxProbeTime`) are never evicted
   * (see the module docs).
   */
  readonly keys?: {
    readonly idleTimeToLive?: Duration.Input | undefined
    readonly maxKeys?: number | undefined
  } | undefined
  /** Also export a `circuit_breaker_key_state` gauge per key (dropped with the key). Default: false. */
  readonly perKeyMetrics?: boolean | undefined
  /**
   * Upper bounds of the `circuit_breaker_call_duration_seconds` histogram (calls that ran and counted, measured
   * with `Clock`: on its monotonic time under a slow-call policy, otherwise on the wall clock, to the millisecond and
   * never below 0; see the module's gotchas), or `false` for no histogram. Default: 5, 10, 25, 50, 100, 250, 500 ms,
   * 1, 2.5, 5, 10 s.
   */
  readonly latencyBuckets?: ReadonlyArray<Duration.Input> | false | undefined
  /** Subscribers that fall further behind than this lose the oldest transitions. Default: 1024; at most 100,000. */
  readonly eventBuffer?: number | undefined
  /**
   * How the breaker shares its state when a `BreakerFleet` (say `RedisFleet.layer`) is in context: the counting mode,
   * or `false` to stay solo. Default: `local` counting. Without a fleet in context, the breaker is solo whatever this
   * says.
   */
  readonly fleet?: false | BreakerFleet.Options | undefined
}

const defaultOpenDuration = "30 seconds"
const defaultOpenMillis = Duration.toMillis(Duration.fromInputUnsafe(defaultOpenDuration))

/**
 * A circuit breaker. See the module docs for the semantics.
 *
 * `A` is the success type its `isFailureResult` reads: a breaker protects effects that succeed with an `A` (any
 * effect, when it has no `isFailureResult`). `A` is contravariant: a `CircuitBreaker` (of `unknown`) stands in for a
 * `CircuitBreaker<Response>`, not the other way round. `CircuitBreaker<never>` is a breaker of any success type, as a
 * registry, a policy or a health check holds it: all of it works but protecting a success, which needs the breaker
 * `make` returned.
 *
 * @example
 * ```ts
 * import { CircuitBreaker } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * const guarded = (breaker: CircuitBreaker.CircuitBreaker, host: string) =>
 *   Effect.succeed("page").pipe(breaker.protectKey(host))
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface CircuitBreaker<in A = unknown> {
  readonly [TypeId]: TypeId
  readonly name: string
  /** Runs an effect through the breaker's default circuit. Use it directly or as `effect.pipe(breaker.protect)`. */
  readonly protect: <B extends A, E, R>(self: Effect.Effect<B, E, R>) => Effect.Effect<B, E | Rejection, R>
  /**
   * Runs an effect through the circuit of `key`, created on first use: `effect.pipe(breaker.protectKey(host))`,
   * or `breaker.protectKey(effect, host)` on a hot path (no function per call).
   */
  readonly protectKey: {
    (key: string): <B extends A, E, R>(self: Effect.Effect<B, E, R>) => Effect.Effect<B, E | Rejection, R>
    <B extends A, E, R>(self: Effect.Effect<B, E, R>, key: string): Effect.Effect<B, E | Rejection, R>
  }
  /** The state of the default circuit. */
  readonly state: Effect.Effect<State>
  /** The state of a key's circuit (an unknown key reads as a fresh circuit, without being created). */
  readonly stateKey: (key: string) => Effect.Effect<State>
  /** A snapshot of the default circuit. */
  readonly snapshot: Effect.Effect<Snapshot>
  /** A snapshot of a key's circuit (an unknown key reads as a fresh circuit, without being created). */
  readonly snapshotKey: (key: string) => Effect.Effect<Snapshot>
  /** Snapshots of the default circuit and every live key. */
  readonly snapshots: Effect.Effect<ReadonlyArray<Snapshot>>
  /** Every transition of every key of this breaker, from subscription on. */
  readonly transitions: Stream.Stream<Transition>
  /** Rejects every call until `reset`. Without a key: every key, including keys created later. */
  readonly forceOpen: (key?: string) => Effect.Effect<void>
  /** Admits every call and keeps counting, never trips. Without a key: every key. */
  readonly disable: (key?: string) => Effect.Effect<void>
  /** Runs the machine and reports it, but never rejects. Without a key: every key. */
  readonly metricsOnly: (key?: string) => Effect.Effect<void>
  /** Back to a fresh `Closed`, live. Without a key: every key. */
  readonly reset: (key?: string) => Effect.Effect<void>
  /** The key's durable state (see `PersistedState`). */
  readonly export: (key?: string) => Effect.Effect<PersistedState>
  /**
   * Puts a key into an exported state; an open breaker restored before its time is up stays open. A state that is
   * not a `PersistedState` (read from a store without its Schema) is a defect, a `PolicyConfigError` naming the
   * field, and the key stays as it was.
   */
  readonly restore: (state: PersistedState, key?: string) => Effect.Effect<void>
}

/**
 * The `CircuitBreaker` in context, for programs that guard one dependency and want to swap the breaker in tests.
 *
 * @example
 * ```ts
 * import { CircuitBreaker } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * const program = Effect.gen(function*() {
 *   const breaker = yield* CircuitBreaker.CircuitBreaker
 *   return yield* breaker.protect(Effect.succeed("ok"))
 * }).pipe(Effect.provide(CircuitBreaker.layer({ name: "db" })))
 * ```
 *
 * @since 0.1.0
 * @category services
 */
export const CircuitBreaker: Context.Service<CircuitBreaker, CircuitBreaker> = Context.Service<CircuitBreaker>(
  "@effect-resilience/core/CircuitBreaker"
)

// -----------------------------------------------------------------------------
// errors
// -----------------------------------------------------------------------------

/**
 * Why a call was rejected: the circuit is open. `retryAfter` is the open time left.
 *
 * @example
 * ```ts
 * import { CircuitBreaker } from "@effect-resilience/core"
 * import { Duration, Effect } from "effect"
 *
 * const waitHint = (call: Effect.Effect<string, CircuitBreaker.Rejection>) =>
 *   call.pipe(
 *     Effect.catchReason("CircuitBreakerError", "CircuitOpen", (open) =>
 *       Effect.succeed(`retry in ${Duration.format(open.retryAfter)}`))
 *   )
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export class CircuitOpen extends Schema.TaggedError<CircuitOpen>()("CircuitOpen", {
  breaker: Schema.String,
  key: Schema.String,
  retryAfter: Schema.DurationFromMillis
}) {
  override get message(): string {
    return `Circuit breaker "${this.breaker}" (key "${this.key}") is open; retry after ${
      Duration.format(this.retryAfter)
    }`
  }
}

/**
 * Why a call was rejected: the circuit is half-open and every probe slot is taken (or, under gradual recovery,
 * the call is outside the admitted share).
 *
 * @example
 * ```ts
 * import { CircuitBreaker } from "@effect-resilience/core"
 *
 * const reason = new CircuitBreaker.CircuitHalfOpen({ breaker: "db", key: "default" })
 * reason.message // 'Circuit breaker "db" (key "default") is half-open and not admitting more calls'
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export class CircuitHalfOpen extends Schema.TaggedError<CircuitHalfOpen>()("CircuitHalfOpen", {
  breaker: Schema.String,
  key: Schema.String
}) {
  override get message(): string {
    return `Circuit breaker "${this.breaker}" (key "${this.key}") is half-open and not admitting more calls`
  }
}

/**
 * Why a call was rejected: the circuit is forced open (`forceOpen`), until `reset`.
 *
 * @example
 * ```ts
 * import { CircuitBreaker } from "@effect-resilience/core"
 *
 * const reason = new CircuitBreaker.CircuitForcedOpen({ breaker: "db", key: "default" })
 * reason.message // 'Circuit breaker "db" (key "default") is forced open'
 * ```
 *
 * @since 0.2.0
 * @category errors
 */
export class CircuitForcedOpen extends Schema.TaggedError<CircuitForcedOpen>()("CircuitForcedOpen", {
  breaker: Schema.String,
  key: Schema.String
}) {
  override get message(): string {
    return `Circuit breaker "${this.breaker}" (key "${this.key}") is forced open`
  }
}

/**
 * The reasons a `CircuitBreakerError` carries.
 *
 * @example
 * ```ts
 * import type { CircuitBreaker } from "@effect-resilience/core"
 *
 * const worthWaiting = (reason: CircuitBreaker.CircuitBreakerErrorReason) => reason._tag !== "CircuitForcedOpen"
 * ```
 *
 * @since 0.2.0
 * @category errors
 */
export type CircuitBreakerErrorReason = CircuitOpen | CircuitHalfOpen | CircuitForcedOpen

/**
 * The schema of `CircuitBreakerErrorReason`.
 *
 * @example
 * ```ts
 * import { CircuitBreaker } from "@effect-resilience/core"
 * import { Schema } from "effect"
 *
 * const isReason = Schema.is(CircuitBreaker.CircuitBreakerErrorReason)
 * ```
 *
 * @since 0.2.0
 * @category errors
 */
export const CircuitBreakerErrorReason: Schema.Union<
  readonly [typeof CircuitOpen, typeof CircuitHalfOpen, typeof CircuitForcedOpen]
> = Schema.Union([CircuitOpen, CircuitHalfOpen, CircuitForcedOpen])

/**
 * Every rejection of a breaker: the call did not run. `reason` says why (`CircuitOpen`, `CircuitHalfOpen` or
 * `CircuitForcedOpen`); `breaker`, `key` and `retryAfter` read through to it, `retryAfter` being the open time left
 * (zero when half-open, infinite when forced open). A local rejection: a breaker outside this one never counts it.
 *
 * @example
 * ```ts
 * import { CircuitBreaker } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * const orNull = <A>(call: Effect.Effect<A, CircuitBreaker.Rejection>) =>
 *   call.pipe(
 *     Effect.catchTag("CircuitBreakerError", (e) =>
 *       Effect.logWarning(`${e.breaker}: ${e.reason._tag}`).pipe(Effect.as(null))
 *     )
 *   )
 * ```
 *
 * @since 0.2.0
 * @category errors
 */
export class CircuitBreakerError extends Schema.TaggedError<CircuitBreakerError>()("CircuitBreakerError", {
  reason: CircuitBreakerErrorReason
}) {
  /** A local rejection: a breaker outside this one never counts it. */
  readonly [LocalRejectionTypeId]: LocalRejectionTypeId = LocalRejectionTypeId

  /** The breaker that rejected the call. */
  get breaker(): string {
    return this.reason.breaker
  }

  /** The key whose circuit rejected the call. */
  get key(): string {
    return this.reason.key
  }

  /** The open time left: zero when half-open (a probe slot may free any time), infinite when forced open. */
  get retryAfter(): Duration.Duration {
    const reason = this.reason
    return reason._tag === "CircuitOpen"
      ? reason.retryAfter
      : reason._tag === "CircuitForcedOpen"
      ? Duration.infinity
      : Duration.zero
  }

  override get message(): string {
    return this.reason.message
  }
}

/**
 * What a breaker adds to a call's error channel.
 *
 * @example
 * ```ts
 * import type { CircuitBreaker } from "@effect-resilience/core"
 *
 * const retryable = (e: CircuitBreaker.Rejection) => e.reason._tag !== "CircuitForcedOpen"
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export type Rejection = CircuitBreakerError

// -----------------------------------------------------------------------------
// policies
// -----------------------------------------------------------------------------

/**
 * Trips after `failures` failures in a row.
 *
 * @example
 * ```ts
 * import { CircuitBreaker } from "@effect-resilience/core"
 *
 * const policy = CircuitBreaker.consecutive(5)
 * ```
 *
 * @since 0.1.0
 * @category policies
 */
export const consecutive = (failures: number): TripPolicy => ({ _tag: "Consecutive", failures })

/**
 * Trips when the share of failed calls in `window` is at or above `threshold`, once the window holds at least
 * `minimumCalls` calls (default: 1).
 *
 * @example
 * ```ts
 * import { CircuitBreaker } from "@effect-resilience/core"
 *
 * // Half the calls of the last minute failed, over at least 20 calls.
 * const policy = CircuitBreaker.failureRate({
 *   threshold: 0.5,
 *   minimumCalls: 20,
 *   window: CircuitBreaker.rolling("60 seconds", { buckets: 60 })
 * })
 * ```
 *
 * @since 0.1.0
 * @category policies
 */
export const failureRate = (options: {
  readonly threshold: number
  readonly window: Window
  readonly minimumCalls?: number | undefined
}): TripPolicy => ({
  _tag: "FailureRate",
  threshold: options.threshold,
  minimumCalls: orDefault(options.minimumCalls, 1),
  window: options.window
})

/**
 * Trips when the share of calls strictly slower than `slowerThan` in `window` is at or above `threshold`, once
 * the window holds at least `minimumCalls` calls (default: 1). Calls are timed on the `Clock`'s monotonic time.
 *
 * @example
 * ```ts
 * import { CircuitBreaker } from "@effect-resilience/core"
 *
 * const policy = CircuitBreaker.slowCallRate({
 *   threshold: 0.8,
 *   slowerThan: "2 seconds",
 *   minimumCalls: 10,
 *   window: CircuitBreaker.lastCalls(50)
 * })
 * ```
 *
 * @since 0.1.0
 * @category policies
 */
export const slowCallRate = (options: {
  readonly threshold: number
  readonly slowerThan: Duration.Input
  readonly window: Window
  readonly minimumCalls?: number | undefined
}): TripPolicy => ({
  _tag: "SlowCallRate",
  threshold: options.threshold,
  slowerThan: options.slowerThan,
  minimumCalls: orDefault(options.minimumCalls, 1),
  window: options.window
})

/**
 * A count-based window: the last `size` recorded calls, at most 1,000,000 (a byte each, allocated up front).
 *
 * @example
 * ```ts
 * import { CircuitBreaker } from "@effect-resilience/core"
 *
 * const window = CircuitBreaker.lastCalls(100)
 * ```
 *
 * @since 0.1.0
 * @category policies
 */
export const lastCalls = (size: number): Window => ({ _tag: "Count", size })

/**
 * A time-based window of `length`, in `buckets` buckets aligned to multiples of `length / buckets` (default: one
 * bucket per second, at least 1). A bucket is a whole number of milliseconds, `length / buckets` rounded down, so
 * the window is a little shorter than `length` when `buckets` does not divide it. More buckets than milliseconds, or
 * than 100,000 (12 bytes each, allocated up front), are rejected; the default stops at 100,000.
 *
 * @example
 * ```ts
 * import { CircuitBreaker } from "@effect-resilience/core"
 *
 * const window = CircuitBreaker.rolling("1 minute", { buckets: 60 })
 * ```
 *
 * @since 0.1.0
 * @category policies
 */
export const rolling = (length: Duration.Input, options?: { readonly buckets?: number | undefined }): Window => ({
  _tag: "Time",
  length,
  buckets: options?.buckets ?? Math.min(
    MAX_BUCKETS,
    Math.max(1, Math.round(Duration.toSeconds(Option.getOrElse(Duration.fromInput(length), () => Duration.zero))))
  )
})

// A window's ring and buckets are allocated up front: bounds that keep a breaker's windows within a few megabytes.
const MAX_WINDOW_SIZE = 1_000_000
const MAX_BUCKETS = 100_000

// -----------------------------------------------------------------------------
// validation
// -----------------------------------------------------------------------------

// Buckets are whole milliseconds: more buckets than milliseconds would make a window longer than `length`.
const bucketsFitLength = Schema.makeFilter((window: { readonly length: unknown; readonly buckets: number }) => {
  const millis = millisOf(window.length as Duration.Input)
  return window.buckets <= millis
    ? undefined
    : {
      path: ["buckets"],
      issue: `Expected at most one bucket per millisecond of length (${millis}), got ${window.buckets}`
    }
})

const WindowSchema = Schema.Union([
  Schema.Struct({ _tag: Schema.Literal("Count"), size: PositiveIntUpTo(MAX_WINDOW_SIZE) }),
  Schema.Struct({
    _tag: Schema.Literal("Time"),
    length: DurationInput({ positive: true }),
    buckets: PositiveIntUpTo(MAX_BUCKETS)
  }).check(bucketsFitLength)
])

type WindowShape = { readonly _tag: "Count"; readonly size: number } | { readonly _tag: "Time" }

const windowCapacity = (window: WindowShape): number => window._tag === "Count" ? window.size : Infinity

const minimumFitsWindow = Schema.makeFilter((policy: { readonly minimumCalls: number; readonly window: WindowShape }) =>
  policy.minimumCalls <= windowCapacity(policy.window)
    ? undefined
    : {
      path: ["minimumCalls"],
      issue: `Expected at most the window size (${windowCapacity(policy.window)}), got ${policy.minimumCalls}`
    }
)

const TripPolicySchema = Schema.Union([
  Schema.Struct({ _tag: Schema.Literal("Consecutive"), failures: PositiveInt }),
  Schema.Struct({
    _tag: Schema.Literal("FailureRate"),
    threshold: Fraction,
    minimumCalls: PositiveInt,
    window: WindowSchema
  }).check(minimumFitsWindow),
  Schema.Struct({
    _tag: Schema.Literal("SlowCallRate"),
    threshold: Fraction,
    minimumCalls: PositiveInt,
    slowerThan: DurationInput({ positive: false }),
    window: WindowSchema
  }).check(minimumFitsWindow)
])

// Every name the HTTP API can reach (its path parameter takes 1 to 200 characters, no control characters), and
// neither "." nor "..": path segments a URL collapses, so no HTTP client could reach such a breaker by name.
const BreakerName = Schema.NonEmptyString.check(
  Schema.isMaxLength(200),
  Schema.isPattern(/^\P{Cc}*$/u, { message: "Expected a name without control characters" }),
  Schema.makeFilter((name: string) =>
    name === "." || name === ".."
      ? "Expected a name other than \".\" and \"..\" (a URL path collapses them: the HTTP API could not reach it)"
      : undefined
  )
)

const OptionsSchema = Schema.Struct({
  name: BreakerName,
  trip: Schema.Array(TripPolicySchema),
  openDuration: Schema.Unknown.check(Schema.makeFilter((input) => {
    if (Schedule.isSchedule(input)) return undefined
    const issue = durationIssue(input, { positive: false })
    return issue?.replace(/^Expected an? /, "Expected a Schedule or a ")
  })),
  halfOpen: Schema.Struct({
    maxProbes: PositiveInt,
    successThreshold: PositiveInt,
    maxProbeTime: DurationInput({ positive: true }),
    recoveryFactor: Schema.optional(Fraction)
  }),
  keys: Schema.Struct({
    idleTimeToLive: DurationInput({ positive: true }),
    maxKeys: PositiveInt
  }),
  eventBuffer: PositiveIntUpTo(maxEventBuffer),
  latencyBuckets: Schema.Union([Schema.Literal(false), Schema.Array(DurationInput({ positive: true }))]),
  fleet: Schema.Union([
    Schema.Literal(false),
    Schema.Struct({
      counting: Schema.Literals(["local", "global", "quorum"]),
      quorum: Schema.Struct({
        instances: Schema.optional(PositiveInt),
        share: Schema.optional(Fraction),
        window: DurationInput({ positive: true })
      })
    }).check(
      Schema.makeFilter((fleet) =>
        fleet.counting !== "quorum" || fleet.quorum.instances !== undefined || fleet.quorum.share !== undefined
          ? undefined
          : { path: ["quorum"], issue: "Expected quorum.instances or quorum.share with quorum counting, got neither" }
      )
    )
  ])
})

// Prometheus's default buckets.
const defaultLatencyBuckets: ReadonlyArray<Duration.Input> = [
  "5 millis",
  "10 millis",
  "25 millis",
  "50 millis",
  "100 millis",
  "250 millis",
  "500 millis",
  "1 second",
  "2.5 seconds",
  "5 seconds",
  "10 seconds"
]

interface Resolved {
  readonly config: internal.Config
  readonly openDuration: number | Schedule.Schedule<unknown, number>
  readonly idleMillis: number
  readonly maxKeys: number
  readonly eventBuffer: number
  /** The histogram's bounds in milliseconds, ascending; undefined without a histogram. */
  readonly latencyMillis: ReadonlyArray<number> | undefined
  readonly fleet: false | Pick<BreakerFleet.Member, "counting" | "quorum">
}

const resolve = <A>(options: Options<A>): Effect.Effect<Resolved, PolicyConfigError> => {
  const trip = options.trip === undefined
    ? [consecutive(5)]
    : Array.isArray(options.trip)
    ? options.trip
    : [options.trip as TripPolicy]
  const raw = {
    name: options.name,
    trip,
    openDuration: orDefault(options.openDuration, defaultOpenDuration),
    halfOpen: {
      maxProbes: orDefault(options.halfOpen?.maxProbes, 1),
      successThreshold: orDefault(options.halfOpen?.successThreshold, 1),
      maxProbeTime: orDefault(options.halfOpen?.maxProbeTime, "1 minute"),
      ...(options.halfOpen?.recoveryFactor === undefined ? {} : { recoveryFactor: options.halfOpen.recoveryFactor })
    },
    keys: {
      idleTimeToLive: orDefault(options.keys?.idleTimeToLive, "1 hour"),
      maxKeys: orDefault(options.keys?.maxKeys, 10_000)
    },
    eventBuffer: orDefault(options.eventBuffer, 1024),
    latencyBuckets: orDefault(options.latencyBuckets, defaultLatencyBuckets),
    fleet: options.fleet === false ? false as const : {
      counting: orDefault(options.fleet?.counting, "local"),
      quorum: {
        ...(options.fleet?.quorum?.instances === undefined ? {} : { instances: options.fleet.quorum.instances }),
        ...(options.fleet?.quorum?.share === undefined ? {} : { share: options.fleet.quorum.share }),
        window: orDefault(options.fleet?.quorum?.window, "1 minute")
      }
    }
  }
  return decode(OptionsSchema, raw, { kind: "circuit breaker", policy: String(options.name) }).pipe(
    Effect.map((): Resolved => {
      let consecutiveFailures = 0
      const rates: Array<internal.RatePolicy> = []
      for (const policy of trip) {
        if (policy._tag === "Consecutive") {
          consecutiveFailures = consecutiveFailures === 0
            ? policy.failures
            : Math.min(consecutiveFailures, policy.failures)
          continue
        }
        rates.push({
          _tag: policy._tag,
          threshold: policy.threshold,
          minimumCalls: policy.minimumCalls,
          slowMillis: policy._tag === "SlowCallRate" ? millisOf(policy.slowerThan) : Infinity,
          window: policy.window._tag === "Count"
            ? policy.window
            : {
              _tag: "Time",
              buckets: policy.window.buckets,
              bucketMillis: Math.max(1, Math.floor(millisOf(policy.window.length) / policy.window.buckets))
            }
        })
      }
      return {
        config: {
          consecutive: consecutiveFailures,
          rates,
          timesCalls: rates.some((policy) => policy._tag === "SlowCallRate"),
          slowMillis: Math.min(Infinity, ...rates.map((policy) => policy.slowMillis)),
          maxProbes: raw.halfOpen.maxProbes,
          successThreshold: raw.halfOpen.successThreshold,
          maxProbeMillis: millisOf(raw.halfOpen.maxProbeTime),
          recoveryFactor: options.halfOpen?.recoveryFactor ?? 0
        },
        openDuration: Schedule.isSchedule(raw.openDuration)
          ? raw.openDuration as Schedule.Schedule<unknown, number>
          : millisOf(raw.openDuration as Duration.Input),
        idleMillis: millisOf(raw.keys.idleTimeToLive),
        maxKeys: raw.keys.maxKeys,
        eventBuffer: raw.eventBuffer,
        latencyMillis: raw.latencyBuckets === false
          ? undefined
          : Array.from(new Set(raw.latencyBuckets.map(millisOf))).sort((a, b) => a - b),
        fleet: raw.fleet === false ? false : {
          counting: raw.fleet.counting,
          quorum: raw.fleet.counting === "quorum"
            ? {
              instances: raw.fleet.quorum.instances ?? 0,
              share: raw.fleet.quorum.share ?? 0,
              windowMillis: millisOf(raw.fleet.quorum.window)
            }
            : { instances: 0, share: 0, windowMillis: 0 }
        }
      }
    })
  )
}

// -----------------------------------------------------------------------------
// constructors
// -----------------------------------------------------------------------------

const severity = (state: State): number =>
  state === "ForcedOpen" ? 3 : state === "Open" ? 2 : state === "HalfOpen" ? 1 : 0

/**
 * Whether circuits in state `a` are worse off than in state `b`: forced open, then open, then half-open, then the
 * rest (closed, disabled, metrics-only) alike. What picks the circuit that speaks for a keyed breaker.
 *
 * @example
 * ```ts
 * import { CircuitBreaker } from "@effect-resilience/core"
 *
 * CircuitBreaker.isWorse("Open", "HalfOpen") // true
 * CircuitBreaker.isWorse("Disabled", "Closed") // false
 * ```
 *
 * @since 0.2.0
 * @category states
 */
export const isWorse = (a: State, b: State): boolean => severity(a) > severity(b)

// A breaker's state for an alert on its gauge: its default circuit's, unless a key is worse off (a keyed breaker, say
// one circuit per host, may never call its default circuit).
const worstState = (first: internal.Cell, cells: Iterable<internal.Cell>): State => {
  let worst = internal.stateOf(first)
  for (const cell of cells) {
    const state = internal.stateOf(cell)
    if (isWorse(state, worst)) worst = state
  }
  return worst
}

const stateCodes: Record<State, number> = {
  Closed: 0,
  Open: 1,
  HalfOpen: 2,
  ForcedOpen: 3,
  Disabled: 4,
  MetricsOnly: 5
}

/**
 * Makes a circuit breaker. Options are validated with Schema; a bad value fails with `PolicyConfigError`.
 * Made under a `CircuitBreakerRegistry`, the breaker is listed there until its scope closes.
 *
 * **Metrics** (Effect `Metric`s, attribute `breaker`, read when exported so the call path pays nothing):
 * `circuit_breaker_calls_total` (by `outcome`: success, failure, ignored), `circuit_breaker_slow_calls_total`,
 * `circuit_breaker_rejections_total`, `circuit_breaker_transitions_total` (by `to`), `circuit_breaker_state`
 * (0 Closed, 1 Open, 2 HalfOpen, 3 ForcedOpen, 4 Disabled, 5 MetricsOnly: the default circuit's, unless a key is
 * worse off; `perKeyMetrics` adds `circuit_breaker_key_state` by `key`),
 * `circuit_breaker_keys` and the histogram `circuit_breaker_call_duration_seconds` (buckets: `latencyBuckets`).
 *
 * @example
 * ```ts
 * import { CircuitBreaker } from "@effect-resilience/core"
 * import { Effect, Schedule } from "effect"
 *
 * const program = Effect.gen(function*() {
 *   const breaker = yield* CircuitBreaker.make({
 *     name: "payments",
 *     trip: [
 *       CircuitBreaker.consecutive(5),
 *       CircuitBreaker.failureRate({ threshold: 0.5, minimumCalls: 20, window: CircuitBreaker.lastCalls(100) })
 *     ],
 *     // 1s, 2s, 4s ... capped at one minute, jittered so that instances don't probe in lockstep.
 *     openDuration: Schedule.min([Schedule.exponential("1 second"), Schedule.spaced("1 minute")]).pipe(
 *       Schedule.jittered
 *     ),
 *     halfOpen: { maxProbes: 2, successThreshold: 3 }
 *   })
 *   return yield* breaker.protect(Effect.succeed("charged"))
 * }).pipe(Effect.scoped)
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: <A = unknown>(
  options: Options<A>
) => Effect.Effect<CircuitBreaker<A>, PolicyConfigError, Scope.Scope> = Effect
  .fnUntraced(function*<A>(options: Options<A>) {
    const { config, eventBuffer, fleet, idleMillis, latencyMillis, maxKeys, openDuration } = yield* resolve(options)
    const name = options.name
    const isFailure = options.isFailure
    const isDefectFailure = options.isDefectFailure
    const isFailureResult = options.isFailureResult as ((value: unknown) => boolean) | undefined
    const context = yield* Effect.context<never>()
    const registry = Context.getOption(context, RegistryService)
    const fleetService = fleet === false ? Option.none() : Context.getOption(context, BreakerFleet.BreakerFleet)
    const link = new fleetLink.Link()
    const globalCounting = fleet !== false && fleet.counting === "global" && Option.isSome(fleetService)
    const hub = yield* PubSub.sliding<Transition>(eventBuffer)
    yield* Effect.addFinalizer(() => PubSub.shutdown(hub))

    // Breaker-wide totals behind the exported metrics; per-key figures live in the cells.
    const totals = { success: 0, failure: 0, ignored: 0, slow: 0, rejected: 0 }
    const latency = latencyMillis === undefined ? undefined : new internal.Latency(latencyMillis)
    const transitionsTo: Record<State, number> = {
      Closed: 0,
      Open: 0,
      HalfOpen: 0,
      ForcedOpen: 0,
      Disabled: 0,
      MetricsOnly: 0
    }

    // Transitions happen inside synchronous steps; they queue here and `flush` publishes them right after.
    let pending: Array<Transition> = []
    const changed = Option.isSome(registry) ? registry.value.changed : undefined
    const emit: internal.Emit = (cell, from, to, reason, at, shadow) => {
      // Out of Open or HalfOpen, or a mode's change: the key may now be one the cap evicts first (see `Keys`).
      if (to !== "Open" && to !== "HalfOpen") keys.reconsider()
      transitionsTo[to]++
      changed?.()
      pending.push({ breaker: name, key: cell.key, from, to, reason, at, generation: cell.generation, shadow })
      link.transition(cell, to, reason, at, shadow)
    }
    // Taken and published in one step: a caller interrupted in between would lose the batch. Both hubs slide, so
    // publishing never waits.
    const flush: Effect.Effect<void> = Effect.uninterruptible(Effect.suspend(() => {
      if (pending.length === 0) return Effect.void
      const batch = pending
      pending = []
      const local = PubSub.publishAll(hub, batch)
      return Option.isSome(registry) ? Effect.andThen(local, registry.value.publish(batch)) : local
    }))
    const thenFlush = <X, E, R>(effect: Effect.Effect<X, E, R>): Effect.Effect<X, E, R> =>
      pending.length === 0 ? effect : Effect.andThen(flush, effect)

    // Keys. The default circuit is held directly so that the unkeyed path skips the map.
    const keys = new Keys(
      yield* Clock.currentTimeMillis,
      idleMillis,
      maxKeys,
      config.maxProbeMillis,
      options.perKeyMetrics === true
        ? (cell) =>
          metrics.registerUnsafe(
            context,
            metrics.gauge(
              "circuit_breaker_key_state",
              "State of one key",
              { breaker: name, key: cell.key },
              () => stateCodes[internal.stateOf(cell)]
            )
          )
        : undefined,
      (key) => link.evicted(key)
    )
    const defaultCell = keys.defaultCell

    // Open durations. A fixed duration needs no effect; a schedule is replayed against a simulated clock so that
    // `upTo` and `during` measure time spent open.
    const openMillisFor: (opening: number) => Effect.Effect<number> = typeof openDuration === "number"
      ? () => Effect.succeed(openDuration)
      : (opening) =>
        Effect.gen(function*() {
          const step = yield* Schedule.toStep(openDuration)
          let now = yield* Clock.currentTimeMillis
          let delay = 0
          for (let attempt = 1; attempt <= opening; attempt++) {
            const result = yield* Effect.exit(step(now, attempt))
            if (Exit.isSuccess(result)) {
              delay = Duration.toMillis(result.value[1])
              now += delay
              continue
            }
            // An ended schedule keeps its last delay. One that failed otherwise has a bug (the user's code threw):
            // the circuit still opens, as long as the last delay or, with none yet, the default, and the log says so.
            if (!Pull.isDoneCause(result.cause)) {
              if (attempt === 1) delay = defaultOpenMillis
              yield* Effect.logError(
                `Circuit breaker "${name}": its openDuration schedule failed at opening ${attempt}; open for ${delay} ms`,
                result.cause
              )
            }
            break
          }
          return delay
        })
    const fixedOpenMillis = typeof openDuration === "number" ? openDuration : -1
    const fixedOpen = Effect.succeed(fixedOpenMillis)

    // Recording. A success costs one `undefined` check for `isFailureResult`.
    const classify = (exit: Exit.Exit<unknown, unknown>): number => {
      if (exit._tag === "Success") {
        return isFailureResult !== undefined && isFailureResult(exit.value) ? internal.FAILURE : internal.SUCCESS
      }
      const reasons = exit.cause.reasons
      for (let i = 0; i < reasons.length; i++) {
        const reason = reasons[i]
        if (reason._tag === "Fail") {
          // A value a policy's `isFailureResult` classified counts whatever `isFailure` says.
          return isLocalRejection(reason.error) ||
              (isFailure !== undefined && !isClassifiedResult(reason.error) && !isFailure(reason.error))
            ? internal.IGNORED
            : internal.FAILURE
        }
        if (reason._tag === "Die") {
          return isDefectFailure === undefined || isDefectFailure(reason.defect) ? internal.FAILURE : internal.IGNORED
        }
      }
      // Interruption only.
      return internal.IGNORED
    }
    const classifyThrown = (defect: unknown): number => {
      try {
        return classify(Exit.die(defect))
      } catch {
        return internal.FAILURE
      }
    }

    const recorder: fleetLink.Recorder = {
      config,
      emit,
      flush,
      classify,
      classifyThrown,
      countTotals: (cell, outcome, exit, now, duration) => {
        if (outcome === internal.SUCCESS) totals.success++
        else if (outcome === internal.FAILURE) {
          totals.failure++
          rememberFailure(cell, now, exit)
        } else {
          totals.ignored++
          return
        }
        if (latency !== undefined) latency.observe(duration)
      },
      countSlow: (calls) => {
        totals.slow += calls
      },
      openMillis: (cell, now) => fixedOpenMillis >= 0 ? fixedOpen : openMillisFor(internal.nextOpening(cell, now))
    }

    // A trip made here, outside a fleet (whose shared clock decides when its circuits half-open), notes the monotonic
    // time: a wall clock stepped back then cannot hold the circuit open past its open time (see `boundOpenTime`).
    const markTrip = (cell: internal.Cell, generation: number, clock: Clock.Clock): void => {
      if (cell.generation !== generation && cell.phase === "Open" && link.membership === undefined) {
        cell.markOpened(clock)
      }
    }

    const settle = (
      cell: internal.Cell,
      generation: number,
      probe: number,
      startedAt: number,
      measured: number,
      clock: Clock.Clock,
      exit: Exit.Exit<unknown, unknown>,
      outcome: number
    ): Effect.Effect<void> | undefined => {
      // The clock is read again unless the outcome can neither land in a window nor move the state nor be timed: a
      // success on a closed circuit with only a consecutive policy and no histogram just resets the streak.
      const now = latency === undefined && outcome === internal.SUCCESS && config.rates.length === 0 &&
          cell.phase === "Closed"
        ? startedAt
        : clock.currentTimeMillisUnsafe()
      // Monotonic under a slow-call policy; otherwise measured here, on the wall clock, and never below 0.
      const took = measured >= 0 ? measured : Math.max(0, now - startedAt)
      recorder.countTotals(cell, outcome, exit, now, took)
      const slowBefore = cell.slowCalls
      if (fixedOpenMillis < 0 && internal.mayTrip(cell, config, generation, outcome)) {
        // Only a call that may open the circuit pays for the schedule. If the cell moves on meanwhile, the
        // generation check in `record` drops this outcome.
        return Effect.flatMap(openMillisFor(internal.nextOpening(cell, now)), (openMillis) => {
          internal.record(cell, config, generation, probe, outcome, took, now, openMillis, emit)
          totals.slow += cell.slowCalls - slowBefore
          markTrip(cell, generation, clock)
          return flush
        })
      }
      internal.record(cell, config, generation, probe, outcome, took, now, fixedOpenMillis, emit)
      totals.slow += cell.slowCalls - slowBefore
      markTrip(cell, generation, clock)
      return pending.length === 0 ? undefined : flush
    }

    // A rejection says nothing that changes within a millisecond of one generation, so under load (when rejections
    // come thousands per second) one error serves them all: building it is most of a rejection's cost.
    let rejectedCell: internal.Cell | undefined
    let rejectedGeneration = -1
    let rejectedVerdict = 0
    let rejectedAt = -1
    let rejection: Effect.Effect<never, Rejection> = Effect.never
    const reject = (cell: internal.Cell, verdict: number, now: number): Effect.Effect<never, Rejection> => {
      totals.rejected++
      if (
        cell !== rejectedCell || cell.generation !== rejectedGeneration || verdict !== rejectedVerdict ||
        (now !== rejectedAt && verdict === internal.REJECT_OPEN)
      ) {
        rejectedCell = cell
        rejectedGeneration = cell.generation
        rejectedVerdict = verdict
        rejectedAt = now
        rejection = Effect.fail(makeRejection(name, cell.key, verdict, cell.openUntil - now))
      }
      return rejection
    }

    // Admission: what a run needs of this breaker (see `BreakerRun`).
    const host: Host = {
      keys,
      config,
      timed: config.timesCalls,
      emit,
      link,
      globalCounting,
      recorder,
      reject,
      thenFlush,
      busy: () => pending.length > 0,
      settle
    }

    const protect = <B extends A, E, R>(self: Effect.Effect<B, E, R>) => guard(new BreakerRun(host, self, defaultKey))
    const protectKey: CircuitBreaker<A>["protectKey"] = dual(
      2,
      <B extends A, E, R>(self: Effect.Effect<B, E, R>, key: string) => guard(new BreakerRun(host, self, key))
    )

    // Reads and controls. Each is one synchronous step followed by a flush of what it emitted.
    const withNow = <X>(f: (now: number, clock: Clock.Clock) => X): Effect.Effect<X> =>
      Effect.clockWith((clock) => {
        const result = f(clock.currentTimeMillisUnsafe(), clock)
        return pending.length === 0 ? Effect.succeed(result) : Effect.as(flush, result)
      })

    // Reads look at a key without creating it: an unknown key reads as a fresh circuit.
    const look = (key: string, now: number, clock: Clock.Clock): internal.Cell => {
      const cell = keys.peek(key, now)
      internal.refresh(cell, config, now, emit, clock)
      return cell
    }

    // Applies a control to one key or, without a key, to every key and the keys created later.
    const setModeAll = (
      key: string | undefined,
      mode: internal.Mode,
      action: "forceOpen" | "disable" | "metricsOnly" | "reset",
      now: number,
      reason?: Reason
    ): internal.Cell => {
      if (key !== undefined) {
        const cell = keys.use(key, now)
        internal.setMode(cell, mode, action, now, emit, reason)
        return cell
      }
      keys.setBaseMode(mode)
      for (const cell of keys.all()) internal.setMode(cell, mode, action, now, emit, reason)
      return defaultCell
    }

    const control =
      (mode: internal.Mode, action: "forceOpen" | "disable" | "metricsOnly" | "reset") =>
      (key?: string): Effect.Effect<void> =>
        withNow((now) => {
          const cell = setModeAll(key, mode, action, now)
          link.manual(key, cell, { _tag: "Manual", action }, now)
        })

    // A key it does not hold, in a state it would not keep (closed, an opening that elapsed), stays fresh to it, as
    // after an idle eviction: what the fleet keeps of a keyed breaker stays within what the breaker keeps.
    const applyFleet = (key: string | undefined, state: BreakerFleet.FleetState): Effect.Effect<boolean> =>
      withNow((now) => {
        if (key !== undefined && !keys.holds(key) && !keys.keeps(state.state, now)) return false
        const reason: Reason = { _tag: "Fleet", origin: state.origin, cause: state.reason }
        link.apply(() => {
          if (key === undefined) setModeAll(undefined, state.state.mode, actionOf(state.state.mode), now, reason)
          else internal.restore(keys.use(key, now), config, state.state, now, emit, reason)
        })
        return true
      })

    const restoreContext = { kind: "restore of circuit breaker", policy: name }
    const stateKey = (key: string) => withNow((now, clock) => internal.stateOf(look(key, now, clock)))
    const snapshotKey = (key: string) => withNow((now, clock) => toSnapshot(name, look(key, now, clock), config, now))
    const breaker: CircuitBreaker<A> = {
      [TypeId]: TypeId,
      name,
      protect,
      protectKey,
      state: stateKey(defaultKey),
      stateKey,
      snapshot: snapshotKey(defaultKey),
      snapshotKey,
      snapshots: withNow((now, clock) =>
        keys.all().map((cell) => {
          internal.refresh(cell, config, now, emit, clock)
          return toSnapshot(name, cell, config, now)
        })
      ),
      transitions: Stream.fromPubSub(hub),
      forceOpen: control("ForcedOpen", "forceOpen"),
      disable: control("Disabled", "disable"),
      metricsOnly: control("MetricsOnly", "metricsOnly"),
      reset: control("Live", "reset"),
      export: (key = defaultKey) => withNow((now, clock) => internal.persist(look(key, now, clock))),
      // Checked first: a state read from a store without its Schema could otherwise leave the key in a phase or mode
      // the machine does not know (every call then dies), or an open one closed.
      restore: (state, key = defaultKey) =>
        Effect.flatMap(Effect.orDie(decode(PersistedState, state, restoreContext)), (valid) =>
          withNow((now) => {
            const cell = keys.use(key, now)
            const reason: Reason = { _tag: "Manual", action: "restore" }
            internal.restore(cell, config, valid, now, emit, reason)
            link.manual(key, cell, reason, now)
          }))
    }

    internal.stateReaders.set(breaker, (fiber) => internal.stateNow(defaultCell, fiber))
    admissions.set(breaker, {
      // Checked before anything is made: a circuit that is not closed takes the guarded path with nothing allocated.
      admit: (fiber) => admitsClosed(host) ? new BreakerCall(host, defaultKey).admitClosed(fiber) : undefined
    })

    // Listed first: a name already taken fails here, before this breaker's series replace the live one's (Effect's
    // metric registry keeps the last series of an identity) and before it joins the fleet.
    yield* enlist("circuit breaker", name, (listing) => listing.add(breaker), (listing) => listing.remove(breaker))

    // Pull-based metrics: the registry reads these counters when it exports, so calls never touch a metric.
    const by = { breaker: name }
    yield* metrics.register([
      metrics.counter("circuit_breaker_calls_total", callsHelp, { ...by, outcome: "success" }, () => totals.success),
      metrics.counter("circuit_breaker_calls_total", callsHelp, { ...by, outcome: "failure" }, () => totals.failure),
      metrics.counter("circuit_breaker_calls_total", callsHelp, { ...by, outcome: "ignored" }, () => totals.ignored),
      metrics.counter(
        "circuit_breaker_slow_calls_total",
        "Calls slower than a slow-call policy",
        by,
        () => totals.slow
      ),
      metrics.counter("circuit_breaker_rejections_total", "Calls rejected without running", by, () => totals.rejected),
      ...states.map((to) =>
        metrics.counter(
          "circuit_breaker_transitions_total",
          "State transitions, by target state",
          { ...by, to },
          () => transitionsTo[to]
        )
      ),
      metrics.gauge(
        "circuit_breaker_state",
        "State of the breaker: its default circuit's, unless a key is worse off",
        by,
        () => stateCodes[worstState(defaultCell, keys.all())]
      ),
      metrics.gauge("circuit_breaker_keys", "Keys held, besides the default circuit", by, () => keys.cells.size),
      ...(latency === undefined ? [] : [latencySeries(by, latency)])
    ])
    yield* Effect.addFinalizer(() => Effect.sync(() => keys.close()))

    if (Option.isSome(fleetService) && fleet !== false) {
      link.membership = yield* fleetService.value.join({
        breaker: name,
        counting: fleet.counting,
        quorum: fleet.quorum,
        trip: config,
        apply: applyFleet
      })
    }

    return breaker
  })

// What a run needs of its breaker. One object per breaker, all of one shape, so that the run's code stays
// monomorphic however many breakers a program makes.
interface Host {
  readonly keys: Keys
  readonly config: internal.Config
  /** Whether calls are timed on the monotonic clock: with a slow-call policy only (see the module's gotchas). */
  readonly timed: boolean
  readonly emit: internal.Emit
  readonly link: fleetLink.Link
  readonly globalCounting: boolean
  readonly recorder: fleetLink.Recorder
  readonly reject: (cell: internal.Cell, verdict: number, now: number) => Effect.Effect<never, Rejection>
  readonly thenFlush: <X, E, R>(effect: Effect.Effect<X, E, R>) => Effect.Effect<X, E, R>
  /** Whether events wait to be published: an admission then takes the path that publishes them first. */
  readonly busy: () => boolean
  readonly settle: (
    cell: internal.Cell,
    generation: number,
    probe: number,
    startedAt: number,
    /** The call's monotonic duration under a slow-call policy, -1 otherwise. */
    measured: number,
    clock: Clock.Clock,
    exit: Exit.Exit<unknown, unknown>,
    outcome: number
  ) => Effect.Effect<void> | undefined
}

/**
 * Whether a call on the default circuit is admitted with no effect and no rejection possible (see `Admission`): the
 * circuit closed and not forced open, no fleet, no events waiting to be published.
 */
const admitsClosed = (host: Host): boolean => {
  const cell = host.keys.defaultCell
  return cell.phase === "Closed" && cell.mode !== "ForcedOpen" && host.link.membership === undefined && !host.busy()
}

// What a call the breaker admitted settles with. A class at module level, not per breaker, for the same reason as
// `Host`.
class BreakerCall implements Admitted {
  readonly host: Host
  readonly key: string
  cell: internal.Cell | undefined = undefined
  generation = -1
  probe = -1
  startedAt = 0
  /** Monotonic milliseconds at admission, for the call's duration; read only under a slow-call policy. */
  startedMono = 0
  clock: Clock.Clock | undefined = undefined
  lease: string | undefined = undefined
  epoch = 0
  constructor(host: Host, key: string) {
    this.host = host
    this.key = key
  }

  /** Admits the call on the default circuit, which `admitsClosed` found closed: a counter, never a rejection. */
  admitClosed(fiber: Fiber.Fiber<unknown, unknown>): this {
    const host = this.host
    const cell = host.keys.defaultCell
    const clock = this.clock = fiber.getRef(Clock.Clock)
    const now = clock.currentTimeMillisUnsafe()
    this.cell = cell
    internal.admit(cell, host.config, now, host.emit, clock)
    this.generation = cell.generation
    this.startedAt = now
    if (host.timed) this.startedMono = monotonicMillis(clock)
    return this
  }

  exit(_fiber: Fiber.Fiber<unknown, unknown>, exit: Exit.Exit<unknown, unknown>): Effect.Effect<void> | undefined {
    if (this.generation < 0) return undefined
    let outcome: number
    try {
      outcome = this.host.recorder.classify(exit)
    } catch (defect) {
      // A predicate of the user's (`isFailureResult`, `isFailure`, `isDefectFailure`) threw. The call still settles,
      // so that its probe slot comes back, as the defect it is; the caller gets the defect too, after its own exit.
      const died = Exit.die(defect)
      const after = this.settleAs(died, this.host.recorder.classifyThrown(defect))
      return after === undefined ? died : Effect.andThen(after, died)
    }
    return this.settleAs(exit, outcome)
  }

  private settleAs(exit: Exit.Exit<unknown, unknown>, outcome: number): Effect.Effect<void> | undefined {
    const { generation, host, probe, startedAt } = this
    const clock = this.clock!
    const cell = this.cell!
    // Under a slow-call policy, the duration is monotonic: a wall clock stepped forward (NTP) would make every call in
    // flight slow, and trip the policy. Otherwise -1: settling measures it on the wall clock, which it reads anyway.
    const measured = host.timed ? monotonicMillis(clock) - this.startedMono : -1
    // A leased probe settles with the fleet; under global counting every other outcome is recorded there.
    if (this.lease !== undefined || (host.globalCounting && probe < 0)) {
      return fleetLink.settle(
        host.recorder,
        cell,
        generation,
        probe,
        startedAt,
        measured,
        clock,
        exit,
        outcome,
        this.ask()
      )
    }
    return host.settle(cell, generation, probe, startedAt, measured, clock, exit, outcome)
  }

  // How the fleet hears of the outcome. Made only for a call that settles there: the closures' context would
  // otherwise be allocated on every settlement.
  private ask(): fleetLink.Ask {
    const { key, lease } = this
    const membership = this.host.link.membership!
    const admittedAt = this.epoch
    return lease !== undefined
      ? (counted, _, now, openMillis) =>
        membership.settleProbe(key, lease, fleetLink.verdictOf(counted), now, openMillis)
      : (counted, duration, now, openMillis) =>
        // Ignored outcomes count nowhere: no round trip for them.
        counted === internal.IGNORED
          ? Effect.succeed(true)
          : membership.record(
            key,
            admittedAt,
            fleetLink.verdictOf(counted) as "success" | "failure",
            duration,
            now,
            openMillis
          )
  }
}

// One run of a protected call: admission and settlement (internal/guard.ts pairs them whatever the nesting).
class BreakerRun<X, E, R> extends BreakerCall implements Run<X, E | Rejection, R> {
  readonly self: Effect.Effect<X, E, R>
  constructor(host: Host, self: Effect.Effect<X, E, R>, key: string) {
    super(host, key)
    this.self = self
  }

  enter(fiber: Fiber.Fiber<unknown, unknown>): Effect.Effect<X, E | Rejection, R> {
    this.generation = -1
    this.probe = -1
    this.lease = undefined
    const host = this.host
    const clock = this.clock = fiber.getRef(Clock.Clock)
    const now = clock.currentTimeMillisUnsafe()
    const cell = this.cell = host.keys.use(this.key, now)
    const verdict = internal.admit(cell, host.config, now, host.emit, clock)
    if (verdict < 0) return host.thenFlush(host.reject(cell, verdict, now))
    if (verdict !== internal.ADMIT_UNCOUNTED) {
      this.generation = cell.generation
      this.startedAt = now
      if (host.timed) this.startedMono = monotonicMillis(clock)
      if (verdict === internal.ADMIT_PROBE) {
        this.probe = internal.lastProbeId(cell)
        if (host.link.membership !== undefined && cell.mode === "Live") return host.thenFlush(this.leased(cell, now))
      } else if (host.globalCounting) {
        this.epoch = host.link.membership!.epoch(this.key)
      }
    }
    return host.thenFlush(this.self)
  }

  // In a fleet, a probe also needs one of the fleet's leases, so that the fleet sends `maxProbes`.
  leased(cell: internal.Cell, now: number): Effect.Effect<X, E | Rejection, R> {
    const { host, probe } = this
    return Effect.flatMap(host.link.membership!.lease(this.key, now), (answer): Effect.Effect<X, E | Rejection, R> => {
      if (answer._tag === "Granted") this.lease = answer.lease
      if (answer._tag !== "Denied") return this.self
      internal.releaseProbe(cell, host.config, this.generation, probe)
      this.generation = -1
      cell.rejections++
      return host.reject(cell, internal.REJECT_HALF_OPEN, now)
    })
  }

  fork(): BreakerRun<X, E, R> {
    return new BreakerRun(this.host, this.self, this.key)
  }
}

const callsHelp = "Calls recorded, by outcome"

// The histogram in Effect's `HistogramState` (cumulative buckets, seconds), read from the plain counts on export.
const latencySeries = (attributes: Record<string, string>, latency: internal.Latency): metrics.Series => {
  const boundaries = latency.bounds.map((millis) => millis / 1000)
  return {
    metric: Metric.histogram("circuit_breaker_call_duration_seconds", {
      description: "Duration of the calls that ran and counted (success or failure)",
      boundaries
    }),
    attributes,
    get: (): Metric.HistogramState => {
      const buckets: Array<[number, number]> = []
      let cumulative = 0
      for (let i = 0; i < boundaries.length; i++) {
        cumulative += latency.counts[i]
        buckets.push([boundaries[i], cumulative])
      }
      return {
        buckets,
        count: latency.count,
        min: latency.count === 0 ? 0 : latency.min / 1000,
        max: latency.max / 1000,
        sum: latency.sum / 1000
      }
    }
  }
}

const rememberFailure = (cell: internal.Cell, now: number, exit: Exit.Exit<unknown, unknown>): void => {
  // A success that `isFailureResult` counts as a failure: the value is the caller's, so only its kind is kept.
  if (exit._tag === "Success") return internal.rememberFailure(cell, now, "FailureResult", "")
  const error = Cause.squash(exit.cause)
  let tag = "Unknown"
  let message = ""
  if (typeof error === "object" && error !== null) {
    const e = error as { readonly _tag?: unknown; readonly name?: unknown; readonly message?: unknown }
    tag = typeof e._tag === "string" ? e._tag : typeof e.name === "string" ? e.name : "Object"
    message = typeof e.message === "string" ? e.message : ""
  } else {
    tag = typeof error
    message = String(error)
  }
  internal.rememberFailure(cell, now, tag, message)
}

// Rejections are built without capturing a stack: a fast-fail path must stay fast, and the stack of a rejection
// only says where the breaker is, which its fields already do.
const makeRejection = (breaker: string, key: string, verdict: number, remaining: number): CircuitBreakerError =>
  stackless(() =>
    new CircuitBreakerError({
      reason: verdict === internal.REJECT_HALF_OPEN
        ? new CircuitHalfOpen({ breaker, key }, { disableChecks: true })
        : verdict === internal.REJECT_FORCED
        ? new CircuitForcedOpen({ breaker, key }, { disableChecks: true })
        : new CircuitOpen({ breaker, key, retryAfter: Duration.millis(Math.max(0, remaining)) }, {
          disableChecks: true
        })
    }, { disableChecks: true })
  )

const rateOf = (cell: internal.Cell, config: internal.Config, kind: "FailureRate" | "SlowCallRate"): number => {
  const index = config.rates.findIndex((policy) => policy._tag === kind)
  if (index >= 0 && cell.windows !== null) {
    const window = cell.windows[index]
    const hits = kind === "FailureRate" ? window.failures : window.slow
    return window.calls === 0 ? 0 : hits / window.calls
  }
  const hits = kind === "FailureRate" ? cell.failures : cell.slowCalls
  return cell.calls === 0 ? 0 : hits / cell.calls
}

const toSnapshot = (name: string, cell: internal.Cell, config: internal.Config, now: number): Snapshot => ({
  name,
  key: cell.key,
  state: internal.stateOf(cell),
  circuit: cell.phase,
  generation: cell.generation,
  totalCalls: cell.calls,
  successCount: cell.successes,
  failureCount: cell.failures,
  ignoredCount: cell.ignored,
  slowCallCount: cell.slowCalls,
  rejectedCount: cell.rejections,
  consecutiveFailures: cell.streak,
  tripFailures: internal.tripFailures(cell),
  thresholds: { failures: config.consecutive === 0 ? null : config.consecutive, successes: config.successThreshold },
  window: internal.windowFigures(cell, config),
  failureRate: rateOf(cell, config, "FailureRate"),
  slowCallRate: rateOf(cell, config, "SlowCallRate"),
  stateChanges: cell.stateChanges,
  enteredStateAt: cell.enteredAt,
  // A wall clock stepped back (NTP) would make it negative until it caught up.
  timeInStateMillis: Math.max(0, now - cell.enteredAt),
  openedAt: cell.openedAt < 0 ? null : cell.openedAt,
  retryAfterMillis: cell.mode === "ForcedOpen"
    ? null
    : cell.phase === "Open"
    ? Math.max(0, cell.openUntil - now)
    : null,
  lastFailureAt: cell.lastFailureAt < 0 ? null : cell.lastFailureAt,
  lastCallAt: cell.lastCallAt,
  halfOpen: cell.phase === "HalfOpen" && cell.half !== null
    ? {
      probesInFlight: cell.half.ids.length,
      successes: cell.half.successes,
      successThreshold: config.successThreshold
    }
    : null,
  recentFailures: internal.recentFailures(cell)
})

/**
 * Provides `CircuitBreaker` made with `options`.
 *
 * The breaker in context protects effects of any success type, so its `isFailureResult` reads `unknown` and narrows
 * the value itself (a predicate typed for one response type would be called with whatever a program protects).
 *
 * @example
 * ```ts
 * import { CircuitBreaker } from "@effect-resilience/core"
 * import { Predicate } from "effect"
 *
 * const BreakerLive = CircuitBreaker.layer({
 *   name: "search",
 *   trip: CircuitBreaker.consecutive(3),
 *   isFailureResult: (value) => Predicate.hasProperty(value, "status") && value.status === 503
 * })
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options): Layer.Layer<CircuitBreaker, PolicyConfigError> =>
  Layer.effect(CircuitBreaker, make(options))

/**
 * Describes a transition's reason in words, for logs.
 *
 * @example
 * ```ts
 * import { CircuitBreaker } from "@effect-resilience/core"
 *
 * CircuitBreaker.describeReason({ _tag: "ConsecutiveFailures", failures: 5 }) // "5 consecutive failures"
 * ```
 *
 * @since 0.1.0
 * @category utils
 */
export const describeReason: (reason: Reason) => string = internal.describe

/**
 * Test support: puts a key into `state` at once, so that fallback paths can be tested without driving real
 * failures. `Open` lasts `openFor` (default: one hour); `HalfOpen` is ready for probes.
 *
 * @example
 * ```ts
 * import { CircuitBreaker } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * const program = Effect.gen(function*() {
 *   const breaker = yield* CircuitBreaker.make({ name: "search" })
 *   yield* CircuitBreaker.setState(breaker, "Open")
 *   return yield* breaker.protect(Effect.succeed("live")).pipe(
 *     Effect.catchTag("CircuitBreakerError", () => Effect.succeed("fallback"))
 *   ) // "fallback"
 * }).pipe(Effect.scoped)
 * ```
 *
 * @since 0.1.0
 * @category testing
 */
export const setState = (
  breaker: CircuitBreaker<never>,
  state: State,
  options?: { readonly key?: string | undefined; readonly openFor?: Duration.Input | undefined }
): Effect.Effect<void> => {
  const key = options?.key
  switch (state) {
    case "ForcedOpen":
      return breaker.forceOpen(key ?? defaultKey)
    case "Disabled":
      return breaker.disable(key ?? defaultKey)
    case "MetricsOnly":
      return breaker.metricsOnly(key ?? defaultKey)
    case "Closed":
      return breaker.reset(key ?? defaultKey)
  }
  return Effect.flatMap(Clock.currentTimeMillis, (now) => {
    const openFor = millisOf(options?.openFor ?? "1 hour")
    return breaker.restore({
      mode: "Live",
      phase: state,
      openedAt: state === "Open" ? now : now - openFor,
      openUntil: state === "Open" ? now + openFor : now,
      openings: 1,
      lastOpenMillis: openFor,
      closedAt: now
    }, key ?? defaultKey)
  })
}
