/**
 * Typed fallback chains: several ways to answer the same request (a provider, another provider, a cache, a canned
 * answer), tried in order until one serves. The answer says which step served it, whether it is degraded and how
 * old it is; every serve is counted by step.
 *
 * **Details**
 *
 * - A `Step` is a description: a name, a function from the request to an effect, and the strategies it is wrapped
 *   in. `make({ name, steps })` validates and builds the steps into a `Fallback`; `fallback.run(input)` tries them
 *   in order. The order is the priority: the first step is the preferred one.
 * - A step that fails (a typed failure) passes the request to the next step. The chain fails only when the last step
 *   does, with the last step's error: the error type is the last step's, whatever the steps before fail with, so a
 *   chain that ends in a total answer (`succeed`, `degraded` over a pure function) cannot fail at all. Defects and
 *   interruptions are not failures to fall back from: they end the call as they would anywhere.
 * - Result-based classification: `step(name, f, { isFailureResult })` judges values too (an HTTP 503 returned as a
 *   value). Such a value passes the request on like a failure; only the last step serves it (degraded), so the error
 *   type stays the last step's.
 * - Breaker-aware skipping: a step guarded by a breaker (`withBreaker`, or `withPolicy` with a breaker slot) is
 *   passed over without being called, and without waiting, while the breaker is open or forced open; a breaker
 *   rejection at call time (half-open, every probe slot taken) passes the request on the same way. The last step is
 *   always run, so the chain fails with its rejection.
 * - Strategies are step combinators: `withBreaker` and `withPolicy` guard a step; `staleOnError` serves the last good
 *   value (with its age) when the step fails; `cacheFirst` serves from the cache and refreshes in the background,
 *   within a bounded staleness. `degraded` and `succeed` make the simplified answers a chain ends with.
 * - `Served` says which step served (`servedBy`, `index`), whether the answer is degraded (a step marked degraded,
 *   or a stale value), its `age` (zero for a live answer), and which steps were passed over and why.
 * - Counting: per step, serves, failures and skips; per chain, calls, degraded serves and exhausted calls. They are
 *   Effect `Metric`s (`fallback_*`, attributes `fallback` and `step`) read when exported, and a `snapshot`. Made
 *   where a `Fallback.Manager` is provided, a fallback is listed there: `Fallback.snapshots` gives every service's
 *   "served by" figures for a `/health` page.
 *
 * **Effect's `ExecutionPlan`** runs one effect against successive contexts (a layer per step, with attempts and
 * schedules), all with the same success and error types, and returns the value alone. A chain adds: a different
 * effect per step (a cache read, a constant), the error narrowing to the last step's, which step served and
 * whether the answer is degraded, breaker-aware skipping, strategies with state (last good values, background
 * refresh) and per-step counts. The two compose: a step's effect can be `Effect.withExecutionPlan(call, plan)`.
 *
 * **Gotchas**
 *
 * - Put a step's breaker inside `staleOnError` and `cacheFirst` (`step.pipe(withBreaker(b), staleOnError(...))`), so
 *   that an open breaker serves the stale value; a breaker outside them skips the whole step, cache and all.
 * - The cache strategies key values by the input: strings as they are, plain data as JSON. Pass `key` for anything
 *   else.
 *
 * **Example** (Web search: Exa, then Tavily, then the cache, then a message)
 *
 * ```ts
 * import { CircuitBreaker, Fallback } from "@effect-resilience/core"
 * import { Data, Effect } from "effect"
 *
 * class SearchError extends Data.TaggedError("SearchError")<{ readonly provider: string }> {}
 *
 * const exa = (query: string) => Effect.fail(new SearchError({ provider: "exa" }))
 * const tavily = (query: string) => Effect.succeed(`tavily: results for ${query}`)
 *
 * const program = Effect.gen(function*() {
 *   const search = yield* Fallback.make({
 *     name: "search",
 *     steps: [
 *       Fallback.step("exa", exa).pipe(Fallback.withBreaker(yield* CircuitBreaker.make({ name: "exa_api" }))),
 *       Fallback.step("tavily", tavily).pipe(Fallback.staleOnError({ maxAge: "1 hour" })),
 *       Fallback.succeed("unavailable", "Web search temporarily unavailable. Please try again.")
 *     ]
 *   })
 *   const served = yield* search.run("effect") // Effect<Served<string>, never>: the last step cannot fail
 *   return `${served.value} (served by ${served.servedBy}, degraded: ${served.degraded})`
 * }).pipe(Effect.scoped)
 * ```
 *
 * @since 0.2.0
 */
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import { dual } from "effect/Function"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { type Pipeable, pipeArguments } from "effect/Pipeable"
import * as Predicate from "effect/Predicate"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import type * as CircuitBreaker from "./CircuitBreaker.ts"
import { stateReaders } from "./internal/circuitBreaker.ts"
import * as internal from "./internal/fallback.ts"
import * as metrics from "./internal/metrics.ts"
import { isSucceeded, type Resume, type Starter, starters } from "./internal/timeout.ts"
import type * as Policy from "./Policy.ts"
import {
  decode,
  DurationInput,
  error as configError,
  millisOf,
  orDefault,
  type PolicyConfigError,
  PositiveInt
} from "./PolicyConfig.ts"

/**
 * @example
 * ```ts
 * import { Fallback } from "@effect-resilience/core"
 *
 * const isFallback = (u: object) => Fallback.TypeId in u
 * ```
 *
 * @since 0.2.0
 * @category type IDs
 */
export const TypeId: TypeId = "~@effect-resilience/core/Fallback"

/**
 * @example
 * ```ts
 * import type { Fallback } from "@effect-resilience/core"
 *
 * type Id = Fallback.TypeId // "~@effect-resilience/core/Fallback"
 * ```
 *
 * @since 0.2.0
 * @category type IDs
 */
export type TypeId = "~@effect-resilience/core/Fallback"

/**
 * @example
 * ```ts
 * import { Fallback } from "@effect-resilience/core"
 *
 * const isStep = (u: object) => Fallback.StepTypeId in u
 * ```
 *
 * @since 0.2.0
 * @category type IDs
 */
