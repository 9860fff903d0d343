/**
 * A named resilience policy: the policies of this package composed in the one order that works, whatever order
 * they are given in.
 *
 * ```
 * fallback                     protect(self, fallback): answers when everything inside gave up
 *   circuit breaker            one outcome per call: fails fast while the dependency is down
 *     retry                    retries what failed inside, honouring retryAfter and the retry budget
 *       rate limiter           every attempt spends a token
 *         hedge                a slow attempt gets company
 *           timeout            per attempt (and per hedged attempt)
 *             bulkhead         bounds concurrent attempts; queue time counts against the timeout
 *               chaos          injected faults and latency look like the dependency's own
 *                 the call
 * ```
 *
 * **Details**
 *
 * - The order is fixed by construction: `make` takes each part in a named slot, and `protect` always nests them as
 *   above. Leave a slot out and the part is skipped.
 * - Errors accumulate in the type: `protect` adds exactly the rejections of the parts present (`CircuitOpen` and
 *   `CircuitHalfOpen`, `RetryBudgetExhausted`, `RateLimited`, `TimeoutError`, `BulkheadFull`, the chaos fault), so
 *   `Effect.catchTag` works for each, inside or outside.
 * - Local rejections (`BulkheadFull`, `RateLimited`) never count against the breaker; a `TimeoutError` or a
 *   retried call that still failed does.
 * - Made under a `CircuitBreakerRegistry`, the policy is listed there with its parts' snapshots.
 *
 * **Example** (A policy for a search API)
 *
 * ```ts
 * import { Bulkhead, CircuitBreaker, Policy, Retry, Timeout } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * const program = Effect.gen(function*() {
 *   const search = yield* Policy.make("search", {
 *     circuitBreaker: yield* CircuitBreaker.make({ name: "search" }),
 *     retry: yield* Retry.make({ name: "search", schedule: Retry.exponential({ base: "100 millis", times: 3 }) }),
 *     timeout: yield* Timeout.make({ name: "search", duration: "2 seconds" }),
 *     bulkhead: yield* Bulkhead.make({ name: "search", maxConcurrent: 10 })
 *   })
 *   return yield* search.protect(Effect.succeed(["result"]), () => Effect.succeed([]))
 * }).pipe(Effect.scoped)
 * ```
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type * as Bulkhead from "./Bulkhead.ts"
import type * as Chaos from "./Chaos.ts"
import type * as CircuitBreaker from "./CircuitBreaker.ts"
import type * as Hedge from "./Hedge.ts"
import { enlist } from "./internal/registry.ts"
import type { PolicyConfigError } from "./PolicyConfig.ts"
import type * as RateLimiter from "./RateLimiter.ts"
import type * as Retry from "./Retry.ts"
import type * as Timeout from "./Timeout.ts"

/**
 * @example
 * ```ts
 * import { Policy } from "@effect-resilience/core"
 *
 * const isPolicy = (u: object) => Policy.TypeId in u
 * ```
 *
 * @since 0.1.0
 * @category type IDs
 */
export const TypeId: TypeId = "~@effect-resilience/core/Policy"

/**
 * @example
 * ```ts
 * import type { Policy } from "@effect-resilience/core"
 *
 * type Id = Policy.TypeId // "~@effect-resilience/core/Policy"
 * ```
 *
 * @since 0.1.0
 * @category type IDs
 */
export type TypeId = "~@effect-resilience/core/Policy"

