/**
 * A registry of circuit breakers: every breaker made under it is listed with its snapshots, found by name, and
 * controllable by name, and every transition of every breaker is on one `Stream`. Dashboards, health checks and
 * admin endpoints read from here.
 *
 * **Example** (Listing and controlling breakers by name)
 *
 * ```ts
 * import { CircuitBreaker, CircuitBreakerRegistry } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * const program = Effect.gen(function*() {
 *   yield* CircuitBreaker.make({ name: "search" })
 *   yield* CircuitBreaker.make({ name: "llm" })
 *   yield* CircuitBreakerRegistry.forceOpen("llm")
 *   const snapshots = yield* CircuitBreakerRegistry.snapshots
 *   return snapshots.map((s) => `${s.name}: ${s.state}`) // ["search: Closed", "llm: ForcedOpen"]
 * }).pipe(Effect.scoped, Effect.provide(CircuitBreakerRegistry.layer))
 * ```
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as PubSub from "effect/PubSub"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type { CircuitBreaker, Snapshot, Transition } from "./CircuitBreaker.ts"
import { type NamedPolicy, type Registry, RegistryService } from "./internal/registry.ts"
import type { Snapshot as PolicySnapshot } from "./Policy.ts"

/**
 * The registry service. Breakers add themselves when made under it and leave when their scope closes.
 *
 * @example
 * ```ts
 * import { CircuitBreakerRegistry } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * const names = CircuitBreakerRegistry.CircuitBreakerRegistry.use((registry) =>
 *   Effect.sync(() => registry.breakers().map((breaker) => breaker.name))
 * )
 * ```
 *
 * @since 0.1.0
 * @category services
 */
export const CircuitBreakerRegistry = RegistryService

/**
 * @example
 * ```ts
 * import { CircuitBreakerRegistry } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * const count: Effect.Effect<number, never, CircuitBreakerRegistry.CircuitBreakerRegistry> = Effect.map(
 *   CircuitBreakerRegistry.all,
 *   (all) => all.length
 * )
 * ```
 *
 * @since 0.1.0
 * @category services
 */
export type CircuitBreakerRegistry = RegistryService

/**
 * No breaker of that name is registered.
 *
 * @example
 * ```ts
 * import { CircuitBreakerRegistry } from "@effect-resilience/core"
 *
 * new CircuitBreakerRegistry.CircuitBreakerNotFound({ name: "db", known: ["search"] }).message
 * // 'No circuit breaker named "db" (registered: search)'
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export class CircuitBreakerNotFound extends Schema.TaggedError<CircuitBreakerNotFound>()("CircuitBreakerNotFound", {
  name: Schema.String,
  known: Schema.Array(Schema.String)
}) {
  override get message(): string {
    return `No circuit breaker named "${this.name}" (registered: ${this.known.join(", ") || "none"})`
  }
}

/**
 * Makes an empty registry. Its transition stream closes with the scope.
 *
 * @example
 * ```ts
 * import { CircuitBreakerRegistry } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * const program = Effect.gen(function*() {
 *   const registry = yield* CircuitBreakerRegistry.make
 *   return registry.breakers().length // 0
 * }).pipe(Effect.scoped)
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: Effect.Effect<Registry, never, Scope.Scope> = Effect.gen(function*() {
  const byName = new Map<string, CircuitBreaker<never>>()
  const policiesByName = new Map<string, NamedPolicy>()
  const hub = yield* PubSub.sliding<Transition>(4096)
  yield* Effect.addFinalizer(() => PubSub.shutdown(hub))
  // Unbounded, so that the synchronous `add` and `remove` never lose a name: breakers join and leave rarely.
  const members = yield* PubSub.unbounded<string>()
  yield* Effect.addFinalizer(() => PubSub.shutdown(members))
  let revision = 0
  return RegistryService.of({
    add: (breaker) => {
      if (byName.has(breaker.name)) return false
      byName.set(breaker.name, breaker)
      revision++
      PubSub.publishUnsafe(members, breaker.name)
      return true
    },
    remove: (breaker) => {
      if (byName.get(breaker.name) === breaker) {
        byName.delete(breaker.name)
        revision++
        PubSub.publishUnsafe(members, breaker.name)
      }
    },
    publish: (transitions) => Effect.asVoid(PubSub.publishAll(hub, transitions)),
    revision: () => revision,
    changed: () => {
      revision++
    },
    breakers: () => Array.from(byName.values()),
    addPolicy: (policy) => {
      if (policiesByName.has(policy.name)) return false
      policiesByName.set(policy.name, policy)
      return true
    },
    removePolicy: (policy) => {
      if (policiesByName.get(policy.name) === policy) policiesByName.delete(policy.name)
    },
    policies: () => Array.from(policiesByName.values()),
    transitions: Stream.fromPubSub(hub),
    members: Stream.fromPubSub(members)
  })
})

/**
 * Provides an empty `CircuitBreakerRegistry`.
 *
 * @example
 * ```ts
 * import { CircuitBreaker, CircuitBreakerRegistry } from "@effect-resilience/core"
 * import { Layer } from "effect"
 *
 * // A breaker layer built on the registry registers itself there.
 * const Live = CircuitBreaker.layer({ name: "search" }).pipe(Layer.provideMerge(CircuitBreakerRegistry.layer))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer: Layer.Layer<CircuitBreakerRegistry> = Layer.effect(RegistryService, make)

/**
 * Looks a breaker up by name, to read or control it. The registry holds breakers of any success type, so the one it
 * finds is a `CircuitBreaker<never>`: its `protect` takes only effects that cannot succeed, since the breaker's
 * `isFailureResult` may read a type the registry does not know. Protect through the breaker `make` returned (or its
 * layer's service).
 *
 * @example
 * ```ts
 * import { CircuitBreakerRegistry } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * const state = CircuitBreakerRegistry.get("search").pipe(Effect.flatMap((breaker) => breaker.state))
 * ```
 *
 * @since 0.1.0
 * @category accessors
 */