export const StepTypeId: StepTypeId = "~@effect-resilience/core/Fallback/Step"

/**
 * @example
 * ```ts
 * import type { Fallback } from "@effect-resilience/core"
 *
 * type Id = Fallback.StepTypeId // "~@effect-resilience/core/Fallback/Step"
 * ```
 *
 * @since 0.2.0
 * @category type IDs
 */
export type StepTypeId = "~@effect-resilience/core/Fallback/Step"

// -----------------------------------------------------------------------------
// models
// -----------------------------------------------------------------------------

/**
 * One way to answer a request of type `I` with an `A`: a description that `make` builds (validating its options
 * and giving stateful strategies their state), so that one step can be used in several chains.
 *
 * @example
 * ```ts
 * import { Fallback } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * const fromCache: Fallback.Step<string, string> = Fallback.step("cache", (query: string) =>
 *   Effect.succeed(`cached ${query}`)
 * )
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export interface Step<in I, out A, out E = never, out R = never> extends Pipeable {
  readonly [StepTypeId]: {
    readonly _I: (input: I) => void
    readonly _A: () => A
    readonly _E: () => E
    readonly _R: () => R
  }
  /** Names the step in `Served`, snapshots and metrics; unique in a chain. */
  readonly name: string
  /** Whether every answer of the step is degraded (a canned or simplified answer). */
  readonly degraded: boolean
  /** The step's options, for `make` to validate (`steps[i].<field>`). */
  readonly settings: ReadonlyArray<internal.Setting>
  /** Builds the step for a chain: used by `make`. */
  readonly build: (env: internal.Env) => internal.Runner<I, A, E, R>
}

/**
 * A step that passed a request on, and why: its breaker was open (or turned the call away), it failed, or its value
 * was judged a failure (`isFailureResult`).
 *
 * @example
 * ```ts
 * import type { Fallback } from "@effect-resilience/core"
 *
 * const describe = (passed: Fallback.Passed) => `${passed.step}: ${passed.reason}`
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export interface Passed {
  readonly step: string
  readonly reason: "BreakerOpen" | "Failed" | "FailureResult"
  /**
   * The step's error, the breaker's rejection, or the value `isFailureResult` rejected; `undefined` when the step was
   * skipped without a call.
   */
  readonly error: unknown
}

/**
 * A chain's answer: the value, the step that served it, whether it is degraded, and how old it is.
 *
 * @example
 * ```ts
 * import type { Fallback } from "@effect-resilience/core"
 *
 * const header = (served: Fallback.Served<unknown>) => served.degraded ? `degraded (${served.servedBy})` : "ok"
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export interface Served<A> {
  readonly value: A
  /** The name of the step that served. */
  readonly servedBy: string
  /** Its position in the chain, 0 for the first. */
  readonly index: number
  /** True when the step is marked degraded, or the value is a stale one (`staleOnError`, `cacheFirst`). */
  readonly degraded: boolean
  /**
   * How old the value is: zero for a live answer, the time since it was stored for a cached one (zero if it was stored
   * after the clock's now: the wall clock stepped back since).
   */
  readonly age: Duration.Duration
  /** The steps before `servedBy`, in order, and why each passed the request on. */
  readonly passed: ReadonlyArray<Passed>
}

/**
 * A step's figures in a snapshot.
 *
 * @example
 * ```ts
 * import type { Fallback } from "@effect-resilience/core"
 *
 * const share = (step: Fallback.StepSnapshot, calls: number) => calls === 0 ? 0 : step.served / calls
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export interface StepSnapshot {
  readonly name: string
  /** Whether the step is marked degraded. */
  readonly degraded: boolean
  /** Requests it served. */
  readonly served: number
  /** Requests it failed (and passed on, unless it was the last step). */
  readonly failed: number
  /** Requests passed over because its breaker was open or turned the call away. */
  readonly skipped: number
}

/**
 * A chain's figures since it was made, as plain data for a dashboard's "served by" column.
 *
 * @example
 * ```ts
 * import type { Fallback } from "@effect-resilience/core"
 *
 * const servedBy = (s: Fallback.Snapshot) => Object.fromEntries(s.steps.map((step) => [step.name, step.served]))
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export interface Snapshot {
  readonly name: string
  readonly calls: number
  /** Calls served by a degraded answer. */
  readonly degraded: number
  /** Calls every step failed. */
  readonly exhausted: number
  /** The step that served the last call served, if any. */
  readonly lastServedBy: string | null
  readonly steps: ReadonlyArray<StepSnapshot>
}

/**
 * The request type of a chain of `Steps`: what every step accepts.
 *
 * @example
 * ```ts
 * import type { Fallback } from "@effect-resilience/core"
 *
 * type In = Fallback.Input<[Fallback.Step<string, number>, Fallback.Step<unknown, number>]> // string
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export type Input<Steps extends ReadonlyArray<Any>> =
  (Steps[number] extends infer S ? S extends Step<infer I, infer _A, infer _E, infer _R> ? (input: I) => void : never
    : never) extends (input: infer I) => void ? I : never

/**
 * The success type of a chain of `Steps`: any step's.
 *
 * @example
 * ```ts
 * import type { Fallback } from "@effect-resilience/core"
 *
 * type Out = Fallback.Success<[Fallback.Step<string, number>, Fallback.Step<string, string>]> // number | string
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export type Success<Steps extends ReadonlyArray<Any>> = SuccessOf<Steps[number]>

/**
 * The error type of a chain of `Steps`: the last step's, since every other failure falls through to the next step.
 *
 * @example
 * ```ts
 * import type { Fallback } from "@effect-resilience/core"
 *
 * type Err = Fallback.Failure<[Fallback.Step<string, number, Error>, Fallback.Step<string, number>]> // never
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export type Failure<Steps extends ReadonlyArray<Any>> = Steps extends readonly [...Array<Any>, infer Last] ?
  ErrorOf<Last>
  : ErrorOf<Steps[number]>

/**
 * The services a chain of `Steps` needs: any step's.
 *
 * @example
 * ```ts
 * import type { Fallback } from "@effect-resilience/core"
 *
 * type Needs = Fallback.Services<[Fallback.Step<string, number>]> // never
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export type Services<Steps extends ReadonlyArray<Any>> = ServicesOf<Steps[number]>

/**
 * Any step, whatever its types: what `make` takes.
 *
 * @example
 * ```ts
 * import type { Fallback } from "@effect-resilience/core"
 *
 * const names = (steps: ReadonlyArray<Fallback.Any>) => steps.map((step) => step.name)
 * ```
 *
 * @since 0.2.0
 * @category models
 */
