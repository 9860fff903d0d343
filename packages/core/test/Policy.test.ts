import { assert, describe, it } from "@effect/vitest"
import { Data, Effect, Exit, Fiber, Layer, Ref } from "effect"
import { TestClock } from "effect/testing"
import * as Bulkhead from "../src/Bulkhead.ts"
import * as CircuitBreaker from "../src/CircuitBreaker.ts"
import * as CircuitBreakerRegistry from "../src/CircuitBreakerRegistry.ts"
import * as Policy from "../src/Policy.ts"
import * as RateLimiter from "../src/RateLimiter.ts"
import * as Retry from "../src/Retry.ts"
import * as Timeout from "../src/Timeout.ts"

class Unavailable extends Data.TaggedError("Unavailable") {}

/**
 * A part that only records: "slot>" when a run enters it, "<slot" when it leaves. The retry spy runs what is inside
 * it twice, as a retry would, so the record shows which parts each attempt goes through.
 */
const spy = (log: Array<string>, slot: typeof Policy.order[number]) => ({
  name: slot,
  protect: <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
    Effect.suspend(() => {
      log.push(`${slot}>`)
      return Effect.ensuring(
        slot === "retry" ? Effect.andThen(self, self) : self,
        Effect.sync(() => log.push(`<${slot}`))
      )
    }),
  snapshot: Effect.succeed({ spy: slot }),
  snapshots: Effect.succeed([{ spy: slot }])
})