/**
 * The parts of a policy, each in its slot. Every slot is optional.
 *
 * @example
 * ```ts
 * import { type Policy, Timeout } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * const stages = Effect.map(Timeout.make({ name: "llm", duration: "30 seconds" }), (timeout): Policy.Stages => ({
 *   timeout
 * }))
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Stages {
  readonly circuitBreaker?: CircuitBreaker.CircuitBreaker | undefined
  readonly retry?: Retry.Retry<unknown> | undefined
  readonly rateLimiter?: RateLimiter.RateLimiter | undefined
  readonly hedge?: Hedge.Hedge | undefined
  readonly timeout?: Timeout.Timeout | undefined
  readonly bulkhead?: Bulkhead.Bulkhead | undefined
  readonly chaos?: Chaos.Chaos<unknown> | undefined
}

/**
 * The slots, outermost first: the order `protect` nests the parts in.
 *
 * @example
 * ```ts
 * import { Policy } from "@effect-resilience/core"
 *
 * Policy.order[0] // "circuitBreaker"
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export const order = ["circuitBreaker", "retry", "rateLimiter", "hedge", "timeout", "bulkhead", "chaos"] as const

type Present<S, K extends keyof Stages> = S extends { readonly [P in K]: infer X } ? undefined extends X ? never
  : X
  : never

/**
 * The errors a policy with parts `S` adds to a call's error channel.
 *
 * @example
 * ```ts
 * import type { Policy, Timeout } from "@effect-resilience/core"
 *
 * type OnlyTimeout = Policy.Errors<{ readonly timeout: Timeout.Timeout }> // Timeout.TimeoutError
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type Errors<S> =
  | ([Present<S, "circuitBreaker">] extends [never] ? never : CircuitBreaker.Rejection)
  | RetryErrors<Present<S, "retry">>
  | ([Present<S, "rateLimiter">] extends [never] ? never : RateLimiter.Rejection)
  | ([Present<S, "timeout">] extends [never] ? never : Timeout.TimeoutError)
  | ([Present<S, "bulkhead">] extends [never] ? never : Bulkhead.BulkheadFull)
  | ChaosErrors<Present<S, "chaos">>

// Naked type parameters, so that an absent part (never) distributes to never rather than inferring unknown.
type RetryErrors<P> = P extends Retry.Retry<infer E> ? E : never
type ChaosErrors<P> = P extends Chaos.Chaos<infer E> ? E : never

/**
 * A policy's snapshot: its name, the parts present in nesting order, and each part's own snapshot.
 *
 * @example
 * ```ts
 * import type { Policy } from "@effect-resilience/core"
 *
 * const parts = (snapshot: Policy.Snapshot) => snapshot.order.join(" > ")
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Snapshot {
  readonly name: string
  readonly order: ReadonlyArray<typeof order[number]>
  readonly stages: { readonly [K in typeof order[number]]?: unknown }
}

/**
 * A named policy.
 *
 * @example
 * ```ts
 * import { Policy, Timeout } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * const guarded = (policy: Policy.Policy<{ readonly timeout: Timeout.Timeout }>) =>
 *   Effect.succeed(1).pipe(policy.protect, Effect.catchTag("TimeoutError", () => Effect.succeed(0)))
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Policy<S extends Stages> {
  readonly [TypeId]: TypeId
  readonly name: string
  readonly stages: S
  /**
   * Runs `self` through every part, in order. With a `fallback`, whatever the parts finally fail with goes to it:
   * the fallback is outermost.
   */
  readonly protect: {
    <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E | Errors<S>, R>
    <A, E, R, B, E2, R2>(
      self: Effect.Effect<A, E, R>,
      fallback: (error: E | Errors<S>) => Effect.Effect<B, E2, R2>
    ): Effect.Effect<A | B, E2, R | R2>
  }
  readonly snapshot: Effect.Effect<Snapshot>
}

interface Part {
  readonly protect: <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, unknown, R>
  readonly snapshot: unknown
}

/**
 * Composes `stages` into a named policy. Made under a `CircuitBreakerRegistry`, it is listed there (a name can be
 * taken once: a second policy of the same name fails with `PolicyConfigError`) until its scope closes.
 *
 * @example
 * ```ts
 * import { CircuitBreaker, Policy, Retry } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * const program = Effect.gen(function*() {
 *   const llm = yield* Policy.make("llm", {
 *     circuitBreaker: yield* CircuitBreaker.make({ name: "llm" }),
 *     retry: yield* Retry.make({ name: "llm", schedule: Retry.exponential({ base: "1 second", times: 2 }) })
 *   })
 *   return yield* llm.protect(Effect.succeed("answer"))
 * }).pipe(Effect.scoped)
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = <const S extends Stages>(
  name: string,
  stages: S
): Effect.Effect<Policy<S>, PolicyConfigError, Scope.Scope> =>
  Effect.gen(function*() {
    const present: Array<typeof order[number]> = order.filter((slot) => stages[slot] !== undefined)
    // One call site per slot, innermost first: a loop over the parts would make one call site see every part's
    // `protect` (megamorphic), which costs tens of nanoseconds per call on the success path.
    const part = (slot: typeof order[number]): Part["protect"] | undefined =>
      (stages[slot] as Part | undefined)?.protect
    const chaos = part("chaos")
    const bulkhead = part("bulkhead")
    const timeout = part("timeout")
    const hedge = part("hedge")
    const rateLimiter = part("rateLimiter")
    const retry = part("retry")
    const circuitBreaker = part("circuitBreaker")
    const wrap = <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, unknown, R> => {
      let effect: Effect.Effect<A, unknown, R> = self
      if (chaos !== undefined) effect = chaos(effect)
      if (bulkhead !== undefined) effect = bulkhead(effect)
      if (timeout !== undefined) effect = timeout(effect)
      if (hedge !== undefined) effect = hedge(effect)
      if (rateLimiter !== undefined) effect = rateLimiter(effect)
      if (retry !== undefined) effect = retry(effect)
      if (circuitBreaker !== undefined) effect = circuitBreaker(effect)
      return effect
    }
    const protect = (
      self: Effect.Effect<unknown, unknown, unknown>,
      fallback?: (error: unknown) => Effect.Effect<unknown, unknown, unknown>
    ) => fallback === undefined ? wrap(self) : Effect.catch(wrap(self), fallback)

    const snapshot: Effect.Effect<Snapshot> = Effect.map(
      Effect.forEach(present, (slot) =>
        slot === "circuitBreaker"
          // A breaker's snapshot is per key; the policy shows all of them.
          ? stages.circuitBreaker!.snapshots
          : (stages[slot] as { readonly snapshot: Effect.Effect<unknown> }).snapshot),
      (snapshots) => ({
        name,
        order: present,
        stages: Object.fromEntries(present.map((slot, i) => [slot, snapshots[i]]))
      })
    )
    const policy: Policy<S> = {
      [TypeId]: TypeId,
      name,
      stages,
      protect: protect as Policy<S>["protect"],
      snapshot
    }

    yield* enlist("policy", name, (registry) => registry.addPolicy(policy), (registry) => registry.removePolicy(policy))
    return policy
  })