// Only the marker, no type parameters: as the constraint of `make`'s steps this is the contextual type of a step
// written inline, and a `Step<never, unknown, unknown, unknown>` (or `any`) there would win the inference of the
// step's own types (its services would read `unknown`).
export interface Any {
  readonly [StepTypeId]: unknown
  readonly name: string
}

type SuccessOf<S> = S extends Step<infer _I, infer A, infer _E, infer _R> ? A : never
type ErrorOf<S> = S extends Step<infer _I, infer _A, infer E, infer _R> ? E : never
type ServicesOf<S> = S extends Step<infer _I, infer _A, infer _E, infer R> ? R : never

/**
 * A built chain: `run` tries its steps in order for one request.
 *
 * @example
 * ```ts
 * import type { Fallback } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * const answer = (search: Fallback.Fallback<string, string, never, never>, query: string) =>
 *   search.run(query).pipe(Effect.map((served) => served.value))
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export interface Fallback<I, A, E, R> {
  readonly [TypeId]: TypeId
  readonly name: string
  /** The step names, in order. */
  readonly steps: ReadonlyArray<string>
  /** Tries the steps in order until one serves. Chains whose steps take no input run with `run()`. */
  readonly run: (...input: unknown extends I ? [input?: I] : [input: I]) => Effect.Effect<Served<A>, E, R>
  readonly snapshot: Effect.Effect<Snapshot>
}

/**
 * A store of last good values for `staleOnError` and `cacheFirst` (an in-memory one by default). It cannot fail:
 * wrap a store that can so that a failing read is a miss and a failing write is skipped.
 *
 * @example
 * ```ts
 * import type { Fallback } from "@effect-resilience/core"
 * import { Effect, Option } from "effect"
 *
 * const entries = new Map<string, Fallback.Entry<string>>()
 * const cache: Fallback.Cache<string> = {
 *   get: (key) => Effect.sync(() => Option.fromUndefinedOr(entries.get(key))),
 *   set: (key, entry) => Effect.sync(() => void entries.set(key, entry))
 * }
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export interface Cache<A> {
  readonly get: (key: string) => Effect.Effect<Option.Option<Entry<A>>>
  readonly set: (key: string, entry: Entry<A>) => Effect.Effect<void>
}

/**
 * A value in a `Cache`, with when it was stored (epoch milliseconds, from `Clock`).
 *
 * @example
 * ```ts
 * import type { Fallback } from "@effect-resilience/core"
 *
 * const entry: Fallback.Entry<string> = { value: "results", storedAt: 0 }
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export type Entry<A> = internal.Entry<A>

// -----------------------------------------------------------------------------
// steps
// -----------------------------------------------------------------------------

const StepProto = {
  [StepTypeId]: {
    _I: (_: unknown) => {},
    _A: () => undefined,
    _E: () => undefined,
    _R: () => undefined
  },
  pipe() {
    return pipeArguments(this, arguments)
  }
}

const makeStep = <I, A, E, R>(fields: {
  readonly name: string
  readonly degraded: boolean
  readonly settings: ReadonlyArray<internal.Setting>
  readonly build: (env: internal.Env) => internal.Runner<I, A, E, R>
}): Step<I, A, E, R> => Object.assign(Object.create(StepProto), fields)

/**
 * Whether a value is a `Step`.
 *
 * @example
 * ```ts
 * import { Fallback } from "@effect-resilience/core"
 *
 * Fallback.isStep(Fallback.succeed("canned", 1)) // true
 * ```
 *
 * @since 0.2.0
 * @category guards
 */
export const isStep = (u: unknown): u is Step<unknown, unknown, unknown, unknown> =>
  Predicate.hasProperty(u, StepTypeId)

const live = <A>(value: A, degraded: boolean, failureResult = false): internal.Answer<A> => ({
  value,
  ageMillis: 0,
  degraded,
  failureResult
})

// A value stored after `now` (the wall clock stepped back since) is given no negative age.
const cached = <A>(entry: internal.Entry<A>, now: number, degraded: boolean): internal.Answer<A> => ({
  value: entry.value,
  ageMillis: Math.max(0, now - entry.storedAt),
  degraded,
  failureResult: false
})

/**
 * A step that answers with `f(input)`: a provider, a replica, a second API. With `degraded: true`, its answers
 * count as degraded.
 *
 * @example
 * ```ts
 * import { Fallback } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * const tavily = Fallback.step("tavily", (query: string) => Effect.succeed(`results for ${query}`))
 * ```
 *
 * @since 0.2.0
 * @category constructors
 */
export const step = <A, E = never, R = never, I = unknown>(
  name: string,
  f: (input: I) => Effect.Effect<A, E, R>,
  options?: {
    readonly degraded?: boolean | undefined
    /**
     * Which values count as failures (an HTTP 503 returned as a value): such a value passes the request on to the
     * next step, and is served, degraded, only by the last step. It is never kept by `staleOnError` or `cacheFirst`.
     */
    readonly isFailureResult?: ((value: NoInfer<A>) => boolean) | undefined
  }
): Step<I, A, E, R> => {
  const degraded = options?.degraded ?? false
  const isFailureResult = options?.isFailureResult
  return makeStep({
    name,
    degraded,
    settings: [],
    build: () => ({
      run: (input) =>
        Effect.map(
          f(input),
          (value) =>
            isFailureResult !== undefined && isFailureResult(value) ? live(value, true, true) : live(value, degraded)
        ),
      breaker: undefined,
      guards: [],
      call: isFailureResult === undefined ? f : undefined
    })
  })
}

