import { describe, expectTypeOf, it } from "@effect/vitest"
import { Data, Effect } from "effect"
import * as Bulkhead from "../src/Bulkhead.ts"
import * as CircuitBreaker from "../src/CircuitBreaker.ts"
import * as CircuitBreakerRegistry from "../src/CircuitBreakerRegistry.ts"
import * as Policy from "../src/Policy.ts"
import * as Retry from "../src/Retry.ts"
import * as Timeout from "../src/Timeout.ts"

// Type-level tests: `pnpm check` typechecks this file, and each assertion fails to compile if a type widens (to
// `unknown`, say). Running it only builds the policies.

class Unavailable extends Data.TaggedError("Unavailable") {}

interface Response {
  readonly status: number
}

const call: Effect.Effect<number, Unavailable> = Effect.succeed(1)

describe("Policy types", () => {
  it.effect("protect keeps the success, error and context types, piped or called", () =>
    Effect.gen(function*() {
      const policy = yield* Policy.make({
        name: "typed",
        timeout: yield* Timeout.make({ name: "typed", duration: "1 second" })
      })
      expectTypeOf(call.pipe(policy.protect)).toEqualTypeOf<Effect.Effect<number, Unavailable | Timeout.TimeoutError>>()
      expectTypeOf(policy.protect(call)).toEqualTypeOf<Effect.Effect<number, Unavailable | Timeout.TimeoutError>>()
    }).pipe(Effect.scoped))

  it.effect("each part present adds exactly its rejections", () =>
    Effect.gen(function*() {
      const policy = yield* Policy.make({
        name: "all",
        circuitBreaker: yield* CircuitBreaker.make({ name: "all" }),
        retry: yield* Retry.make({ name: "all", schedule: Retry.constant({ delay: "1 millis", times: 1 }) }),
        bulkhead: yield* Bulkhead.make({ name: "all", maxConcurrent: 1 })
      })
      expectTypeOf(call.pipe(policy.protect)).toEqualTypeOf<
        Effect.Effect<number, Unavailable | CircuitBreaker.Rejection | Bulkhead.BulkheadFull>
      >()
      const budgeted = yield* Policy.make({
        name: "budgeted",
        retry: yield* Retry.make({
          name: "budgeted",
          schedule: Retry.constant({ delay: "1 millis", times: 1 }),
          budget: yield* Retry.budget()
        })
      })
      expectTypeOf(call.pipe(budgeted.protect)).toEqualTypeOf<
        Effect.Effect<number, Unavailable | Retry.RetryBudgetExhausted>
      >()
    }).pipe(Effect.scoped))

  it("a slot that may hold a part adds that part's errors; an absent one adds none", () => {
    expectTypeOf<Policy.Errors<{ readonly timeout?: Timeout.Timeout | undefined }>>().toEqualTypeOf<
      Timeout.TimeoutError
    >()
    expectTypeOf<Policy.Errors<{ readonly name: string }>>().toBeNever()
    // A policy of unknown parts may fail with anything (a retry or chaos part of any error type).
    expectTypeOf<Policy.Errors<Policy.Stages>>().toBeUnknown()
  })

  it.effect("withFallback sees the full error union, and its answer replaces the errors", () =>
    Effect.gen(function*() {
      const policy = yield* Policy.make({
        name: "fallback",
        timeout: yield* Timeout.make({ name: "fallback", duration: "1 second" })
      })
      const piped = call.pipe(
        policy.protect,
        Policy.withFallback((error) => {
          expectTypeOf(error).toEqualTypeOf<Unavailable | Timeout.TimeoutError>()
          return Effect.succeed("cached")
        })
      )
      expectTypeOf(piped).toEqualTypeOf<Effect.Effect<number | string>>()
      const dataFirst = Policy.withFallback(policy.protect(call), (error) => {
        expectTypeOf(error).toEqualTypeOf<Unavailable | Timeout.TimeoutError>()
        return Effect.fail(new Unavailable())
      })
      expectTypeOf(dataFirst).toEqualTypeOf<Effect.Effect<number, Unavailable>>()
    }).pipe(Effect.scoped))

  it.effect("the snapshot is typed per slot: present parts by their own Snapshot, absent ones not at all", () =>
    Effect.gen(function*() {
      const policy = yield* Policy.make({
        name: "snap",
        circuitBreaker: yield* CircuitBreaker.make({ name: "snap" }),
        timeout: yield* Timeout.make({ name: "snap", duration: "1 second" })
      })
      const { stages } = yield* policy.snapshot
      expectTypeOf(stages.circuitBreaker).toEqualTypeOf<ReadonlyArray<CircuitBreaker.Snapshot>>()
      expectTypeOf(stages.timeout).toEqualTypeOf<Timeout.Snapshot>()
      // @ts-expect-error: this policy has no retry
      expectTypeOf(stages.retry).toBeUnknown()
      // A snapshot of any policy (say from the registry) has every slot, each optional.
      expectTypeOf<Policy.Snapshot["stages"]["retry"]>().toEqualTypeOf<Retry.Snapshot | undefined>()
      expectTypeOf(CircuitBreakerRegistry.policySnapshots).toEqualTypeOf<
        Effect.Effect<ReadonlyArray<Policy.Snapshot>, never, CircuitBreakerRegistry.CircuitBreakerRegistry>
      >()
    }).pipe(Effect.scoped))

  it.effect("isFailureResult is typed over the success type", () =>
    Effect.gen(function*() {
      const policy = yield* Policy.make({
        name: "http",
        timeout: yield* Timeout.make({ name: "http", duration: "1 second" }),
        isFailureResult: (response: Response) => response.status >= 500
      })
      const ok: Effect.Effect<Response> = Effect.succeed({ status: 200 })
      expectTypeOf(ok.pipe(policy.protect)).toEqualTypeOf<Effect.Effect<Response, Timeout.TimeoutError>>()
      // @ts-expect-error: the classifier cannot judge a number
      policy.protect(call)

      const retry = yield* Retry.make({
        name: "http",
        schedule: Retry.constant({ delay: "1 millis", times: 1 }),
        isFailureResult: (response: Response) => response.status === 503
      })
      expectTypeOf(ok.pipe(retry.protect)).toEqualTypeOf<Effect.Effect<Response>>()
      // @ts-expect-error: the retry's classifier cannot judge a number
      retry.protect(call)
      // A policy around that retry, or such a breaker, accepts only what they can judge.
      const around = yield* Policy.make({ name: "around", retry })
      expectTypeOf(ok.pipe(around.protect)).toEqualTypeOf<Effect.Effect<Response>>()
      // @ts-expect-error: the policy's retry cannot judge a number
      around.protect(call)
      const guarded = yield* Policy.make({
        name: "guarded",
        circuitBreaker: yield* CircuitBreaker.make({
          name: "guarded",
          isFailureResult: (response: Response) => response.status === 503
        })
      })
      expectTypeOf(ok.pipe(guarded.protect)).toEqualTypeOf<Effect.Effect<Response, CircuitBreaker.Rejection>>()
      // @ts-expect-error: the policy's breaker cannot judge a number
      guarded.protect(call)
    }).pipe(Effect.scoped))
})