export const get = (
  name: string
): Effect.Effect<CircuitBreaker<never>, CircuitBreakerNotFound, CircuitBreakerRegistry> =>
  RegistryService.use((registry) => {
    const breakers = registry.breakers()
    const found = breakers.find((breaker) => breaker.name === name)
    return found === undefined
      ? Effect.fail(new CircuitBreakerNotFound({ name, known: breakers.map((breaker) => breaker.name) }))
      : Effect.succeed(found)
  })

/**
 * Every registered breaker, in registration order, as `CircuitBreaker<never>` (see `get`).
 *
 * @example
 * ```ts
 * import { CircuitBreakerRegistry } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * const names = CircuitBreakerRegistry.all.pipe(Effect.map((all) => all.map((breaker) => breaker.name)))
 * ```
 *
 * @since 0.1.0
 * @category accessors
 */
export const all: Effect.Effect<ReadonlyArray<CircuitBreaker<never>>, never, CircuitBreakerRegistry> = RegistryService
  .use((registry) => Effect.sync(() => registry.breakers()))

/**
 * Snapshots of every key of every registered breaker.
 *
 * @example
 * ```ts
 * import { CircuitBreakerRegistry } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * const open = CircuitBreakerRegistry.snapshots.pipe(
 *   Effect.map((snapshots) => snapshots.filter((s) => s.state !== "Closed"))
 * )
 * ```
 *
 * @since 0.1.0
 * @category accessors
 */
export const snapshots: Effect.Effect<ReadonlyArray<Snapshot>, never, CircuitBreakerRegistry> = Effect.flatMap(
  all,
  (breakers) => Effect.map(Effect.forEach(breakers, (breaker) => breaker.snapshots), (perBreaker) => perBreaker.flat())
)

/**
 * Every transition of every registered breaker, from subscription on.
 *
 * @example
 * ```ts
 * import { CircuitBreaker, CircuitBreakerRegistry } from "@effect-resilience/core"
 * import { Effect, Stream } from "effect"
 *
 * const logTransitions = CircuitBreakerRegistry.transitions.pipe(
 *   Stream.runForEach((t) => Effect.log(`${t.breaker}: ${t.from} -> ${t.to} (${CircuitBreaker.describeReason(t.reason)})`))
 * )
 * ```
 *
 * @since 0.1.0
 * @category accessors
 */
export const transitions: Stream.Stream<Transition, never, CircuitBreakerRegistry> = Stream.unwrap(
  RegistryService.use((registry) => Effect.succeed(registry.transitions))
)

const control = (action: "forceOpen" | "disable" | "metricsOnly" | "reset") =>
(
  name: string,
  key?: string
): Effect.Effect<void, CircuitBreakerNotFound, CircuitBreakerRegistry> =>
  Effect.flatMap(get(name), (breaker) => breaker[action](key))

/**
 * Forces a breaker open by name (one key, or every key).
 *
 * @example
 * ```ts
 * import { CircuitBreakerRegistry } from "@effect-resilience/core"
 *
 * const isolate = CircuitBreakerRegistry.forceOpen("payments")
 * ```
 *
 * @since 0.1.0
 * @category controls
 */
export const forceOpen: (
  name: string,
  key?: string
) => Effect.Effect<void, CircuitBreakerNotFound, CircuitBreakerRegistry> = control("forceOpen")

/**
 * Disables a breaker by name: it admits everything and keeps counting.
 *
 * @example
 * ```ts
 * import { CircuitBreakerRegistry } from "@effect-resilience/core"
 *
 * const bypass = CircuitBreakerRegistry.disable("payments")
 * ```
 *
 * @since 0.1.0
 * @category controls
 */
export const disable: (
  name: string,
  key?: string
) => Effect.Effect<void, CircuitBreakerNotFound, CircuitBreakerRegistry> = control("disable")

/**
 * Puts a breaker into `MetricsOnly` by name.
 *
 * @example
 * ```ts
 * import { CircuitBreakerRegistry } from "@effect-resilience/core"
 *
 * const dryRun = CircuitBreakerRegistry.metricsOnly("payments")
 * ```
 *
 * @since 0.1.0
 * @category controls
 */
export const metricsOnly: (
  name: string,
  key?: string
) => Effect.Effect<void, CircuitBreakerNotFound, CircuitBreakerRegistry> = control("metricsOnly")

/**
 * Resets a breaker by name to a fresh, live `Closed`.
 *
 * @example
 * ```ts
 * import { CircuitBreakerRegistry } from "@effect-resilience/core"
 *
 * const recover = CircuitBreakerRegistry.reset("payments")
 * ```
 *
 * @since 0.1.0
 * @category controls
 */
export const reset: (
  name: string,
  key?: string
) => Effect.Effect<void, CircuitBreakerNotFound, CircuitBreakerRegistry> = control("reset")

/**
 * Snapshots of every named policy (`Policy.make` under this registry): each with its parts' snapshots.
 *
 * @example
 * ```ts
 * import { CircuitBreakerRegistry } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * const dashboard = CircuitBreakerRegistry.policySnapshots.pipe(Effect.map((all) => JSON.stringify(all)))
 * ```
 *
 * @since 0.1.0
 * @category accessors
 */
export const policySnapshots: Effect.Effect<ReadonlyArray<PolicySnapshot>, never, CircuitBreakerRegistry> =
  RegistryService
    .use((registry) => Effect.forEach(registry.policies(), (policy) => policy.snapshot))