/**
 * Degraded mode: a step whose answers are simplified ones (keyword routing instead of vector search, an empty
 * session instead of the stored one). Its answers always count as degraded.
 *
 * @example
 * ```ts
 * import { Fallback } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * const emptySession = Fallback.degraded("empty session", (userId: string) =>
 *   Effect.succeed({ userId, history: [] as ReadonlyArray<string> })
 * )
 * ```
 *
 * @since 0.2.0
 * @category constructors
 */
export const degraded = <A, E = never, R = never, I = unknown>(
  name: string,
  f: (input: I) => Effect.Effect<A, E, R>
): Step<I, A, E, R> => step(name, f, { degraded: true })

/**
 * A total fallback: a step that always answers `value`, degraded. A chain that ends with it cannot fail.
 *
 * @example
 * ```ts
 * import { Fallback } from "@effect-resilience/core"
 *
 * const unavailable = Fallback.succeed("unavailable", "Web search temporarily unavailable. Please try again.")
 * ```
 *
 * @since 0.2.0
 * @category constructors
 */
export const succeed = <A>(name: string, value: A): Step<unknown, A> =>
  makeStep({
    name,
    degraded: true,
    settings: [],
    build: () => {
      const answer = Effect.succeed(live(value, true))
      const plain = Effect.succeed(value)
      return { run: () => answer, breaker: undefined, guards: [], call: () => plain }
    }
  })

/**
 * Guards a step with a circuit breaker: every call goes through it, and while it is open the chain passes the step
 * over without calling it and without waiting.
 *
 * @example
 * ```ts
 * import { CircuitBreaker, Fallback } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * const exa = (breaker: CircuitBreaker.CircuitBreaker) =>
 *   Fallback.step("exa", (query: string) => Effect.succeed(`exa: ${query}`)).pipe(Fallback.withBreaker(breaker))
 * ```
 *
 * @since 0.2.0
 * @category strategies
 */
export const withBreaker: {
  <B>(
    breaker: CircuitBreaker.CircuitBreaker<B>
  ): <I, A extends B, E, R>(self: Step<I, A, E, R>) => Step<I, A, E | CircuitBreaker.Rejection, R>
  <I, A extends B, E, R, B>(
    self: Step<I, A, E, R>,
    breaker: CircuitBreaker.CircuitBreaker<B>
  ): Step<I, A, E | CircuitBreaker.Rejection, R>
} = dual(
  2,
  <I, A, E, R>(
    self: Step<I, A, E, R>,
    breaker: CircuitBreaker.CircuitBreaker
  ): Step<I, A, E | CircuitBreaker.Rejection, R> => guarded(self, breaker.protect, breaker, undefined)
)

/**
 * Guards a step with a `Policy`: every call goes through all its parts, and while the policy's breaker (if it has
 * one) is open the chain passes the step over without calling it and without waiting. A value the policy's
 * `isFailureResult` rejects comes back as a value once the policy gives up: give the step the same `isFailureResult`
 * to fall back from it.
 *
 * @example
 * ```ts
 * import { Fallback, type Policy } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * const tavily = <S extends Policy.Stages>(policy: Policy.Policy<S>) =>
 *   Fallback.step("tavily", (query: string) => Effect.succeed(`tavily: ${query}`)).pipe(Fallback.withPolicy(policy))
 * ```
 *
 * @since 0.2.0
 * @category strategies
 */
export const withPolicy: {
  <S extends Policy.Stages, B>(
    policy: Policy.Policy<S, B>
  ): <I, A extends Policy.Accepts<S, B>, E, R>(self: Step<I, A, E, R>) => Step<I, A, E | Policy.Errors<S>, R>
  <I, A extends Policy.Accepts<S, B>, E, R, S extends Policy.Stages, B>(
    self: Step<I, A, E, R>,
    policy: Policy.Policy<S, B>
  ): Step<I, A, E | Policy.Errors<S>, R>
} = dual(
  2,
  <I, A, E, R, S extends Policy.Stages>(
    self: Step<I, A, E, R>,
    policy: Policy.Policy<S>
  ): Step<I, A, E | Policy.Errors<S>, R> =>
    guarded(
      self,
      (effect) =>
        policy.protect(effect as Effect.Effect<Policy.Accepts<S, unknown>, E, R>) as Effect.Effect<
          A,
          E | Policy.Errors<S>,
          R
        >,
      policy.stages.circuitBreaker,
      starters.get(policy)
    )
)

// The guard sees the step's own value (a breaker's or policy's `isFailureResult` judges it), not the answer around it.
const guarded = <I, A, E, R, E2>(
  self: Step<I, A, E, R>,
  protect: (effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E | E2, R>,
  breaker: CircuitBreaker.CircuitBreaker<never> | undefined,
  starter: Starter | undefined
): Step<I, A, E | E2, R> =>
  makeStep({
    name: self.name,
    degraded: self.degraded,
    settings: self.settings,
    build: (env) => {
      const inner = self.build(env)
      const call = inner.call
      const guards = breaker === undefined ? inner.guards : [breaker.name, ...inner.guards]
      if (call !== undefined) {
        // A plain step: its answer is the protected value, live.
        const protectedCall = (input: I) => protect(call(input))
        return {
          run: (input: I) => Effect.map(protectedCall(input), (value) => live(value, self.degraded)),
          breaker: breaker ?? inner.breaker,
          guards,
          call: protectedCall,
          start: starter === undefined
            ? undefined
            : (input: I, caller: Fiber.Fiber<unknown, unknown>, resume: Resume) => starter(call(input), caller, resume)
        }
      }
      // Each run of a chain asks for a fresh effect (see `Runner`), so `answer` belongs to one run.
      const run = (input: I) => {
        let answer: internal.Answer<A> | undefined
        const value = Effect.map(inner.run(input), (a) => {
          answer = a
          return a.value
        })
        return Effect.map(
          protect(value),
          (result): internal.Answer<A> =>
            answer !== undefined && answer.value === result ? answer : live(result, self.degraded)
        )
      }
      return { run, breaker: breaker ?? inner.breaker, guards }
    }
  })

/**
 * Options of `staleOnError`.
 *
 * @example
 * ```ts
 * import type { Fallback } from "@effect-resilience/core"
 *
 * const options: Fallback.StaleOnErrorOptions<string> = { maxAge: "10 minutes", maxEntries: 500 }
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export interface StaleOnErrorOptions<I> {
  /** The oldest value served when the step fails; an older one is not served. */
  readonly maxAge: Duration.Input
  /** The key a value is kept under. Default: the input itself (strings as they are, plain data as JSON). */
  readonly key?: ((input: I) => string) | undefined
  /** Values kept at most by the default in-memory cache; the oldest write goes first. Default: 1,000. */
  readonly maxEntries?: number | undefined
  /** Where values are kept. Default: an in-memory cache per chain. */
  readonly cache?: Cache<unknown> | undefined
}

