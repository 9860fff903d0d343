/**
 * Degradation levels: one number that says how degraded the whole service is, derived from the states of its
 * circuit breakers by declarative rules, kept current from the registry's transitions, and readable by `/health`
 * and a dashboard.
 *
 * **Details**
 *
 * - A rule is data: which breakers (by name), whether `all` or `any` of them must be down, the level it sets, and a
 *   description. A breaker is down in a state the rule lists (`states`, default `Open` and `ForcedOpen`), read on
 *   its default circuit.
 * - The level is the highest among the rules that hold, 0 (normal) when none does; on a tie the rule listed first
 *   sets it. `Status` carries that rule (the one that fired), every rule that holds, and the breakers that are down.
 * - Rules are validated when made (`PolicyConfigError` naming the field): a breaker no registered breaker is named
 *   after, a level outside 1..`maxLevel`, an empty list of breakers.
 * - The status lives in a `SubscriptionRef` that every transition of a named breaker on the `CircuitBreakerRegistry`,
 *   and a named breaker joining or leaving it, re-evaluates; `changes` streams it (the current status, then every
 *   change), and `status` re-evaluates at once, so a reading is never behind (an open breaker whose time is up reads
 *   half-open when looked at).
 * - Metric (read when exported): `degradation_level`.
 *
 * **Example** (The agent service's levels)
 *
 * ```ts
 * import { CircuitBreaker, CircuitBreakerRegistry, Degradation } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * const program = Effect.gen(function*() {
 *   for (const name of ["claude_api", "exa_api", "tavily_api", "qdrant", "firebase"]) {
 *     yield* CircuitBreaker.make({ name })
 *   }
 *   const degradation = yield* Degradation.make({
 *     rules: [
 *       { level: 1, breakers: ["exa_api", "tavily_api"], when: "all", description: "Search degraded" },
 *       { level: 2, breakers: ["qdrant"], description: "Memory degraded" },
 *       { level: 3, breakers: ["firebase"], description: "State degraded" },
 *       { level: 4, breakers: ["claude_api"], description: "Critical" }
 *     ]
 *   })
 *   yield* CircuitBreakerRegistry.forceOpen("qdrant")
 *   const status = yield* degradation.status
 *   return `${status.level}: ${status.description}` // "2: Memory degraded"
 * }).pipe(Effect.scoped, Effect.provide(CircuitBreakerRegistry.layer))
 * ```
 *
 * @since 0.2.0
 */
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import type * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as SubscriptionRef from "effect/SubscriptionRef"
import * as CircuitBreaker from "./CircuitBreaker.ts"
import { CircuitBreakerRegistry } from "./CircuitBreakerRegistry.ts"
import { stateReaders, type StateTag } from "./internal/circuitBreaker.ts"
import * as internal from "./internal/degradation.ts"
import * as metrics from "./internal/metrics.ts"
import { decode, orDefault, type PolicyConfigError, PositiveInt } from "./PolicyConfig.ts"

/**
 * @example
 * ```ts
 * import { Degradation } from "@effect-resilience/core"
 *
 * const isDegradation = (u: object) => Degradation.TypeId in u
 * ```
 *
 * @since 0.2.0
 * @category type IDs
 */
export const TypeId: TypeId = "~@effect-resilience/core/Degradation"

/**
 * @example
 * ```ts
 * import type { Degradation } from "@effect-resilience/core"
 *
 * type Id = Degradation.TypeId // "~@effect-resilience/core/Degradation"
 * ```
 *
 * @since 0.2.0
 * @category type IDs
 */
export type TypeId = "~@effect-resilience/core/Degradation"

// -----------------------------------------------------------------------------
// models
// -----------------------------------------------------------------------------

