/**
 * Chaos injection as a policy: make a dependency slow, failing or wrong on purpose, to see what the rest of the
 * program does about it. Switchable at run time, so a demo (or an admin endpoint) can turn a dependency bad and
 * good again.
 *
 * **Details**
 *
 * - A call through `protect`, while enabled: with probability `latency.rate` it first sleeps `latency.delay`
 *   (or a delay drawn uniformly from `[latency.min, latency.max]`); then, with probability `faultRate`, it fails
 *   with the configured error **instead of running**: the effect is not run at all, as when a request never
 *   reaches the dependency. Otherwise it runs as usual.
 * - `tamper(replace)` does the same, then with probability `outcomeRate` replaces a success's value with
 *   `replace(value)`: for testing the paths that handle degraded or stale data.
 * - Every draw comes from Effect's `Random` and every delay from `Effect.sleep`, so `Random.withSeed` makes a run
 *   reproducible and `TestClock` drives the delays. A rate of 0 or 1 draws nothing: it never or always applies.
 * - The settings live in a `SubscriptionRef`: `set`, `enable` and `disable` change them for the calls that start
 *   afterwards (a call reads them once, when it starts), and `changes` streams them.
 * - Disabled, `protect` runs the effect untouched; calls are still counted.
 *
 * **Gotchas**
 *
 * - Put chaos innermost (next to the call) so that the injected faults and delays look like the dependency's own
 *   to every other policy.
 * - Draws come from the calling fiber's `Random`: concurrent calls draw in the order they run, so a seed
 *   reproduces a run only as far as the scheduling does.
 *
 * **Example** (A dependency that fails half the time, reproducibly)
 *
 * ```ts
 * import { Chaos } from "@effect-resilience/core"
 * import { Effect, Random } from "effect"
 *
 * const program = Effect.gen(function*() {
 *   const chaos = yield* Chaos.make({ name: "inventory", faultRate: 0.5 })
 *   const results = yield* Effect.forEach([1, 2, 3, 4], () =>
 *     Effect.succeed("in stock").pipe(chaos.protect, Effect.catchTag("ChaosFault", () => Effect.succeed("fault"))))
 *   yield* chaos.disable // healthy again
 *   return results
 * }).pipe(Effect.scoped, Random.withSeed("demo"))
 * ```
 *
 * @since 0.1.0
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as PubSub from "effect/PubSub"
import * as Random from "effect/Random"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import type * as Stream from "effect/Stream"
import * as SubscriptionRef from "effect/SubscriptionRef"
import * as metrics from "./internal/metrics.ts"
import { stackless } from "./internal/stackless.ts"
import { decode, DurationInput, millisOf, orDefault, type PolicyConfigError, Probability } from "./PolicyConfig.ts"

/**
 * @example
 * ```ts
 * import { Chaos } from "@effect-resilience/core"
 *
 * const isChaos = (u: object) => Chaos.TypeId in u
 * ```
 *
 * @since 0.1.0
 * @category type IDs
 */
export const TypeId: TypeId = "~@effect-resilience/core/Chaos"

/**
 * @example
 * ```ts
 * import type { Chaos } from "@effect-resilience/core"
 *
 * type Id = Chaos.TypeId // "~@effect-resilience/core/Chaos"
 * ```
 *
 * @since 0.1.0
 * @category type IDs
 */
export type TypeId = "~@effect-resilience/core/Chaos"

// -----------------------------------------------------------------------------
// models
// -----------------------------------------------------------------------------

/**
 * Injected latency: a fixed `delay`, or a delay drawn uniformly from `[min, max]`, applied to a share `rate` of
 * the calls (default: all of them).
 *
 * @example
 * ```ts
 * import type { Chaos } from "@effect-resilience/core"
 *
 * const slow: Chaos.Latency = { delay: "2 seconds" }
 * const jittery: Chaos.Latency = { rate: 0.1, min: "100 millis", max: "3 seconds" }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type Latency =
  | { readonly rate?: number | undefined; readonly delay: Duration.Input }
  | { readonly rate?: number | undefined; readonly min: Duration.Input; readonly max: Duration.Input }

/**
 * Options for `make`. Only `name` is required; with nothing else the policy injects nothing until `set`.
 *
 * @example
 * ```ts
 * import type { Chaos } from "@effect-resilience/core"
 *
 * const options: Chaos.Options = {
 *   name: "payments",
 *   faultRate: 0.05,
 *   latency: { rate: 0.2, min: "200 millis", max: "2 seconds" }
 * }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Options<E = ChaosFault> {
  /** Names the policy in errors, metrics and snapshots. */
  readonly name: string
  /** Share of calls that fail instead of running, in [0, 1]. Default: 0. */
  readonly faultRate?: number | undefined
  /** Injected latency. Default: none. */
  readonly latency?: Latency | undefined
  /** Share of successes `tamper` replaces, in [0, 1]. Default: 0. */
  readonly outcomeRate?: number | undefined
  /** What an injected fault fails with, built per fault. Default: a `ChaosFault`. */
  readonly error?: (() => E) | undefined
  /** Default: true. */
  readonly enabled?: boolean | undefined
}