/**
 * Stale on error: keeps the step's last good value per input, and when the step fails serves that value instead,
 * degraded, with its age, as long as it is at most `maxAge` old. Without such a value, the failure passes on.
 *
 * @example
 * ```ts
 * import { Fallback } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * const prices = Fallback.step("prices", (sku: string) => Effect.succeed(9.99)).pipe(
 *   Fallback.staleOnError({ maxAge: "15 minutes" })
 * )
 * ```
 *
 * @since 0.2.0
 * @category strategies
 */
export const staleOnError: {
  <K = unknown>(options: StaleOnErrorOptions<K>): <I extends K, A, E, R>(self: Step<I, A, E, R>) => Step<I, A, E, R>
  <I, A, E, R>(self: Step<I, A, E, R>, options: StaleOnErrorOptions<NoInfer<I>>): Step<I, A, E, R>
} = dual(2, <I, A, E, R>(self: Step<I, A, E, R>, options: StaleOnErrorOptions<I>): Step<I, A, E, R> =>
  makeStep({
    name: self.name,
    degraded: self.degraded,
    settings: [...self.settings, {
      field: "staleOnError",
      schema: Schema.Struct({ maxAge: DurationInput({ positive: true }), maxEntries: PositiveInt }),
      value: { maxAge: options.maxAge, maxEntries: orDefault(options.maxEntries, 1000) }
    }],
    build: (env) => {
      const inner = self.build(env)
      const maxAge = millisOf(options.maxAge)
      const key = options.key ?? internal.keyOf
      const cache = cacheFor<A>(options.cache, options.maxEntries)
      // The last good value, if one is young enough.
      const stale = (k: string) =>
        Effect.flatMap(cache.get(k), (entry) =>
          Effect.map(Clock.currentTimeMillis, (now) =>
            Option.isSome(entry) && now - entry.value.storedAt <= maxAge
              ? Option.some(cached(entry.value, now, true))
              : Option.none()))
      const run = (input: I): Effect.Effect<internal.Answer<A>, E, R> =>
        Effect.suspend(() => {
          const k = key(input)
          return Effect.matchEffect(inner.run(input), {
            onSuccess: (answer) => {
              // A value judged a failure is never kept: the last good one answers for it, if there is one.
              if (answer.failureResult) {
                return Effect.map(stale(k), (found) =>
                  Option.isSome(found) ? found.value : answer)
              }
              return Effect.as(keep(cache, k, answer), answer)
            },
            onFailure: (error) =>
              Effect.flatMap(
                stale(k),
                (answer) =>
                  Option.isSome(answer) ? Effect.succeed(answer.value) : Effect.fail(error)
              )
          })
        })
      // The step answers even while its breaker is open (from the stale value): never skip it.
      return { run, breaker: undefined, guards: inner.guards }
    }
  }))

/**
 * Options of `cacheFirst`.
 *
 * @example
 * ```ts
 * import type { Fallback } from "@effect-resilience/core"
 *
 * const options: Fallback.CacheFirstOptions<string> = { ttl: "1 minute", maxStale: "1 hour" }
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export interface CacheFirstOptions<I> {
  /** How long a cached value is fresh: served as it is, not degraded, with no refresh. */
  readonly ttl: Duration.Input
  /**
   * The bound on staleness: a value older than `ttl` but at most `maxStale` old is served degraded while a refresh
   * runs in the background; an older one is not served, and the step calls through. At least `ttl`.
   */
  readonly maxStale: Duration.Input
  /** The key a value is kept under. Default: the input itself (strings as they are, plain data as JSON). */
  readonly key?: ((input: I) => string) | undefined
  /** Values kept at most by the default in-memory cache; the oldest write goes first. Default: 1,000. */
  readonly maxEntries?: number | undefined
  /** Where values are kept. Default: an in-memory cache per chain. */
  readonly cache?: Cache<unknown> | undefined
}

/**
 * Cache first: serves the step's cached value for the input while it is fresh; once it is older than `ttl`, serves
 * it degraded (up to `maxStale`) and refreshes it from the step in the background (one refresh per key at a time);
 * without a value young enough, calls the step and caches its answer. A value stored after the clock's now (the wall
 * clock stepped back since) is served as a stale one, with a zero age, and refreshed.
 *
 * @example
 * ```ts
 * import { Fallback } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * const profile = Fallback.step("profile", (userId: string) => Effect.succeed({ userId, name: "Ada" })).pipe(
 *   Fallback.cacheFirst({ ttl: "1 minute", maxStale: "1 hour" })
 * )
 * ```
 *
 * @since 0.2.0
 * @category strategies
 */
