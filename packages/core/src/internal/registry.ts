/**
 * The registry's service key lives here so that `CircuitBreaker.make` can find the registry it is made under
 * without the two public modules importing each other.
 *
 * @internal
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import type * as Stream from "effect/Stream"
import type { CircuitBreaker, Transition } from "../CircuitBreaker.ts"
import type { Snapshot as PolicySnapshot } from "../Policy.ts"
import { error as configError, type PolicyConfigError } from "../PolicyConfig.ts"

/** What the registry needs of a named policy (`Policy.Policy`). @internal */
export interface NamedPolicy {
  readonly name: string
  readonly snapshot: Effect.Effect<PolicySnapshot>
}

/** @internal */
export interface Registry {
  /** Adds a breaker; false when the name is taken. */
  readonly add: (breaker: CircuitBreaker<never>) => boolean
  readonly remove: (breaker: CircuitBreaker<never>) => void
  /** Forwards a breaker's transitions to the registry-wide stream. */
  readonly publish: (transitions: ReadonlyArray<Transition>) => Effect.Effect<void>
  /**
   * Increases, synchronously, whenever a registered breaker changes state or a breaker joins or leaves: something
   * computed from the breakers' states is still current while it has not moved (but for an Open breaker, which turns
   * half-open by time alone).
   */
  readonly revision: () => number
  /** Called by a registered breaker inside the step that changes a state, before the transition is published. */
  readonly changed: () => void
  readonly breakers: () => ReadonlyArray<CircuitBreaker<never>>
  /** Adds a named policy; false when the name is taken. */
  readonly addPolicy: (policy: NamedPolicy) => boolean
  readonly removePolicy: (policy: NamedPolicy) => void
  readonly policies: () => ReadonlyArray<NamedPolicy>
  readonly transitions: Stream.Stream<Transition>
  /**
   * The name of every breaker that joins or leaves, from subscription on: no transition says that a breaker is gone,
   * or that one with a state of its own took its name.
   */
  readonly members: Stream.Stream<string>
}

/** @internal */
export class RegistryService extends Context.Service<RegistryService, Registry>()(
  "@effect-resilience/core/CircuitBreakerRegistry"
) {}

/**
 * Lists something in the registry in context, if there is one, until the scope closes. A name can be taken once.
 *
 * @internal
 */
export const enlist = (
  kind: "circuit breaker" | "policy",
  name: string,
  add: (registry: Registry) => boolean,
  remove: (registry: Registry) => void
): Effect.Effect<void, PolicyConfigError, Scope.Scope> =>
  Effect.flatMap(Effect.serviceOption(RegistryService), (registry) => {
    if (Option.isNone(registry)) return Effect.void
    // Listed and given the finalizer that unlists it in one step: an interruption in between would keep the name
    // taken for good.
    return Effect.uninterruptible(Effect.suspend(() => {
      if (!add(registry.value)) {
        return Effect.fail(
          configError({ kind, policy: name }, "name", `Expected a name not yet registered, but "${name}" is taken`)
        )
      }
      return Effect.addFinalizer(() => Effect.sync(() => remove(registry.value)))
    }))
  })
