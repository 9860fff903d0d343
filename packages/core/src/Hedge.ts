/**
 * Hedged calls: when an attempt is slow, start another one alongside it and take the first success, cutting the
 * tail latency a few slow replicas or requests cause.
 *
 * **Details**
 *
 * - A call starts its primary attempt. If it has no answer `delay` later, a hedge (another run of the same effect)
 *   starts alongside; then another `delay` after that, up to `maxHedges` hedges. Times are on the monotonic time of
 *   the `Clock` in the context the policy was made in: under `TestClock`, hedge k starts at exactly k × `delay`. An
 *   attempt that succeeds in that very instant may come just before the hedge starts or just after (the hedge is
 *   then interrupted at once).
 * - The first success wins. The other attempts are interrupted, and the caller gets the value once they have
 *   stopped: at once, unless one of them has a slow finalizer or is in an uninterruptible region.
 * - A failure does not end the race while another attempt is running, nor does it start a hedge early (retrying
 *   failures is Retry's job: put Retry outside the hedge, as `Policy` does). When every attempt started has failed,
 *   the call fails with the cause of the last one to fail, and no further hedge starts. An attempt turned away
 *   before it reached the dependency (a `BulkheadFull`, a rate limit) gives way to an earlier one that failed there:
 *   the call fails as the dependency did, and a circuit breaker outside counts it.
 * - A call whose primary attempt finishes without suspending costs one fiber and nothing else: no clock read, no
 *   timer. Calls that suspend share one timer fiber per policy, which runs only while such calls are in flight.
 * - Interrupting the caller interrupts every attempt, and waits for them to stop.
 * - Each attempt runs on a fiber of its own, in the caller's context.
 *
 * **Gotchas**
 *
 * - Hedges run the effect again while the first run goes on: hedge only what is safe to run twice at once, such as
 *   reads or writes with an idempotency key.
 * - Hedging adds load exactly when a dependency is slow: set `delay` near the latency most calls beat (the 95th
 *   percentile, say), keep `maxHedges` small, and keep a circuit breaker outside.
 * - A timeout belongs inside the hedge, so that each attempt gets its own (as `Policy` nests them).
 *
 * **Example** (Hedging a read across replicas)
 *
 * ```ts
 * import { Hedge } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * const program = Effect.gen(function*() {
 *   const hedge = yield* Hedge.make({ name: "profile", delay: "50 millis", maxHedges: 2 })
 *   return yield* Effect.succeed({ id: 1, name: "Ada" }).pipe(hedge.protect)
 * }).pipe(Effect.scoped)
 * ```
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import { Hedger } from "./internal/hedge.ts"
import * as metrics from "./internal/metrics.ts"
import { decode, DurationInput, millisOf, orDefault, type PolicyConfigError, PositiveIntUpTo } from "./PolicyConfig.ts"

/**
 * @example
 * ```ts
 * import { Hedge } from "@effect-resilience/core"
 *
 * const isHedge = (u: object) => Hedge.TypeId in u
 * ```
 *
 * @since 0.1.0
 * @category type IDs
 */
export const TypeId: TypeId = "~@effect-resilience/core/Hedge"

/**
 * @example
 * ```ts
 * import type { Hedge } from "@effect-resilience/core"
 *
 * type Id = Hedge.TypeId // "~@effect-resilience/core/Hedge"
 * ```
 *
 * @since 0.1.0
 * @category type IDs
 */
export type TypeId = "~@effect-resilience/core/Hedge"

// -----------------------------------------------------------------------------
// models
// -----------------------------------------------------------------------------

/**
 * Options for `make`.
 *
 * @example
 * ```ts
 * import type { Hedge } from "@effect-resilience/core"
 *
 * const options: Hedge.Options = { name: "profile", delay: "50 millis", maxHedges: 2 }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** Names the policy in metrics. */
  readonly name: string
  /** How long an attempt runs alone before the next one starts; positive. */
  readonly delay: Duration.Input
  /** Extra attempts at most, besides the primary. Default: 1; at most 100 (each has its own win counter). */
  readonly maxHedges?: number | undefined
}