export const cacheFirst: {
  <K = unknown>(options: CacheFirstOptions<K>): <I extends K, A, E, R>(self: Step<I, A, E, R>) => Step<I, A, E, R>
  <I, A, E, R>(self: Step<I, A, E, R>, options: CacheFirstOptions<NoInfer<I>>): Step<I, A, E, R>
} = dual(2, <I, A, E, R>(self: Step<I, A, E, R>, options: CacheFirstOptions<I>): Step<I, A, E, R> =>
  makeStep({
    name: self.name,
    degraded: self.degraded,
    settings: [...self.settings, {
      field: "cacheFirst",
      schema: Schema.Struct({
        ttl: DurationInput({ positive: true }),
        maxStale: DurationInput({ positive: true }),
        maxEntries: PositiveInt
      }).check(Schema.makeFilter((o: { readonly ttl: unknown; readonly maxStale: unknown }) => {
        const ttl = millisOf(o.ttl as Duration.Input)
        const maxStale = millisOf(o.maxStale as Duration.Input)
        return maxStale >= ttl
          ? undefined
          : { path: ["maxStale"], issue: `Expected at least ttl (${ttl} millis), got ${maxStale} millis` }
      })),
      value: { ttl: options.ttl, maxStale: options.maxStale, maxEntries: orDefault(options.maxEntries, 1000) }
    }],
    build: (env) => {
      const inner = self.build(env)
      const ttl = millisOf(options.ttl)
      const maxStale = millisOf(options.maxStale)
      const key = options.key ?? internal.keyOf
      const cache = cacheFor<A>(options.cache, options.maxEntries)
      const refreshing = new Set<string>()
      const fetch = (input: I, k: string): Effect.Effect<internal.Answer<A>, E, R> =>
        Effect.tap(inner.run(input), (answer) => keep(cache, k, answer))
      // A refresh outlives the call that started it: it runs in the chain's scope, and its failure changes nothing
      // (the stale value stays until it is too old). Marking the key and forking are one step that cannot be
      // interrupted: a caller interrupted between them would leave the key marked with no refresh to unmark it, and
      // the key would never be refreshed again.
      const refresh = (input: I, k: string): Effect.Effect<void, never, R> =>
        Effect.uninterruptible(Effect.suspend(() => {
          if (refreshing.has(k)) return Effect.void
          refreshing.add(k)
          return Effect.asVoid(Effect.forkIn(
            fetch(input, k).pipe(Effect.ignore, Effect.ensuring(Effect.sync(() => refreshing.delete(k)))),
            env.scope
          ))
        }))
      const run = (input: I): Effect.Effect<internal.Answer<A>, E, R> =>
        Effect.suspend(() => {
          const k = key(input)
          return Effect.flatMap(cache.get(k), (entry) =>
            Effect.flatMap(Clock.currentTimeMillis, (now) => {
              if (Option.isNone(entry)) return fetch(input, k)
              const age = now - entry.value.storedAt
              // Stored after `now`, the wall clock stepped back since: how old the value is cannot be told, and
              // fresh until the clock caught up it would go unrefreshed for the step on top of `ttl`. Stale, then.
              if (age >= 0 && age < ttl) return Effect.succeed(cached(entry.value, now, self.degraded))
              if (age > maxStale) return fetch(input, k)
              return Effect.as(refresh(input, k), cached(entry.value, now, true))
            }))
        })
      // A fresh or stale cached value answers while the breaker is open: never skip the step.
      return { run, breaker: undefined, guards: inner.guards }
    }
  }))

// Caches a live answer the step judged good; a cached one (it has an age) or a failure result is not kept.
const keep = <A>(cache: Cache<A>, key: string, answer: internal.Answer<A>): Effect.Effect<void> =>
  answer.ageMillis > 0 || answer.failureResult
    ? Effect.void
    : Effect.flatMap(Clock.currentTimeMillis, (now) => cache.set(key, { value: answer.value, storedAt: now }))

const cacheFor = <A>(cache: Cache<unknown> | undefined, maxEntries: number | undefined): Cache<A> => {
  if (cache !== undefined) return cache as Cache<A>
  const store = new internal.MemoryStore<A>(maxEntries ?? 1000)
  return {
    get: (key) => Effect.sync(() => store.get(key)),
    set: (key, entry) => Effect.sync(() => store.set(key, entry))
  }
}

// -----------------------------------------------------------------------------
// constructors
// -----------------------------------------------------------------------------

/**
 * Options of `make`.
 *
 * @example
 * ```ts
 * import { Fallback } from "@effect-resilience/core"
 *
 * const options = {
 *   name: "greeting",
 *   steps: [Fallback.succeed("canned", "hello")]
 * } satisfies Fallback.Options<ReadonlyArray<Fallback.Any>>
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export interface Options<Steps extends ReadonlyArray<Any>> {
  /** Names the chain (the service it answers for) in snapshots, metrics and the manager. */
  readonly name: string
  /** The steps, most preferred first. At least one; names unique. */
  readonly steps: Steps
}

// A rejection by a breaker guarding the step (see `Runner.guards`), not one its call passed on from further down.
const isRejection = (error: unknown, guards: ReadonlyArray<string>): boolean =>
  guards.length > 0 && Predicate.isTagged(error, "CircuitBreakerError") &&
  guards.includes((error as CircuitBreaker.CircuitBreakerError).breaker)

// What a call served by its first step passed over: nothing, one frozen array for all of them.
const nonePassed: ReadonlyArray<Passed> = Object.freeze([])

const isOpen = (state: CircuitBreaker.State): boolean => state === "Open" || state === "ForcedOpen"

/**
 * Builds a chain from `steps`, validating every step's options (an empty chain, duplicate step names and bad
 * strategy options fail with `PolicyConfigError`, naming the field). Background refreshes run in the scope. Made
 * where a `Manager` is provided, the chain is listed there until the scope closes.
 *
 * **Metrics** (read when exported): `fallback_calls_total`, `fallback_degraded_total`, `fallback_exhausted_total`
 * (attribute `fallback`), and `fallback_step_served_total`, `fallback_step_failures_total`,
 * `fallback_step_skips_total` (attributes `fallback`, `step`).
 *
 * @example
 * ```ts
 * import { Fallback } from "@effect-resilience/core"
 * import { Data, Effect } from "effect"
 *
 * class Down extends Data.TaggedError("Down") {}
 *
 * const program = Effect.gen(function*() {
 *   const greeting = yield* Fallback.make({
 *     name: "greeting",
 *     steps: [
 *       Fallback.step("llm", (name: string) => Effect.fail(new Down())),
 *       Fallback.degraded("template", (name: string) => Effect.succeed(`Hello, ${name}!`))
 *     ]
 *   })
 *   const served = yield* greeting.run("Ada")
 *   return `${served.value} from ${served.servedBy}` // "Hello, Ada! from template"
 * }).pipe(Effect.scoped)
 * ```
 *
 * @since 0.2.0
 * @category constructors
 */
export const make = <const Steps extends ReadonlyArray<Any>>(
  options: Options<Steps>
): Effect.Effect<
  Fallback<Input<Steps>, Success<Steps>, Failure<Steps>, Services<Steps>>,
  PolicyConfigError,
  Scope.Scope