/**
 * The settings in force, as plain data: what `current` and `changes` give and `set` changes.
 *
 * @example
 * ```ts
 * import type { Chaos } from "@effect-resilience/core"
 *
 * const describe = (s: Chaos.Settings) =>
 *   s.enabled ? `${s.faultRate * 100}% faults, ${s.latency === null ? "no" : s.latency.maxMillis} ms delays` : "off"
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Settings {
  readonly enabled: boolean
  readonly faultRate: number
  readonly latency: { readonly rate: number; readonly minMillis: number; readonly maxMillis: number } | null
  readonly outcomeRate: number
}

/**
 * A change of settings for `set`: the fields given replace the current ones; `latency: null` removes latency.
 *
 * @example
 * ```ts
 * import type { Chaos } from "@effect-resilience/core"
 *
 * const outage: Chaos.Patch = { enabled: true, faultRate: 1 }
 * const recovered: Chaos.Patch = { faultRate: 0, latency: null }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Patch {
  readonly enabled?: boolean | undefined
  readonly faultRate?: number | undefined
  readonly latency?: Latency | null | undefined
  readonly outcomeRate?: number | undefined
}

/**
 * The settings and counts since the policy was made, as plain serializable data.
 *
 * @example
 * ```ts
 * import type { Chaos } from "@effect-resilience/core"
 *
 * const observedFaultRate = (s: Chaos.Snapshot) => s.calls === 0 ? 0 : s.faults / s.calls
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Snapshot extends Settings {
  readonly name: string
  readonly calls: number
  readonly faults: number
  readonly delays: number
  readonly tampered: number
}

/**
 * A chaos policy whose injected faults fail with `E`. See the module docs for the semantics.
 *
 * @example
 * ```ts
 * import type { Chaos } from "@effect-resilience/core"
 *
 * const degrade = (chaos: Chaos.Chaos) => chaos.set({ faultRate: 0.3, latency: { delay: "1 second" } })
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Chaos<E = ChaosFault> {
  readonly [TypeId]: TypeId
  readonly name: string
  /** Runs an effect with the faults and latency in force: `effect.pipe(chaos.protect)`. */
  readonly protect: <A, E2, R>(self: Effect.Effect<A, E2, R>) => Effect.Effect<A, E2 | E, R>
  /** `protect`, then replaces a share `outcomeRate` of the successes with `replace(value)`. */
  readonly tamper: <A>(
    replace: (value: A) => A
  ) => <E2, R>(self: Effect.Effect<A, E2, R>) => Effect.Effect<A, E2 | E, R>
  /** Settings and counts. */
  readonly snapshot: Effect.Effect<Snapshot>
  /** The settings in force. */
  readonly current: Effect.Effect<Settings>
  /** The settings in force, then every change, until the policy's scope closes. */
  readonly changes: Stream.Stream<Settings>
  /** Changes the settings (validated as in `make`) and returns the new ones. */
  readonly set: (patch: Patch) => Effect.Effect<Settings, PolicyConfigError>
  readonly enable: Effect.Effect<void>
  readonly disable: Effect.Effect<void>
}

// -----------------------------------------------------------------------------
// errors
// -----------------------------------------------------------------------------

