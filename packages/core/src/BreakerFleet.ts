/**
 * Breakers of the same name in several instances acting as one: the contract between a `CircuitBreaker` and the
 * store that shares its state (`RedisFleet` in `@effect-resilience/redis`).
 *
 * A breaker made while a `BreakerFleet` is in context joins it, unless its options say `fleet: false`. Without
 * one, breakers are solo and nothing here runs. Users pick a counting mode per breaker; implementers of a fleet
 * implement `BreakerFleet` and see the breaker through `Member`.
 *
 * **Details**
 *
 * - `local` counting (the default): each instance counts its own calls and trips on its own; its transitions (a trip,
 *   a close after probes, a manual control) are announced to the fleet and applied by every other instance. The call
 *   path never waits for the fleet.
 * - `global` counting: each recorded outcome is counted by the fleet in one atomic step (one round trip per call,
 *   never two), and the fleet decides the trips; admission still reads the local mirror, so a rejection costs no
 *   round trip.
 * - `quorum` counting: each instance trips on its own (and rejects on its own); the fleet opens for everybody only
 *   when at least `instances` instances, or a `share` of the live ones, have it open within `window`.
 * - Half-open across the fleet: once a fleet-wide opening elapses, each probe first takes a lease from the fleet, so
 *   the fleet sends `maxProbes` probes in all; the fleet counts their outcomes by generation, so a late outcome from
 *   an earlier generation changes nothing.
 * - Whatever the fleet cannot be reached for, the breaker decides locally, as a solo breaker would; the fleet
 *   implementation resyncs when it is back.
 * - With gradual recovery (`recoveryFactor`), a breaker admits its share of calls as usual, and each admitted call
 *   also needs one of the fleet's `maxProbes` leases: the fleet bounds how many recovery calls run at once.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import type * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type { PersistedState, Reason } from "./CircuitBreaker.ts"

/**
 * How the instances of a fleet count calls (see the module docs).
 *
 * @example
 * ```ts
 * import type { BreakerFleet } from "@effect-resilience/core"
 *
 * const exact: BreakerFleet.Counting = "global"
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type Counting = "local" | "global" | "quorum"

/**
 * A breaker's fleet options (`CircuitBreaker.Options["fleet"]`).
 *
 * @example
 * ```ts
 * import type { BreakerFleet } from "@effect-resilience/core"
 *
 * // Open everywhere once two instances, or half of the live ones, have tripped within 30 seconds.
 * const options: BreakerFleet.Options = {
 *   counting: "quorum",
 *   quorum: { instances: 2, share: 0.5, window: "30 seconds" }
 * }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** Default: `"local"`. */
  readonly counting?: Counting | undefined
  /** For `quorum` counting: give `instances`, `share`, or both (either is enough). Default window: 1 minute. */
  readonly quorum?: {
    /** Open for the fleet once this many instances have it open. */
    readonly instances?: number | undefined
    /** Open for the fleet once this share (0 to 1) of the live instances have it open. */
    readonly share?: number | undefined
    /** How long an instance's trip counts towards the quorum. */
    readonly window?: Duration.Input | undefined
  } | undefined
}

/**
 * A key's state as the fleet holds it. `epoch` grows with every change the fleet accepts; an instance applies a
 * state only when its epoch is newer than the last it saw.
 *
 * @example
 * ```ts
 * import type { BreakerFleet } from "@effect-resilience/core"
 *
 * const openUntil = (state: BreakerFleet.FleetState) => state.state.phase === "Open" ? state.state.openUntil : null
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface FleetState {
  readonly epoch: number
  readonly state: PersistedState
  /** The instance where the change happened. */
  readonly origin: string
  /** Why it happened there. */
  readonly reason: Reason
}

/**
 * A breaker's trip policy as plain data, for fleets that count calls themselves (`global`).
 *
 * @example
 * ```ts
 * import type { BreakerFleet } from "@effect-resilience/core"
 *
 * const usesWindows = (policy: BreakerFleet.TripConfig) => policy.rates.length > 0
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface TripConfig {
  /** Consecutive failures that trip; 0 when there is no consecutive policy. */
  readonly consecutive: number
  readonly rates: ReadonlyArray<{
    readonly _tag: "FailureRate" | "SlowCallRate"
    readonly threshold: number
    readonly minimumCalls: number
    /** A call is slow when strictly slower than this (SlowCallRate). */
    readonly slowMillis: number
    readonly window:
      | { readonly _tag: "Count"; readonly size: number }
      | { readonly _tag: "Time"; readonly buckets: number; readonly bucketMillis: number }
  }>
  readonly maxProbes: number
  readonly successThreshold: number
  readonly maxProbeMillis: number
}