> =>
  Effect.gen(function*() {
    const name = options.name
    const steps = options.steps as unknown as ReadonlyArray<Step<unknown, unknown, unknown, unknown>>
    const schema = Schema.Struct({
      name: Schema.NonEmptyString,
      steps: Schema.Tuple(steps.map((each) =>
        Schema.Struct({
          name: Schema.NonEmptyString,
          ...Object.fromEntries(each.settings.map((setting) => [setting.field, setting.schema]))
        })
      )).check(
        Schema.makeFilter((all: ReadonlyArray<{ readonly name: string }>) =>
          all.length > 0 ? undefined : "Expected at least one step, got none"
        ),
        Schema.makeFilter((all: ReadonlyArray<{ readonly name: string }>) => {
          const index = all.findIndex((each, i) => all.findIndex((other) => other.name === each.name) < i)
          return index < 0 ? undefined : {
            path: [index, "name"],
            issue: `Expected a step name not used before in the chain, got "${all[index].name}"`
          }
        })
      )
    })
    yield* decode(schema, {
      name,
      steps: steps.map((each) => ({
        name: each.name,
        ...Object.fromEntries(each.settings.map((setting) => [setting.field, setting.value]))
      }))
    }, { kind: "fallback", policy: String(name) })

    const scope = yield* Effect.scope
    const env: internal.Env = { scope }
    const runners = steps.map((each) => each.build(env))
    const last = runners.length - 1

    const counts = steps.map(() => ({ served: 0, failed: 0, skipped: 0 }))
    const totals = { calls: 0, degraded: 0, exhausted: 0 }
    let lastServedBy: string | null = null

    const serve = (
      index: number,
      value: unknown,
      isDegraded: boolean,
      ageMillis: number,
      passed: ReadonlyArray<Passed>
    ): Served<unknown> => {
      counts[index].served++
      if (isDegraded) totals.degraded++
      lastServedBy = steps[index].name
      return {
        value,
        servedBy: steps[index].name,
        index,
        degraded: isDegraded,
        age: ageMillis === 0 ? Duration.zero : Duration.millis(ageMillis),
        passed
      }
    }

    // Whether a step's breaker is open, read synchronously, so that the step that usually serves pays a function
    // call, not an effect. The last step always runs: with nothing after it, its breaker's rejection is the answer.
    const states = runners.map((runner, index) =>
      runner.breaker === undefined || index === last ? undefined : stateReaders.get(runner.breaker)
    )

    // Step `index` did not serve: the request goes on to the next step, with the reason listed.
    const passOn = (
      input: unknown,
      index: number,
      passed: ReadonlyArray<Passed>,
      fiber: Fiber.Fiber<unknown, unknown>,
      reason: Passed["reason"],
      error: unknown
    ): Effect.Effect<Served<unknown>, unknown, unknown> =>
      attempt(input, index + 1, [...passed, { step: steps[index].name, reason, error }], fiber)

    // Step `index` passed over, its breaker open (its function is not even called): counted, and listed.
    const passOver = (index: number): Passed => {
      counts[index].skipped++
      return { step: steps[index].name, reason: "BreakerOpen", error: undefined }
    }

    // Step `index` failed with `error`: the next step, or the error once none is left.
    const failed = (
      error: unknown,
      input: unknown,
      index: number,
      passed: ReadonlyArray<Passed>,
      fiber: Fiber.Fiber<unknown, unknown>
    ): Effect.Effect<Served<unknown>, unknown, unknown> => {
      const rejected = isRejection(error, runners[index].guards)
      if (rejected) counts[index].skipped++
      else counts[index].failed++
      if (index === last) {
        totals.exhausted++
        return Effect.fail(error)
      }
      return passOn(input, index, passed, fiber, rejected ? "BreakerOpen" : "Failed", error)
    }

    // A plain step's value is served as it comes (live, degraded as the step is): no answer made to be unwrapped.
    const servePlain = (
      input: unknown,
      index: number,
      passed: ReadonlyArray<Passed>,
      fiber: Fiber.Fiber<unknown, unknown>
    ) => ({
      onSuccess: (value: unknown) => Effect.succeed(serve(index, value, steps[index].degraded, 0, passed)),
      onFailure: (error: unknown) => failed(error, input, index, passed, fiber)
    })

    // `fiber` is the one running the chain: the steps' continuations run on it.
    const attempt = (
      input: unknown,
      index: number,
      passed: ReadonlyArray<Passed>,
      fiber: Fiber.Fiber<unknown, unknown>
    ): Effect.Effect<Served<unknown>, unknown, unknown> => {
      const state = states[index]
      if (state !== undefined && isOpen(state(fiber))) {
        return attempt(input, index + 1, [...passed, passOver(index)], fiber)
      }
      const call = runners[index].call
      if (call !== undefined) {
        return Effect.matchEffect(call(input), servePlain(input, index, passed, fiber))
      }
      return Effect.matchEffect(runners[index].run(input), {
        onSuccess: (answer) => {
          // A value the step judged a failure passes the request on; the last step serves it, having nothing after.
          if (!answer.failureResult || index === last) {
            return Effect.succeed(serve(index, answer.value, answer.degraded, answer.ageMillis, passed))
          }
          counts[index].failed++
          return passOn(input, index, passed, fiber, "FailureResult", answer.value)
        },
        onFailure: (error) => failed(error, input, index, passed, fiber)
      })
    }

    // A step whose guard can start its call from the chain's callback (see `Runner.start`) runs there: a call it
    // serves at once costs the chain one effect step instead of four. Steps whose breaker is open are passed over
    // there too, so that the step serving while they are open (a degraded chain's usual path) starts the same way.
    // The chain goes on as effects after anything else.
    const begin = (
      input: unknown,
      fiber: Fiber.Fiber<unknown, unknown>,
      resume: Resume
    ): Effect.Effect<void> | undefined => {
      let index = 0
      let skipped: Array<Passed> | undefined
      // The last step has no state to read: it always runs, so the loop ends there at the latest.
      for (let state = states[0]; state !== undefined && isOpen(state(fiber)); state = states[index]) {
        ;(skipped ??= []).push(passOver(index))
        index++
      }
      const passed: ReadonlyArray<Passed> = skipped ?? nonePassed
      const start = runners[index].start
      // The chain's effects run on the caller, which provides what they need.
      if (start === undefined) {
        resume(attempt(input, index, passed, fiber) as Effect.Effect<Served<unknown>, unknown>)
        return undefined
      }
      return start(input, fiber, (effect) => {
        if (isSucceeded(effect)) {
          return resume(Exit.succeed(serve(index, effect.value, steps[index].degraded, 0, passed)))
        }
        resume(
          Effect.matchEffect(effect, servePlain(input, index, passed, fiber)) as Effect.Effect<Served<unknown>, unknown>
        )
      })
    }

    const run = runners[0].start === undefined
      ? (input?: unknown) =>
        Effect.withFiber((fiber) => {
          totals.calls++
          return attempt(input, 0, nonePassed, fiber)
        })
      : (input?: unknown) =>
        Effect.callback<Served<unknown>, unknown, unknown>((resume) => {
          totals.calls++
          return begin(input, Fiber.getCurrent()!, resume as Resume)
        })

    const snapshot = Effect.sync((): Snapshot => ({
      name,
      calls: totals.calls,
      degraded: totals.degraded,
      exhausted: totals.exhausted,
      lastServedBy,
      steps: steps.map((each, i) => ({ name: each.name, degraded: each.degraded, ...counts[i] }))
    }))

    const by = { fallback: name }
    yield* metrics.register([
      metrics.counter("fallback_calls_total", "Calls to the chain", by, () => totals.calls),
      metrics.counter("fallback_degraded_total", "Calls served by a degraded answer", by, () => totals.degraded),
      metrics.counter("fallback_exhausted_total", "Calls every step failed", by, () => totals.exhausted),
      ...steps.flatMap((each, i) => {
        const attributes = { ...by, step: each.name }
        return [
          metrics.counter("fallback_step_served_total", "Calls a step served", attributes, () => counts[i].served),
          metrics.counter("fallback_step_failures_total", "Calls a step failed", attributes, () => counts[i].failed),
          metrics.counter(
            "fallback_step_skips_total",
            "Calls passed over because the step's breaker was open",
            attributes,
            () => counts[i].skipped
          )
        ]
      })
    ])

    const fallback: Fallback<Input<Steps>, Success<Steps>, Failure<Steps>, Services<Steps>> = {
      [TypeId]: TypeId,
      name,
      steps: steps.map((each) => each.name),
      run: run as Fallback<Input<Steps>, Success<Steps>, Failure<Steps>, Services<Steps>>["run"],
      snapshot
    }

    const manager = yield* Effect.serviceOption(Manager)
    if (Option.isSome(manager)) {
      const listing = manager.value
      if (!listing.add(fallback)) {
        return yield* configError(
          { kind: "fallback", policy: name },
          "name",
          `Expected a name not yet listed in the manager, but "${name}" is taken`
        )
      }
      yield* Effect.addFinalizer(() => Effect.sync(() => listing.remove(fallback)))
    }
    return fallback
  })

