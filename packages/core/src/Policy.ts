/**
 * A named resilience policy: the policies of this package composed in the one order that works, whatever order
 * they are given in.
 *
 * ```
 * fallback                     withFallback: answers when everything inside gave up
 *   circuit breaker            one outcome per call: fails fast while the dependency is down
 *     retry                    retries what failed inside, honouring retryAfter and the retry budget
 *       hedge                  a slow attempt gets company
 *         rate limiter         every attempt spends a token, a hedged one too (never waiting for one)
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
 * - `protect` takes one argument, so it pipes with its types intact: `call.pipe(policy.protect)`. The fallback is
 *   its own combinator, `withFallback`, outside `protect`: its input is the call's full error union, and what it
 *   returns replaces the errors.
 * - Errors accumulate in the type: `protect` adds exactly the rejections of the parts present
 *   (`CircuitBreakerError`, `RetryBudgetExhausted`, `RateLimiterError`, `TimeoutError`, `BulkheadFull`, the chaos
 *   fault), so `Effect.catchTag` works for each, inside or outside.
 * - Local rejections (`BulkheadFull`, `RateLimiterError`, a nested breaker's `CircuitBreakerError`) never count
 *   against the breaker; a `TimeoutError` or a retried call that still failed does.
 * - `isFailureResult` classifies success values (an HTTP 503 returned as a value): inside the policy such a value
 *   is a failure for every part (the breaker counts it whatever its `isFailure` says, the retry retries it whatever
 *   its `while` says, a hedge waits for a better answer); outside, the caller gets the last value back once
 *   everything gave up, as a success. A rejection (an open circuit, a full bulkhead) is still an error: there is no
 *   value to give back. `protect` takes only calls whose success the classifiers (the policy's, its breaker's and
 *   its retry's) can judge.
 * - Made under a `CircuitBreakerRegistry`, the policy is listed there with its parts' snapshots.
 *
 * **Example** (A policy for a search API)
 *
 * ```ts
 * import { Bulkhead, CircuitBreaker, Policy, Retry, Timeout } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * const program = Effect.gen(function*() {
 *   const search = yield* Policy.make({
 *     name: "search",
 *     circuitBreaker: yield* CircuitBreaker.make({ name: "search" }),
 *     retry: yield* Retry.make({ name: "search", schedule: Retry.exponential({ base: "100 millis", times: 3 }) }),
 *     timeout: yield* Timeout.make({ name: "search", duration: "2 seconds" }),
 *     bulkhead: yield* Bulkhead.make({ name: "search", maxConcurrent: 10 })
 *   })
 *   return yield* Effect.succeed(["result"]).pipe(
 *     search.protect,
 *     Policy.withFallback(() => Effect.succeed([]))
 *   )
 * }).pipe(Effect.scoped)
 * ```
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import type * as Fiber from "effect/Fiber"
import { dual } from "effect/Function"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import type * as Bulkhead from "./Bulkhead.ts"
import type * as Chaos from "./Chaos.ts"
import type * as CircuitBreaker from "./CircuitBreaker.ts"
import type * as Hedge from "./Hedge.ts"
import { classifying, unwrapping } from "./internal/failureResult.ts"
import { admissions } from "./internal/guard.ts"
import { enlist } from "./internal/registry.ts"
import { retriers } from "./internal/retry.ts"
import { limiters, type Resume, starters } from "./internal/timeout.ts"
import { decode, type PolicyConfigError } from "./PolicyConfig.ts"
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
  // `never`: a part made with an `isFailureResult` over any success type fits its slot.
  readonly circuitBreaker?: CircuitBreaker.CircuitBreaker<never> | undefined
  readonly retry?: Retry.Retry<unknown, never> | undefined
  readonly rateLimiter?: RateLimiter.RateLimiter | undefined
  readonly hedge?: Hedge.Hedge | undefined
  readonly timeout?: Timeout.Timeout | undefined
  readonly bulkhead?: Bulkhead.Bulkhead | undefined
  readonly chaos?: Chaos.Chaos<unknown> | undefined
}

/**
 * Options for `make`: a `name`, the parts in their slots (all optional), and `isFailureResult`.
 *
 * @example
 * ```ts
 * import type { Policy, Timeout } from "@effect-resilience/core"
 *
 * interface Response {
 *   readonly status: number
 * }
 *
 * const options = (timeout: Timeout.Timeout): Policy.Options<Response> => ({
 *   name: "billing",
 *   timeout,
 *   isFailureResult: (response) => response.status >= 500
 * })
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export interface Options<A = unknown> extends Stages {
  /** Names the policy in the registry. */
  readonly name: string
  /**
   * Which success values count as failures inside the policy (every part sees a failure); the caller still gets
   * the value back when everything gave up. Default: none.
   */
  readonly isFailureResult?: ((value: A) => boolean) | undefined
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
export const order = ["circuitBreaker", "retry", "hedge", "rateLimiter", "timeout", "bulkhead", "chaos"] as const