/**
 * What a breaker tells the fleet about itself when it joins.
 *
 * @example
 * ```ts
 * import type { BreakerFleet } from "@effect-resilience/core"
 *
 * const describe = (member: BreakerFleet.Member) => `${member.breaker} (${member.counting} counting)`
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Member {
  readonly breaker: string
  readonly counting: Counting
  /** Resolved quorum options (`quorum` counting; zeros otherwise). */
  readonly quorum: { readonly instances: number; readonly share: number; readonly windowMillis: number }
  readonly trip: TripConfig
  /**
   * Applies a fleet state to a key (`undefined`: breaker-wide, as a manual control without a key) without
   * announcing it back. Its transitions carry the reason `{ _tag: "Fleet", origin, cause }`. `false` when the
   * breaker does not hold the key and the state is one it would not keep (closed, or an opening that elapsed, in the
   * breaker-wide mode): the key stays fresh to it, and the fleet need not remember the state's epoch.
   */
  readonly apply: (key: string | undefined, state: FleetState) => Effect.Effect<boolean>
}

/**
 * A change made on this instance, for the fleet: a trip (`to` is `Open`), a close after local probes, or a manual
 * control (`key` is `undefined` for a breaker-wide control).
 *
 * @example
 * ```ts
 * import type { BreakerFleet } from "@effect-resilience/core"
 *
 * const isManual = (change: BreakerFleet.Change) => change.kind === "manual"
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Change {
  readonly key: string | undefined
  readonly kind: "trip" | "close" | "manual"
  readonly state: PersistedState
  readonly reason: Reason
  /** Epoch milliseconds, from `Clock`. */
  readonly at: number
}

/**
 * The fleet's answer to a probe asking for a lease: `Granted` (run it, and settle it with the lease), `Denied` (the
 * fleet's probes are all out: reject the call), or `Local` (the fleet is not probing this key, or cannot be
 * reached: decide locally).
 *
 * @example
 * ```ts
 * import type { BreakerFleet } from "@effect-resilience/core"
 *
 * const runs = (lease: BreakerFleet.Lease) => lease._tag !== "Denied"
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type Lease =
  | { readonly _tag: "Granted"; readonly lease: string }
  | { readonly _tag: "Denied" }
  | { readonly _tag: "Local" }

/**
 * What the fleet offers a breaker that joined it. The breaker calls these only where the fleet has a say: `announce`
 * on a transition of its own, `lease` and `settleProbe` in `HalfOpen`, `record` for every outcome with `global`
 * counting. Each effect answers `false` or `Local` when the fleet could not be reached, and the breaker then
 * decides locally.
 *
 * @example
 * ```ts
 * import type { BreakerFleet } from "@effect-resilience/core"
 *
 * const knows = (membership: BreakerFleet.Membership, key: string) => membership.epoch(key) > 0
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Membership {
  /** The newest fleet epoch this instance has seen for the key (0 before any). */
  readonly epoch: (key: string) => number
  /**
   * The breaker evicted the key's circuit (idle, or at its `maxKeys`): the fleet may forget the key's epoch, so that
   * what it keeps per breaker stays within what the breaker keeps. A later state of the key, of any epoch, is then
   * new to it.
   */
  readonly forget?: ((key: string) => void) | undefined
  /** Queues a local change for the fleet; never waits. */
  readonly announce: (change: Change) => void
  readonly lease: (key: string, now: number) => Effect.Effect<Lease>
  /** Settles a leased probe; `true` when the fleet counted it (or fenced it off as late). */
  readonly settleProbe: (
    key: string,
    lease: string,
    outcome: "success" | "failure" | "ignored",
    now: number,
    openMillis: number
  ) => Effect.Effect<boolean>
  /** Counts one outcome of a call admitted at `epoch` (`global` counting); `true` when the fleet counted it. */
  readonly record: (
    key: string,
    epoch: number,
    outcome: "success" | "failure",
    durationMillis: number,
    now: number,
    openMillis: number
  ) => Effect.Effect<boolean>
}

/**
 * The service: a fleet that breakers join. `RedisFleet.layer` provides one on Redis.
 *
 * @example
 * ```ts
 * import { BreakerFleet, CircuitBreaker } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * // Made where a fleet layer is provided, the breaker shares its state with the other instances.
 * const program = Effect.gen(function*() {
 *   const fleet = yield* BreakerFleet.BreakerFleet
 *   const breaker = yield* CircuitBreaker.make({ name: "search", fleet: { counting: "local" } })
 *   return `${breaker.name} on ${fleet.instance}`
 * }).pipe(Effect.scoped)
 * ```
 *
 * @since 0.1.0
 * @category services
 */
export class BreakerFleet extends Context.Service<BreakerFleet, {
  /** This instance's name in the fleet. */
  readonly instance: string
  /** Joins a breaker for the scope's lifetime: loads what the fleet holds for it, and applies it. */
  readonly join: (member: Member) => Effect.Effect<Membership, never, Scope.Scope>
}>()("@effect-resilience/core/BreakerFleet") {}