describe("Policy", () => {
  it.effect("nests the parts in the prescribed order, whatever order they are given in", () =>
    Effect.gen(function*() {
      const log: Array<string> = []
      // Given innermost first, on purpose.
      const stages = {
        chaos: spy(log, "chaos"),
        bulkhead: spy(log, "bulkhead"),
        timeout: spy(log, "timeout"),
        hedge: spy(log, "hedge"),
        rateLimiter: spy(log, "rateLimiter"),
        retry: spy(log, "retry"),
        circuitBreaker: spy(log, "circuitBreaker")
      } as unknown as Policy.Stages
      const policy = yield* Policy.make("recorded", stages)
      yield* policy.protect(Effect.sync(() => log.push("call")))
      const attempt = [
        "rateLimiter>",
        "hedge>",
        "timeout>",
        "bulkhead>",
        "chaos>",
        "call",
        "<chaos",
        "<bulkhead",
        "<timeout",
        "<hedge",
        "<rateLimiter"
      ]
      assert.deepStrictEqual(log, ["circuitBreaker>", "retry>", ...attempt, ...attempt, "<retry", "<circuitBreaker"])
      assert.deepStrictEqual((yield* policy.snapshot).order, Policy.order)
    }))

  it.effect("skips the parts left out", () =>
    Effect.gen(function*() {
      const log: Array<string> = []
      const stages = { timeout: spy(log, "timeout"), circuitBreaker: spy(log, "circuitBreaker") }
      const policy = yield* Policy.make("two", stages as unknown as Policy.Stages)
      yield* policy.protect(Effect.sync(() => log.push("call")))
      assert.deepStrictEqual(log, ["circuitBreaker>", "timeout>", "call", "<timeout", "<circuitBreaker"])
      assert.deepStrictEqual((yield* policy.snapshot).order, ["circuitBreaker", "timeout"])
    }))

  it.effect("the breaker sees one outcome per call; retry and a per-attempt timeout work inside it", () =>
    Effect.gen(function*() {
      const attempts = yield* Ref.make(0)
      // The first attempt hangs, the second fails, the third answers.
      const flaky = Effect.flatMap(
        Ref.updateAndGet(attempts, (n) => n + 1),
        (n) => n === 1 ? Effect.never : n === 2 ? Effect.fail(new Unavailable()) : Effect.succeed("ok")
      )
      const policy = yield* Policy.make("search", {
        circuitBreaker: yield* CircuitBreaker.make({ name: "search", trip: CircuitBreaker.consecutive(1) }),
        retry: yield* Retry.make({ name: "search", schedule: Retry.constant({ delay: "100 millis", times: 3 }) }),
        timeout: yield* Timeout.make({ name: "search", duration: "1 second" })
      })
      const fiber = yield* Effect.forkChild(policy.protect(flaky))
      yield* TestClock.adjust("2 seconds")
      assert.strictEqual(yield* Fiber.join(fiber), "ok")
      assert.strictEqual(yield* Ref.get(attempts), 3)
      const snapshot = yield* policy.snapshot
      const [breaker] = snapshot.stages.circuitBreaker as ReadonlyArray<CircuitBreaker.Snapshot>
      assert.strictEqual(breaker.state, "Closed")
      assert.strictEqual(breaker.successCount, 1)
      assert.strictEqual(breaker.failureCount, 0)
      assert.strictEqual((snapshot.stages.retry as Retry.Snapshot).retries, 2)
    }))

  it.effect("a call that still fails after its retries is one failure for the breaker", () =>
    Effect.gen(function*() {
      const policy = yield* Policy.make("search", {
        circuitBreaker: yield* CircuitBreaker.make({ name: "search", trip: CircuitBreaker.consecutive(2) }),
        retry: yield* Retry.make({ name: "search", schedule: Retry.constant({ delay: "10 millis", times: 2 }) })
      })
      const fiber = yield* Effect.forkChild(Effect.flip(policy.protect(Effect.fail(new Unavailable()))))
      yield* TestClock.adjust("1 second")
      assert.strictEqual((yield* Fiber.join(fiber))._tag, "Unavailable")
      const [breaker] = (yield* policy.snapshot).stages.circuitBreaker as ReadonlyArray<CircuitBreaker.Snapshot>
      assert.strictEqual(breaker.failureCount, 1)
      assert.strictEqual(breaker.state, "Closed")
    }))

  it.effect("a full bulkhead rejects locally and never counts against the breaker", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ name: "db", trip: CircuitBreaker.consecutive(1) })
      const policy = yield* Policy.make("db", {
        circuitBreaker: breaker,
        bulkhead: yield* Bulkhead.make({ name: "db", maxConcurrent: 1 })
      })
      const busy = yield* Effect.forkChild(policy.protect(Effect.sleep("1 second")), { startImmediately: true })
      for (let i = 0; i < 3; i++) {
        const error = yield* Effect.flip(policy.protect(Effect.void))
        assert.strictEqual(error._tag, "BulkheadFull")
      }
      assert.strictEqual(yield* breaker.state(), "Closed")
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(busy)
    }))

  it.effect("a rate limit inside retry spends a token per attempt and is retried after its retryAfter", () =>
    Effect.gen(function*() {
      const policy = yield* Policy.make("api", {
        retry: yield* Retry.make({ name: "api", schedule: Retry.constant({ delay: "1 millis", times: 1 }) }),
        rateLimiter: yield* RateLimiter.make({ name: "api", limit: 1, window: "1 second" })
      })
      yield* policy.protect(Effect.void)
      // Over the limit: the retry waits the limiter's retryAfter, not its own 1 ms, and then gets through.
      const fiber = yield* Effect.forkChild(policy.protect(Effect.succeed("second")))
      yield* TestClock.adjust("999 millis")
      assert.isUndefined(fiber.pollUnsafe())
      yield* TestClock.adjust("1 millis")
      assert.strictEqual(yield* Fiber.join(fiber), "second")
    }).pipe(Effect.provide(RateLimiter.layerStoreMemory)))

  it.effect("the fallback is outermost: it answers for whatever the parts finally fail with", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ name: "llm" })
      const policy = yield* Policy.make("llm", {
        circuitBreaker: breaker,
        timeout: yield* Timeout.make({ name: "llm", duration: "1 second" })
      })
      yield* breaker.forceOpen()
      const answer = yield* policy.protect(Effect.succeed("live"), (error) => Effect.succeed(`fallback: ${error._tag}`))
      assert.strictEqual(answer, "fallback: CircuitOpen")
    }))

  it.effect("errors accumulate in the type, so catchTag works for each part", () =>
    Effect.gen(function*() {
      const policy = yield* Policy.make("typed", {
        circuitBreaker: yield* CircuitBreaker.make({ name: "typed" }),
        timeout: yield* Timeout.make({ name: "typed", duration: "1 second" }),
        bulkhead: yield* Bulkhead.make({ name: "typed", maxConcurrent: 1 })
      })
      const handled: Effect.Effect<string, Unavailable> = policy.protect(Effect.fail(new Unavailable())).pipe(
        Effect.catchTags({
          CircuitOpen: () => Effect.succeed("open"),
          CircuitHalfOpen: () => Effect.succeed("probing"),
          TimeoutError: () => Effect.succeed("slow"),
          BulkheadFull: () => Effect.succeed("busy")
        })
      )
      const exit = yield* Effect.exit(handled)
      assert.isTrue(Exit.isFailure(exit))
    }))

  it.effect("a named policy is listed in the registry with its parts' snapshots, once per name", () =>
    Effect.gen(function*() {
      yield* Policy.make("search", {
        circuitBreaker: yield* CircuitBreaker.make({ name: "search" }),
        bulkhead: yield* Bulkhead.make({ name: "search", maxConcurrent: 4 })
      })
      const [snapshot] = (yield* CircuitBreakerRegistry.policySnapshots) as ReadonlyArray<Policy.Snapshot>
      assert.strictEqual(snapshot.name, "search")
      assert.deepStrictEqual(snapshot.order, ["circuitBreaker", "bulkhead"])
      assert.strictEqual((snapshot.stages.bulkhead as Bulkhead.Snapshot).limit, 4)
      const error = yield* Effect.flip(Policy.make("search", {}))
      assert.strictEqual(
        error.message,
        "Invalid options for policy \"search\":\n  name: Expected a name not yet registered, but \"search\" is taken"
      )
      // The snapshot is plain data.
      assert.deepStrictEqual(JSON.parse(JSON.stringify(snapshot)), snapshot)
    }).pipe(Effect.provide(Layer.fresh(CircuitBreakerRegistry.layer))))
})