/**
 * The default injected fault.
 *
 * @example
 * ```ts
 * import { Chaos } from "@effect-resilience/core"
 *
 * const error = new Chaos.ChaosFault({ policy: "inventory" })
 * error.message // 'Chaos "inventory" injected a fault'
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export class ChaosFault extends Schema.TaggedError<ChaosFault>()("ChaosFault", {
  policy: Schema.String
}) {
  override get message(): string {
    return `Chaos "${this.policy}" injected a fault`
  }
}

// -----------------------------------------------------------------------------
// validation
// -----------------------------------------------------------------------------

const FixedLatency = Schema.Struct({ rate: Probability, delay: DurationInput({ positive: false }) })

const RangeLatency = Schema.Struct({
  rate: Probability,
  min: DurationInput({ positive: false }),
  max: DurationInput({ positive: false })
}).check(Schema.makeFilter((latency: { readonly min: unknown; readonly max: unknown }) => {
  const min = millisOf(latency.min as Duration.Input)
  const max = millisOf(latency.max as Duration.Input)
  return min <= max ? undefined : { path: ["max"], issue: `Expected at least min (${min} millis), got ${max} millis` }
}))

const settingsSchema = (latency: unknown) =>
  Schema.Struct({
    name: Schema.NonEmptyString,
    enabled: Schema.Boolean,
    faultRate: Probability,
    latency: latency === null
      ? Schema.Null
      : typeof latency === "object" && latency !== undefined && "delay" in latency
      ? FixedLatency
      : RangeLatency,
    outcomeRate: Probability
  })

type RawLatency =
  | { readonly rate: number; readonly delay: Duration.Input }
  | { readonly rate: number; readonly min: Duration.Input; readonly max: Duration.Input }

const rawLatency = (latency: Latency): RawLatency =>
  "delay" in latency
    ? { rate: orDefault(latency.rate, 1), delay: latency.delay }
    : { rate: orDefault(latency.rate, 1), min: latency.min, max: latency.max }

// Validates raw settings (defaults filled in) and turns durations into millis.
const validate = (
  name: string,
  raw: {
    readonly enabled: unknown
    readonly faultRate: unknown
    readonly latency: RawLatency | null
    readonly outcomeRate: unknown
  }
): Effect.Effect<Settings, PolicyConfigError> =>
  decode(settingsSchema(raw.latency), { name, ...raw }, { kind: "chaos", policy: name }).pipe(
    Effect.map((): Settings => ({
      enabled: raw.enabled as boolean,
      faultRate: raw.faultRate as number,
      latency: raw.latency === null
        ? null
        : "delay" in raw.latency
        ? { rate: raw.latency.rate, minMillis: millisOf(raw.latency.delay), maxMillis: millisOf(raw.latency.delay) }
        : { rate: raw.latency.rate, minMillis: millisOf(raw.latency.min), maxMillis: millisOf(raw.latency.max) },
      outcomeRate: raw.outcomeRate as number
    }))
  )

// -----------------------------------------------------------------------------
// constructors
// -----------------------------------------------------------------------------

/** A rate of 0 or 1 needs no draw, so that it is exact and costs nothing. */
const hit = (random: Random.Random, rate: number): boolean =>
  rate >= 1 ? true : rate <= 0 ? false : random.nextDoubleUnsafe() < rate