/**
 * A slot's name.
 *
 * @example
 * ```ts
 * import type { Policy } from "@effect-resilience/core"
 *
 * const outermost: Policy.Slot = "circuitBreaker"
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export type Slot = typeof order[number]

// The part in slot K when S surely has one; never otherwise.
type Present<S, K extends keyof Stages> = S extends { readonly [P in K]: infer X } ? undefined extends X ? never
  : X
  : never

// The part in slot K when S may have one (an optional slot may): what its errors can be.
type Possible<S, K extends keyof Stages> = K extends keyof S ? Exclude<S[K], undefined> : never

/**
 * The errors a policy with parts `S` adds to a call's error channel: those of every part it has, or may have (an
 * optional slot).
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
  | ([Possible<S, "circuitBreaker">] extends [never] ? never : CircuitBreaker.Rejection)
  | RetryErrors<Possible<S, "retry">>
  | ([Possible<S, "rateLimiter">] extends [never] ? never : RateLimiter.RateLimiterError)
  | ([Possible<S, "timeout">] extends [never] ? never : Timeout.TimeoutError)
  | ([Possible<S, "bulkhead">] extends [never] ? never : Bulkhead.BulkheadFull)
  | ChaosErrors<Possible<S, "chaos">>

// Naked type parameters, so that an absent part (never) distributes to never rather than inferring unknown.
type RetryErrors<P> = P extends Retry.Retry<infer E, infer _A> ? E : never
type ChaosErrors<P> = P extends Chaos.Chaos<infer E> ? E : never

/**
 * The success values a policy with parts `S` and classifier input `A` accepts: those its own `isFailureResult`,
 * its breaker's and its retry's can all judge.
 *
 * @example
 * ```ts
 * import type { Policy, Timeout } from "@effect-resilience/core"
 *
 * type Anything = Policy.Accepts<{ readonly timeout: Timeout.Timeout }, unknown> // unknown
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export type Accepts<S, A> = A & BreakerAccepts<Present<S, "circuitBreaker">> & RetryAccepts<Present<S, "retry">>

type BreakerAccepts<P> = [P] extends [never] ? unknown
  : P extends CircuitBreaker.CircuitBreaker<infer A> ? A
  : unknown
type RetryAccepts<P> = [P] extends [never] ? unknown : P extends Retry.Retry<infer _E, infer A> ? A : unknown

/**
 * Each slot's snapshot: a breaker's is one per key (`snapshots`), every other part's is its own `Snapshot`.
 *
 * @example
 * ```ts
 * import type { Policy } from "@effect-resilience/core"
 *
 * const retries = (stages: Policy.StageSnapshots) => stages.retry.retries
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export interface StageSnapshots {
  readonly circuitBreaker: ReadonlyArray<CircuitBreaker.Snapshot>
  readonly retry: Retry.Snapshot
  readonly rateLimiter: RateLimiter.Snapshot
  readonly hedge: Hedge.Snapshot
  readonly timeout: Timeout.Snapshot
  readonly bulkhead: Bulkhead.Snapshot
  readonly chaos: Chaos.Snapshot
}

/**
 * The snapshots of the parts of `S`: a part `S` surely has is there, one it may have is optional, and a slot `S`
 * does not name is absent.
 *
 * @example
 * ```ts
 * import type { Policy, Timeout } from "@effect-resilience/core"
 *
 * const limit = (stages: Policy.SnapshotsOf<{ readonly timeout: Timeout.Timeout }>) => stages.timeout.durationMillis
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export type SnapshotsOf<S> =
  & { readonly [K in Slot as [Present<S, K>] extends [never] ? never : K]: StageSnapshots[K] }
  & {
    readonly [K in Slot as K extends keyof S ? [Present<S, K>] extends [never] ? K : never : never]?:
      | StageSnapshots[K]
      | undefined
  }

/**
 * A policy's snapshot: its name, the parts present in nesting order, and each part's own snapshot, typed by slot.
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
export interface Snapshot<S extends Stages = Stages> {
  readonly name: string
  readonly order: ReadonlyArray<Slot>
  readonly stages: SnapshotsOf<S>
}

/**
 * A named policy. `S` holds its parts, `A` what its `isFailureResult` judges.
 *
 * @example
 * ```ts
 * import type { Policy, Timeout } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * const guarded = (policy: Policy.Policy<{ readonly timeout: Timeout.Timeout }>) =>
 *   Effect.succeed(1).pipe(policy.protect, Effect.catchTag("TimeoutError", () => Effect.succeed(0)))
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Policy<S extends Stages, A = unknown> {
  readonly [TypeId]: TypeId
  readonly name: string
  /** The parts, by slot. */
  readonly stages: { readonly [K in keyof S & Slot]: S[K] }
  /** Runs `self` through every part, in order: `call.pipe(policy.protect)` or `policy.protect(call)`. */
  readonly protect: <B extends Accepts<S, A>, E, R>(self: Effect.Effect<B, E, R>) => Effect.Effect<B, E | Errors<S>, R>
  /** The name, the parts present and their snapshots. */
  readonly snapshot: Effect.Effect<Snapshot<S>>
}

