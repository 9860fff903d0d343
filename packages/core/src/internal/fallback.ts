/**
 * The parts of a fallback chain that `Fallback.make` builds from its step descriptions: a step's runner, the answer
 * it gives (value, age, degraded), the last-good-value store the cache strategies share, and how an input becomes
 * a cache key.
 *
 * @internal
 */
import type * as Effect from "effect/Effect"
import type * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import type * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import type { CircuitBreaker } from "../CircuitBreaker.ts"
import type { Resume } from "./timeout.ts"

/** What a step answers: the value, how old it is, and whether it is a degraded answer. @internal */
export interface Answer<A> {
  readonly value: A
  readonly ageMillis: number
  readonly degraded: boolean
  /** The step's `isFailureResult` judged the value a failure: the chain passes the request on. */
  readonly failureResult: boolean
}

/** What a step is built with: the scope its background work runs in. @internal */
export interface Env {
  readonly scope: Scope.Scope
}

/** A built step. @internal */
export interface Runner<I, A, E, R> {
  /** Called anew for each run of the chain: the effect it returns belongs to that run (a policy may repeat it). */
  readonly run: (input: I) => Effect.Effect<Answer<A>, E, R>
  /**
   * The breaker every call of the step goes through first, if any: while it is open, the chain passes the step
   * over without calling it.
   */
  readonly breaker: CircuitBreaker<never> | undefined
  /**
   * The names of the breakers that guard the step (its own, and those inside a wrapper such as `staleOnError`): a
   * rejection by one of them passed the step over; one its call passed on from a breaker further down is a failure.
   */
  readonly guards: ReadonlyArray<string>
  /**
   * The step's call itself, when its answer is always its value, live (degraded as the step says): a guard around it
   * then protects the call, and the chain serves the value as it comes, instead of making an answer to unwrap.
   */
  readonly call?: ((input: I) => Effect.Effect<A, E, R>) | undefined
  /**
   * Starts the protected `call` from the chain's own callback, when its guard can (a policy whose parts run in one
   * callback): `resume` hears what `call(input)` would resume its caller with. Returns the interruption handler.
   */
  readonly start?:
    | ((input: I, caller: Fiber.Fiber<unknown, unknown>, resume: Resume) => Effect.Effect<void> | undefined)
    | undefined
}

/** One option of a step for `Fallback.make` to validate, under `steps[i].<field>`. @internal */
export interface Setting {
  readonly field: string
  readonly schema: Schema.Top
  readonly value: unknown
}

/** A value kept by a cache strategy, with when it was stored (epoch milliseconds, from `Clock`). @internal */
export interface Entry<A> {
  readonly value: A
  readonly storedAt: number
}

/**
 * A bounded in-memory store of last good values: the oldest key written goes first once `maxEntries` are held.
 *
 * @internal
 */
export class MemoryStore<A> {
  private readonly entries = new Map<string, Entry<A>>()
  readonly maxEntries: number
  constructor(maxEntries: number) {
    this.maxEntries = maxEntries
  }

  get(key: string): Option.Option<Entry<A>> {
    return Option.fromUndefinedOr(this.entries.get(key))
  }

  set(key: string, entry: Entry<A>): void {
    // Re-inserting moves the key to the end of the Map's order, so the first key is always the stalest write.
    this.entries.delete(key)
    this.entries.set(key, entry)
    if (this.entries.size > this.maxEntries) {
      const oldest = this.entries.keys().next()
      if (oldest.done !== true) this.entries.delete(oldest.value)
    }
  }

  get size(): number {
    return this.entries.size
  }
}

/**
 * The default cache key of an input: strings as they are, other primitives as `String` gives them, plain data as
 * JSON. Inputs that are not plain data need their own `key`.
 *
 * @internal
 */
export const keyOf = (input: unknown): string =>
  typeof input === "string"
    ? input
    : typeof input === "object" && input !== null
    ? JSON.stringify(input)
    : input === undefined
    ? ""
    : String(input)