/**
 * A rule: when `all` (or `any`) of `breakers` are down, the service is at least at `level`.
 *
 * @example
 * ```ts
 * import type { Degradation } from "@effect-resilience/core"
 *
 * const search: Degradation.Rule = {
 *   level: 1,
 *   breakers: ["exa_api", "tavily_api"],
 *   when: "all",
 *   description: "Search degraded: cached answers or 'unavailable'"
 * }
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export interface Rule {
  /** The level the rule sets, from 1 to `maxLevel`. */
  readonly level: number
  /** The breakers it looks at, by registered name. At least one. */
  readonly breakers: ReadonlyArray<string>
  /** Whether every breaker must be down, or one is enough. Default: `all`. */
  readonly when?: "all" | "any" | undefined
  /** What the level means for users, shown in the status. */
  readonly description: string
  /** The states in which a breaker counts as down. Default: `Open` and `ForcedOpen`. */
  readonly states?: ReadonlyArray<CircuitBreaker.State> | undefined
}

/**
 * Options for `make`.
 *
 * @example
 * ```ts
 * import type { Degradation } from "@effect-resilience/core"
 *
 * const options: Degradation.Options = {
 *   rules: [{ level: 4, breakers: ["claude_api"], description: "Critical: error message, log for retry" }],
 *   normal: "Full functionality"
 * }
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export interface Options {
  readonly rules: ReadonlyArray<Rule>
  /** The highest level a rule may set. Default: 4. */
  readonly maxLevel?: number | undefined
  /** The description at level 0. Default: "Normal". */
  readonly normal?: string | undefined
}

/**
 * Where the service stands: the level, the rule that set it, every rule that holds, and the breakers down.
 *
 * @example
 * ```ts
 * import type { Degradation } from "@effect-resilience/core"
 *
 * const health = (status: Degradation.Status) => ({
 *   status: status.level === 0 ? "healthy" : "degraded",
 *   degradation: { level: status.level, description: status.description, down: status.down }
 * })
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export interface Status {
  readonly level: number
  /** The firing rule's description, or the `normal` one at level 0. */
  readonly description: string
  /** The rule that set the level (the highest that holds, the first listed on a tie); `null` at level 0. */
  readonly rule: Rule | null
  /** Every rule that holds, in the order given. */
  readonly active: ReadonlyArray<Rule>
  /** The breakers named by a rule and down by that rule's states. */
  readonly down: ReadonlyArray<string>
  /** When the status was last evaluated to something new (epoch milliseconds, from `Clock`). */
  readonly since: number
}

/**
 * The degradation service.
 *
 * @example
 * ```ts
 * import { Degradation } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * const level = Degradation.Degradation.use((degradation) => Effect.map(degradation.status, (s) => s.level))
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export interface Degradation {
  readonly [TypeId]: TypeId
  /** The rules, with their defaults filled in. */
  readonly rules: ReadonlyArray<Rule>
  /** The status now: the breakers are read again, and a change is published. */
  readonly status: Effect.Effect<Status>
  /** The current status, then every change. */
  readonly changes: Stream.Stream<Status>
}

/**
 * The `Degradation` in context, for `/health` and dashboards.
 *
 * @example
 * ```ts
 * import { Degradation } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * const description = Effect.gen(function*() {
 *   const degradation = yield* Degradation.Degradation
 *   return (yield* degradation.status).description
 * })
 * ```
 *
 * @since 0.2.0
 * @category services
 */
export const Degradation: Context.Service<Degradation, Degradation> = Context.Service<Degradation>(
  "@effect-resilience/core/Degradation"
)

// -----------------------------------------------------------------------------
// constructors
// -----------------------------------------------------------------------------

const RuleSchema = (known: ReadonlyArray<string>, maxLevel: number) =>
  Schema.Struct({
    level: Schema.Int.check(
      Schema.makeFilter((level: number) =>
        level >= 1 && level <= maxLevel ? undefined : `Expected a level from 1 to ${maxLevel}, got ${level}`
      )
    ),
    breakers: Schema.Array(
      Schema.String.check(Schema.makeFilter((name: string) =>
        known.includes(name)
          ? undefined
          : `Expected the name of a registered breaker (${known.join(", ") || "none registered"}), got "${name}"`
      ))
    ).check(Schema.makeFilter((all: ReadonlyArray<string>) =>
      all.length > 0 ? undefined : "Expected at least one breaker, got none"
    )),
    when: Schema.Literals(["all", "any"]),
    description: Schema.NonEmptyString,
    states: Schema.Array(Schema.Literals(CircuitBreaker.states)).check(
      Schema.makeFilter((all: ReadonlyArray<string>) =>
        all.length > 0 ? undefined : "Expected at least one state, got none"
      )
    )
  })