// -----------------------------------------------------------------------------
// manager
// -----------------------------------------------------------------------------

/**
 * The degradation manager: every chain made where it is provided is listed by name, one per service, each with its
 * strategies by priority (its steps, most preferred first), so that a `/health` page or a dashboard can show which
 * step serves each service and how often.
 *
 * @example
 * ```ts
 * import { Fallback } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * const services = Fallback.Manager.use((manager) => Effect.sync(() => manager.fallbacks().map((f) => f.name)))
 * ```
 *
 * @since 0.2.0
 * @category services
 */
export class Manager extends Context.Service<Manager, {
  /** Lists a chain; false when the name is taken. */
  readonly add: (fallback: Fallback<never, unknown, unknown, unknown>) => boolean
  readonly remove: (fallback: Fallback<never, unknown, unknown, unknown>) => void
  /** The chains listed, in the order they were made. */
  readonly fallbacks: () => ReadonlyArray<Fallback<never, unknown, unknown, unknown>>
}>()("@effect-resilience/core/Fallback/Manager") {}

/**
 * Makes an empty manager.
 *
 * @example
 * ```ts
 * import { Fallback } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * const program = Effect.gen(function*() {
 *   const manager = yield* Fallback.makeManager
 *   return manager.fallbacks().length // 0
 * })
 * ```
 *
 * @since 0.2.0
 * @category constructors
 */
export const makeManager: Effect.Effect<Manager["Service"]> = Effect.sync(() => {
  const byName = new Map<string, Fallback<never, unknown, unknown, unknown>>()
  return Manager.of({
    add: (fallback) => {
      if (byName.has(fallback.name)) return false
      byName.set(fallback.name, fallback)
      return true
    },
    remove: (fallback) => {
      if (byName.get(fallback.name) === fallback) byName.delete(fallback.name)
    },
    fallbacks: () => Array.from(byName.values())
  })
})

/**
 * Provides an empty `Manager`: chains made on it list themselves there.
 *
 * @example
 * ```ts
 * import { Fallback } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * const program = Effect.gen(function*() {
 *   yield* Fallback.make({ name: "greeting", steps: [Fallback.succeed("canned", "hello")] })
 *   return yield* Fallback.snapshots
 * }).pipe(Effect.scoped, Effect.provide(Fallback.layerManager))
 * ```
 *
 * @since 0.2.0
 * @category layers
 */
export const layerManager: Layer.Layer<Manager> = Layer.effect(Manager, makeManager)

/**
 * The snapshots of every chain in the manager: per service, which step served how many calls.
 *
 * @example
 * ```ts
 * import { Fallback } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * const servedBy = Fallback.snapshots.pipe(
 *   Effect.map((all) => Object.fromEntries(all.map((s) => [s.name, s.lastServedBy])))
 * )
 * ```
 *
 * @since 0.2.0
 * @category accessors
 */
export const snapshots: Effect.Effect<ReadonlyArray<Snapshot>, never, Manager> = Manager.use((manager) =>
  Effect.forEach(manager.fallbacks(), (fallback) => fallback.snapshot)
)