/**
 * A hedge policy's figures, as plain serializable data.
 *
 * @example
 * ```ts
 * import type { Hedge } from "@effect-resilience/core"
 *
 * // The share of calls that a hedge answered.
 * const rescued = (s: Hedge.Snapshot) => s.calls === 0 ? 0 : (s.calls - s.wins[0]) / s.calls
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Snapshot {
  readonly name: string
  readonly delayMillis: number
  readonly maxHedges: number
  /** Calls started. */
  readonly calls: number
  /** Hedges started: attempts besides the primaries. */
  readonly hedges: number
  /** Calls won, by attempt index: `wins[0]` by the primary, `wins[k]` by the k-th hedge. */
  readonly wins: ReadonlyArray<number>
  /** Calls started and not finished. */
  readonly inFlight: number
}

/**
 * A hedge policy. See the module docs for the semantics.
 *
 * @example
 * ```ts
 * import type { Hedge } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * const readProfile = (hedge: Hedge.Hedge, id: number) => Effect.succeed({ id }).pipe(hedge.protect)
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Hedge {
  readonly [TypeId]: TypeId
  readonly name: string
  /** Runs an effect hedged. It adds no error: the call fails only as its attempts do. */
  readonly protect: <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
  readonly snapshot: Effect.Effect<Snapshot>
}

// -----------------------------------------------------------------------------
// constructors
// -----------------------------------------------------------------------------

const OptionsSchema = Schema.Struct({
  name: Schema.NonEmptyString,
  delay: DurationInput({ positive: true }),
  maxHedges: PositiveIntUpTo(100)
})

/**
 * Makes a hedge policy. Options are validated with Schema; a bad value fails with `PolicyConfigError`.
 *
 * **Metrics** (Effect `Metric`s, attribute `policy`, read when exported so the call path pays nothing):
 * `hedge_calls_total`, `hedge_hedges_total` (extra attempts started) and `hedge_wins_total` (by `attempt`: "0" for
 * the primary, "k" for the k-th hedge).
 *
 * @example
 * ```ts
 * import { Hedge } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * const program = Effect.gen(function*() {
 *   const hedge = yield* Hedge.make({ name: "search", delay: "100 millis", maxHedges: 2 })
 *   return yield* Effect.succeed(["result"]).pipe(hedge.protect)
 * }).pipe(Effect.scoped)
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: (options: Options) => Effect.Effect<Hedge, PolicyConfigError, Scope.Scope> = Effect.fnUntraced(
  function*(options: Options) {
    const { maxHedges } = yield* decode(
      OptionsSchema,
      { name: options.name, delay: options.delay, maxHedges: orDefault(options.maxHedges, 1) },
      { kind: "hedge", policy: String(options.name) }
    )
    const name = options.name
    const delayMillis = millisOf(options.delay)
    // The timer runs in the context the policy was made in; its Clock times every hedge.
    const hedger = new Hedger(
      yield* Clock.clockWith(Effect.succeed),
      yield* Effect.context<never>(),
      delayMillis,
      maxHedges
    )

    const by = { policy: name }
    yield* metrics.register([
      metrics.counter("hedge_calls_total", "Calls started", by, () => hedger.calls),
      metrics.counter("hedge_hedges_total", "Extra attempts started", by, () => hedger.hedges),
      ...hedger.wins.map((_, attempt) =>
        metrics.counter(
          "hedge_wins_total",
          "Calls won, by attempt (0: the primary)",
          { ...by, attempt: String(attempt) },
          () => hedger.wins[attempt]
        )
      )
    ])

    return {
      [TypeId]: TypeId,
      name,
      protect: <A, E, R>(self: Effect.Effect<A, E, R>) => hedger.run(self),
      snapshot: Effect.sync((): Snapshot => ({
        name,
        delayMillis,
        maxHedges,
        calls: hedger.calls,
        hedges: hedger.hedges,
        wins: hedger.wins.slice(),
        inFlight: hedger.inFlight
      }))
    }
  }
)