const defaultStates: ReadonlyArray<CircuitBreaker.State> = ["Open", "ForcedOpen"]

/**
 * Makes the service from `options`, reading the breakers of the `CircuitBreakerRegistry` in context: every breaker
 * a rule names must be registered by then. The status follows the registry's transitions until the scope closes.
 *
 * @example
 * ```ts
 * import { CircuitBreaker, CircuitBreakerRegistry, Degradation } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * const program = Effect.gen(function*() {
 *   yield* CircuitBreaker.make({ name: "claude_api" })
 *   const degradation = yield* Degradation.make({
 *     rules: [{ level: 4, breakers: ["claude_api"], description: "Critical" }]
 *   })
 *   return (yield* degradation.status).level // 0
 * }).pipe(Effect.scoped, Effect.provide(CircuitBreakerRegistry.layer))
 * ```
 *
 * @since 0.2.0
 * @category constructors
 */
export const make: (
  options: Options
) => Effect.Effect<Degradation, PolicyConfigError, Scope.Scope | CircuitBreakerRegistry> = Effect.fnUntraced(
  function*(options: Options) {
    const registry = yield* CircuitBreakerRegistry
    const maxLevel = orDefault(options.maxLevel, 4)
    const rules: ReadonlyArray<internal.Rule> = options.rules.map((rule) => ({
      level: rule.level,
      breakers: rule.breakers,
      when: rule.when ?? "all",
      description: rule.description,
      states: rule.states ?? defaultStates
    }))
    const known = registry.breakers().map((breaker) => breaker.name)
    yield* decode(
      Schema.Struct({
        maxLevel: PositiveInt,
        normal: Schema.NonEmptyString,
        rules: Schema.Array(RuleSchema(known, maxLevel))
      }),
      { maxLevel, normal: options.normal ?? "Normal", rules },
      { kind: "degradation", policy: "levels" }
    )
    const normal = options.normal ?? "Normal"
    const named = new Set(rules.flatMap((rule) => rule.breakers))

    const toStatus = (verdict: internal.Verdict, since: number): Status => ({
      level: verdict.level,
      description: verdict.rule < 0 ? normal : rules[verdict.rule].description,
      rule: verdict.rule < 0 ? null : rules[verdict.rule],
      active: verdict.active.map((i) => rules[i]),
      down: verdict.down,
      since
    })

    // A breaker that has left the registry (its scope closed) reads as closed: it guards nothing any more.
    let anyOpen = false
    const readStates = Effect.gen(function*() {
      const states = new Map<string, CircuitBreaker.State>()
      anyOpen = false
      for (const breaker of registry.breakers()) {
        if (!named.has(breaker.name)) continue
        const state = yield* breaker.state
        if (state === "Open") anyOpen = true
        states.set(breaker.name, state)
      }
      return (name: string): CircuitBreaker.State => states.get(name) ?? "Closed"
    })

    const initial = internal.evaluate(rules, yield* readStates)
    let verdict = initial
    const ref = yield* SubscriptionRef.make(toStatus(initial, yield* Clock.currentTimeMillis))

    // The last status and the registry revision it was read at. A caller on the hot path (every request of a
    // service may ask) gets it without reading the breakers again while no breaker changed state since, unless one
    // of them is Open: that one turns half-open by time alone.
    let cached: { readonly revision: number; readonly status: Status } | undefined

    // The status the last evaluation left in the ref.
    let last = yield* SubscriptionRef.get(ref)

    // Evaluations are serialised by the ref, so that a slow one never overwrites a newer one. Uninterruptible: a
    // reader interrupted between noting the verdict and the ref's commit would leave the two apart for good.
    const evaluate: Effect.Effect<Status> = Effect.uninterruptible(
      SubscriptionRef.modifySomeEffect(ref, (current) =>
        Effect.gen(function*() {
          const revision = registry.revision()
          const next = internal.evaluate(rules, yield* readStates)
          const changed = !internal.same(next, verdict)
          const status = changed ? toStatus(next, yield* Clock.currentTimeMillis) : current
          verdict = next
          last = status
          cached = anyOpen ? undefined : { revision, status }
          return changed ? [status, Option.some(status)] as const : [current, Option.none()] as const
        }))
    )

    // While a breaker is open (a degraded service, where every request may ask), the named breakers are read
    // synchronously, as this package's breakers allow, and the verdict compared with the last one: only a change
    // goes through the serialised evaluation. Undefined while a named breaker is not one of this package's.
    interface Reader {
      readonly name: string
      readonly read: (fiber: Fiber.Fiber<unknown, unknown>) => StateTag
    }
    let readers: { readonly revision: number; readonly all: ReadonlyArray<Reader> | undefined } | undefined
    const readersNow = (revision: number): ReadonlyArray<Reader> | undefined => {
      if (readers !== undefined && readers.revision === revision) return readers.all
      const all: Array<Reader> = []
      let ours = true
      for (const breaker of registry.breakers()) {
        if (!named.has(breaker.name)) continue
        const read = stateReaders.get(breaker)
        if (read === undefined) ours = false
        else all.push({ name: breaker.name, read })
      }
      readers = { revision, all: ours ? all : undefined }
      return readers.all
    }
    // Whether the named breakers, read now, give the last verdict; with none open, the reading is cached as well.
    const unchanged = (fiber: Fiber.Fiber<unknown, unknown>): boolean => {
      const revision = registry.revision()
      const all = readersNow(revision)
      if (all === undefined) return false
      const states = new Map<string, StateTag>()
      let open = false
      for (const { name, read } of all) {
        const state = read(fiber)
        if (state === "Open") open = true
        states.set(name, state)
      }
      if (!internal.same(internal.evaluate(rules, (name) => states.get(name) ?? "Closed"), verdict)) return false
      if (!open) cached = { revision, status: last }
      return true
    }

    const status: Effect.Effect<Status> = Effect.withFiber((fiber) => {
      if (cached !== undefined && cached.revision === registry.revision()) return Effect.succeed(cached.status)
      return unchanged(fiber) ? Effect.succeed(last) : evaluate
    })

    // Each started at once, so that its subscription is in place before the first transition can be missed; not
    // merged, as a merged stream subscribes later. A named breaker leaving the registry publishes no transition, yet
    // reads as closed from then on.
    for (const breakers of [Stream.map(registry.transitions, (transition) => transition.breaker), registry.members]) {
      yield* breakers.pipe(
        Stream.filter((breaker) => named.has(breaker)),
        Stream.runForEach(() => evaluate),
        Effect.forkScoped({ startImmediately: true })
      )
    }
    // A transition between the first reading and the subscription would otherwise go unseen.
    yield* evaluate

    yield* metrics.register([
      metrics.gauge("degradation_level", "The service's degradation level (0: normal)", {}, () => verdict.level)
    ])

    return {
      [TypeId]: TypeId,
      rules,
      status,
      changes: SubscriptionRef.changes(ref)
    } satisfies Degradation
  }
)

/**
 * Provides `Degradation` made with `options`; the `CircuitBreakerRegistry` and the breakers the rules name must be
 * built first.
 *
 * @example
 * ```ts
 * import { CircuitBreaker, CircuitBreakerRegistry, Degradation } from "@effect-resilience/core"
 * import { Layer } from "effect"
 *
 * const Live = Degradation.layer({
 *   rules: [{ level: 4, breakers: ["claude_api"], description: "Critical" }]
 * }).pipe(
 *   Layer.provideMerge(CircuitBreaker.layer({ name: "claude_api" })),
 *   Layer.provideMerge(CircuitBreakerRegistry.layer)
 * )
 * ```
 *
 * @since 0.2.0
 * @category layers
 */
export const layer = (options: Options): Layer.Layer<Degradation, PolicyConfigError, CircuitBreakerRegistry> =>
  Layer.effect(Degradation, make(options))