/**
 * Makes a chaos policy. Options are validated with Schema; a bad value fails with `PolicyConfigError`. Give
 * `error` to fail with your own error type instead of `ChaosFault`.
 *
 * **Metrics** (Effect `Metric`s, attribute `policy`, read when exported so the call path pays nothing):
 * `chaos_calls_total`, `chaos_faults_total`, `chaos_delays_total`, `chaos_tampered_total` and `chaos_enabled`
 * (1 or 0).
 *
 * @example
 * ```ts
 * import { Chaos } from "@effect-resilience/core"
 * import { Data, Effect } from "effect"
 *
 * class Unavailable extends Data.TaggedError("Unavailable")<{ readonly status: number }> {}
 *
 * const program = Effect.gen(function*() {
 *   // Fail like the real dependency does, so that the real error handling is what gets tested.
 *   const chaos = yield* Chaos.make({ name: "search", faultRate: 1, error: () => new Unavailable({ status: 503 }) })
 *   return yield* Effect.succeed("results").pipe(
 *     chaos.protect,
 *     Effect.catchTag("Unavailable", (e) => Effect.succeed(`down (${e.status})`))
 *   )
 * }).pipe(Effect.scoped)
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: {
  <E>(options: Options<E> & { readonly error: () => E }): Effect.Effect<Chaos<E>, PolicyConfigError, Scope.Scope>
  (options: Options<ChaosFault>): Effect.Effect<Chaos<ChaosFault>, PolicyConfigError, Scope.Scope>
} = Effect.fnUntraced(function*(options: Options<unknown>) {
  const name = options.name
  const initial = yield* validate(String(name), {
    enabled: orDefault(options.enabled, true),
    faultRate: orDefault(options.faultRate, 0),
    latency: options.latency === undefined ? null : rawLatency(options.latency),
    outcomeRate: orDefault(options.outcomeRate, 0)
  })
  const ref = yield* SubscriptionRef.make(initial)
  // Ends the `changes` streams with the policy.
  yield* Effect.addFinalizer(() => PubSub.shutdown(ref.pubsub))
  const makeError: () => unknown = options.error ?? (() => makeFault(name))
  const totals = { calls: 0, faults: 0, delays: 0, tampered: 0 }

  // Built once: counting when the fault happens (after any delay), not when it was drawn.
  const fault: Effect.Effect<never, unknown> = Effect.suspend(() => {
    totals.faults++
    return Effect.fail(makeError())
  })

  // A call's faults, drawn from the settings it started with.
  const inject = <A, E2, R>(
    settings: Settings,
    random: Random.Random,
    self: Effect.Effect<A, E2, R>
  ): Effect.Effect<A, unknown, R> => {
    // The draws come in a fixed order (latency, its length, the fault), so that a seed fixes the outcome.
    const latency = settings.latency
    const delayed = latency !== null && hit(random, latency.rate)
    const millis = !delayed
      ? 0
      : latency.minMillis + (latency.maxMillis > latency.minMillis
        ? random.nextDoubleUnsafe() * (latency.maxMillis - latency.minMillis)
        : 0)
    const next: Effect.Effect<A, unknown, R> = hit(random, settings.faultRate) ? fault : self
    if (!delayed) return next
    totals.delays++
    return Effect.andThen(Effect.sleep(Duration.millis(millis)), next)
  }

  const protect = <A, E2, R>(self: Effect.Effect<A, E2, R>): Effect.Effect<A, unknown, R> =>
    Effect.withFiber((fiber) => {
      totals.calls++
      const settings = SubscriptionRef.getUnsafe(ref)
      return settings.enabled ? inject(settings, fiber.getRef(Random.Random), self) : self
    })

  // The settings are read once, when the call starts, for the tampering as for the rest; disabled, nothing is done.
  const tamper = <A>(replace: (value: A) => A) => <E2, R>(self: Effect.Effect<A, E2, R>) =>
    Effect.withFiber((fiber) => {
      totals.calls++
      const settings = SubscriptionRef.getUnsafe(ref)
      if (!settings.enabled) return self as Effect.Effect<A, unknown, R>
      const random = fiber.getRef(Random.Random)
      const injected = inject(settings, random, self)
      if (settings.outcomeRate <= 0) return injected
      return Effect.map(injected, (value) => {
        if (!hit(random, settings.outcomeRate)) return value
        totals.tampered++
        return replace(value)
      })
    })

  const set = (patch: Patch): Effect.Effect<Settings, PolicyConfigError> =>
    // Validated under the ref's lock, so that concurrent patches apply one after the other.
    SubscriptionRef.updateAndGetEffect(ref, (current) =>
      // `undefined` keeps a setting; `null` (but for `latency`, where it means none) reaches the Schema and fails,
      // as it does in `make` (see `orDefault`).
      validate(name, {
        enabled: patch.enabled === undefined ? current.enabled : patch.enabled,
        faultRate: patch.faultRate === undefined ? current.faultRate : patch.faultRate,
        latency: patch.latency === undefined
          ? current.latency === null
            ? null
            : { rate: current.latency.rate, min: current.latency.minMillis, max: current.latency.maxMillis }
          : patch.latency === null
          ? null
          : rawLatency(patch.latency),
        outcomeRate: patch.outcomeRate === undefined ? current.outcomeRate : patch.outcomeRate
      }))

  const setEnabled = (enabled: boolean): Effect.Effect<void> =>
    Effect.asVoid(SubscriptionRef.updateAndGet(ref, (current) => ({ ...current, enabled })))

  const chaos: Chaos<unknown> = {
    [TypeId]: TypeId,
    name,
    protect,
    tamper,
    snapshot: Effect.sync((): Snapshot => ({ name, ...SubscriptionRef.getUnsafe(ref), ...totals })),
    current: SubscriptionRef.get(ref),
    changes: SubscriptionRef.changes(ref),
    set,
    enable: setEnabled(true),
    disable: setEnabled(false)
  }

  // Pull-based metrics: the registry reads these counters when it exports, so calls never touch a metric.
  const by = { policy: name }
  yield* metrics.register([
    metrics.counter("chaos_calls_total", "Calls through the chaos policy", by, () => totals.calls),
    metrics.counter("chaos_faults_total", "Injected faults", by, () => totals.faults),
    metrics.counter("chaos_delays_total", "Injected delays", by, () => totals.delays),
    metrics.counter("chaos_tampered_total", "Successes whose value was replaced", by, () => totals.tampered),
    metrics.gauge(
      "chaos_enabled",
      "1 while the policy injects, 0 while disabled",
      by,
      () => SubscriptionRef.getUnsafe(ref).enabled ? 1 : 0
    )
  ])
  return chaos
}) as typeof make

// Faults are built without capturing a stack: under a high fault rate they are a hot path, and the stack would
// only point here.
const makeFault = (policy: string): ChaosFault => stackless(() => new ChaosFault({ policy }, { disableChecks: true }))