type Protect = <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, unknown, R>

const OptionsSchema = Schema.Struct({
  name: Schema.NonEmptyString,
  isFailureResult: Schema.optional(Schema.Unknown.check(
    Schema.makeFilter((input) => typeof input === "function" ? undefined : "Expected a function (value) => boolean")
  ))
})

/**
 * Composes the parts given in their slots into a named policy. Options are validated with Schema; a bad value
 * fails with `PolicyConfigError`. Made under a `CircuitBreakerRegistry`, it is listed there (a name can be taken
 * once: a second policy of the same name fails with `PolicyConfigError`) until its scope closes.
 *
 * @example
 * ```ts
 * import { CircuitBreaker, Policy, Retry } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * interface Answer {
 *   readonly status: number
 *   readonly text: string
 * }
 *
 * const program = Effect.gen(function*() {
 *   const llm = yield* Policy.make({
 *     name: "llm",
 *     circuitBreaker: yield* CircuitBreaker.make({ name: "llm" }),
 *     retry: yield* Retry.make({ name: "llm", schedule: Retry.exponential({ base: "1 second", times: 2 }) }),
 *     // An overloaded answer is a failure: retried, counted by the breaker, returned if nothing better comes.
 *     isFailureResult: (answer: Answer) => answer.status === 529
 *   })
 *   return yield* Effect.succeed({ status: 200, text: "answer" }).pipe(llm.protect)
 * }).pipe(Effect.scoped)
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = <const S extends Stages, A = unknown>(
  options: S & Options<A>
): Effect.Effect<Policy<S, A>, PolicyConfigError, Scope.Scope> =>
  Effect.gen(function*() {
    const name = options.name
    yield* decode(OptionsSchema, {
      name,
      ...(options.isFailureResult === undefined ? {} : { isFailureResult: options.isFailureResult })
    }, { kind: "policy", policy: String(name) })
    const stages: Stages = options
    const present: Array<Slot> = order.filter((slot) => stages[slot] !== undefined)
    // One call site per slot, innermost first: a loop over the parts would make one call site see every part's
    // `protect` (megamorphic), which costs tens of nanoseconds per call on the success path.
    const part = (slot: Slot): Protect | undefined =>
      (stages[slot] as { readonly protect: Protect } | undefined)?.protect
    const chaos = part("chaos")
    const bulkhead = part("bulkhead")
    const timeout = part("timeout")
    const hedge = part("hedge")
    const rateLimiter = part("rateLimiter")
    const retry = part("retry")
    const circuitBreaker = part("circuitBreaker")
    // A retry right around a timeout (nothing between them) runs as one callback: the retry's counting and its
    // failure handler ride on the timeout's, two effect steps fewer on every call (see `Limiter.runRetried`). A
    // breaker right around them (or right around the timeout) joins that callback for every call its closed circuit
    // admits, three steps fewer (see `Limiter.runGuarded`).
    const retrier = stages.retry === undefined ? undefined : retriers.get(stages.retry)
    const limiter = stages.timeout === undefined ? undefined : limiters.get(stages.timeout)
    const adjacent = limiter !== undefined && hedge === undefined && rateLimiter === undefined &&
      (retry === undefined || retrier !== undefined)
    const timed: Protect | undefined = adjacent
      ? retrier === undefined ? timeout : <B, E, R>(self: Effect.Effect<B, E, R>) => limiter.runRetried(self, retrier)
      : undefined
    const admission = stages.circuitBreaker === undefined ? undefined : admissions.get(stages.circuitBreaker)
    // What the callback runs instead for a call its breaker does not admit at once: the parts composed.
    const composed = timed !== undefined && admission !== undefined && circuitBreaker !== undefined
      ? <B, E, R>(self: Effect.Effect<B, E, R>) => circuitBreaker(timed(self))
      : undefined
    const fused = composed === undefined
      ? undefined
      : <B, E, R>(self: Effect.Effect<B, E, R>) => limiter!.runGuarded(self, retrier, admission!, composed)
    // The parts inside the timeout, which every attempt runs through.
    const inner = <B, E, R>(self: Effect.Effect<B, E, R>): Effect.Effect<B, unknown, R> => {
      let effect: Effect.Effect<B, unknown, R> = self
      if (chaos !== undefined) effect = chaos(effect)
      if (bulkhead !== undefined) effect = bulkhead(effect)
      return effect
    }
    const isFailureResult = options.isFailureResult as ((value: unknown) => boolean) | undefined
    // Identifies the values this policy classified, so that only this policy unwraps them.
    const owner = {}
    const protect = <B, E, R>(self: Effect.Effect<B, E, R>): Effect.Effect<B, unknown, R> => {
      let effect = inner(isFailureResult === undefined ? self : classifying(self, isFailureResult, owner))
      if (fused !== undefined) effect = fused(effect)
      else {
        if (timed !== undefined) effect = timed(effect)
        else {
          if (timeout !== undefined) effect = timeout(effect)
          if (rateLimiter !== undefined) effect = rateLimiter(effect)
          if (hedge !== undefined) effect = hedge(effect)
          if (retry !== undefined) effect = retry(effect)
        }
        if (circuitBreaker !== undefined) effect = circuitBreaker(effect)
      }
      return isFailureResult === undefined ? effect : unwrapping(effect, owner)
    }
    // The fused path, for a fallback chain to start from its own callback (see `Fallback.withPolicy`).
    const starter = composed !== undefined && isFailureResult === undefined
      ? <B, E, R>(self: Effect.Effect<B, E, R>, caller: Fiber.Fiber<unknown, unknown>, resume: Resume) =>
        limiter!.startGuarded(caller, inner(self), retrier, admission!, composed, resume)
      : undefined

    const snapshot = Effect.map(
      Effect.forEach(present, (slot) =>
        slot === "circuitBreaker"
          // A breaker's snapshot is per key; the policy shows all of them.
          ? stages.circuitBreaker!.snapshots
          : (stages[slot] as { readonly snapshot: Effect.Effect<unknown> }).snapshot),
      (snapshots) => ({
        name,
        order: present,
        stages: Object.fromEntries(present.map((slot, i) => [slot, snapshots[i]])) as SnapshotsOf<S>
      })
    )
    const policy: Policy<S, A> = {
      [TypeId]: TypeId,
      name,
      stages: Object.fromEntries(present.map((slot) => [slot, stages[slot]])) as Policy<S, A>["stages"],
      protect: protect as Policy<S, A>["protect"],
      snapshot
    }

    if (starter !== undefined) starters.set(policy, starter)
    // The registry lists every policy as one of any parts: its snapshot is a `Snapshot` of every slot optional.
    const listed = { name, snapshot: snapshot as Effect.Effect<Snapshot> }
    yield* enlist("policy", name, (registry) => registry.addPolicy(listed), (registry) => registry.removePolicy(listed))
    return policy
  })

/**
 * The fallback: answers for whatever `self` finally fails with. Its input is `self`'s full error union (for a
 * protected call, the call's errors and every part's rejections), and what it returns replaces the errors. Put it
 * outside `protect`, so that it answers only once everything inside gave up.
 *
 * @example
 * ```ts
 * import { Policy, Timeout } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * const cachedPrice = (policy: Policy.Policy<{ readonly timeout: Timeout.Timeout }>) =>
 *   Effect.succeed(42).pipe(
 *     policy.protect,
 *     Policy.withFallback((error) => Effect.log(`fallback after ${error._tag}`).pipe(Effect.as(40)))
 *   )
 * ```
 *
 * @since 0.2.0
 * @category combinators
 */
export const withFallback: {
  <E, B, E2, R2>(
    fallback: (error: E) => Effect.Effect<B, E2, R2>
  ): <A, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A | B, E2, R | R2>
  <A, E, R, B, E2, R2>(
    self: Effect.Effect<A, E, R>,
    fallback: (error: E) => Effect.Effect<B, E2, R2>
  ): Effect.Effect<A | B, E2, R | R2>
} = dual(
  2,
  <A, E, R, B, E2, R2>(
    self: Effect.Effect<A, E, R>,
    fallback: (error: E) => Effect.Effect<B, E2, R2>
  ): Effect.Effect<A | B, E2, R | R2> => Effect.catch(self, fallback)
)
