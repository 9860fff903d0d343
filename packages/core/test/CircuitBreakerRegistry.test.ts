import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Layer, Metric, Scope, Stream } from "effect"
import { TestClock } from "effect/testing"
import * as CircuitBreaker from "../src/CircuitBreaker.ts"
import * as CircuitBreakerRegistry from "../src/CircuitBreakerRegistry.ts"
import { interruptedAfter, yieldTimes } from "./interruption.ts"

describe("CircuitBreakerRegistry", () => {
  it.effect("lists every breaker made under it, with snapshots of every key", () =>
    Effect.gen(function*() {
      const search = yield* CircuitBreaker.make({ name: "search" })
      yield* CircuitBreaker.make({ name: "llm" })
      yield* search.protectKey("eu")(Effect.void)
      const all = yield* CircuitBreakerRegistry.all
      assert.deepStrictEqual(all.map((breaker) => breaker.name), ["search", "llm"])
      const snapshots = yield* CircuitBreakerRegistry.snapshots
      assert.deepStrictEqual(snapshots.map((s) => `${s.name}/${s.key}`), ["search/default", "search/eu", "llm/default"])
    }).pipe(Effect.provide(CircuitBreakerRegistry.layer)))

  it.effect("finds breakers by name, and says which exist when one does not", () =>
    Effect.gen(function*() {
      const search = yield* CircuitBreaker.make({ name: "search" })
      assert.strictEqual(yield* CircuitBreakerRegistry.get("search"), search)
      const error = yield* Effect.flip(CircuitBreakerRegistry.get("db"))
      assert.strictEqual(error._tag, "CircuitBreakerNotFound")
      assert.strictEqual(error.message, "No circuit breaker named \"db\" (registered: search)")
    }).pipe(Effect.provide(CircuitBreakerRegistry.layer)))

  it.effect("a breaker found by name is controlled, not protected through: the registry knows no success type", () =>
    Effect.gen(function*() {
      const made = yield* CircuitBreaker.make<{ readonly status: number }>({
        name: "http",
        trip: CircuitBreaker.consecutive(1),
        isFailureResult: (response) => response.status >= 500
      })
      const found = yield* CircuitBreakerRegistry.get("http")
      // @ts-expect-error a string through `found` would reach a predicate that reads a status
      yield* Effect.ignore(found.protect(Effect.succeed("text")))
      // @ts-expect-error nor does any registered breaker protect what `all` lists
      yield* Effect.forEach(yield* CircuitBreakerRegistry.all, (breaker) => breaker.protect(Effect.succeed(1)))
      // A failure needs no success type; the breaker `make` returned protects responses.
      yield* Effect.ignore(found.protect(Effect.fail("refused")))
      assert.strictEqual(yield* found.state, "Open")
      yield* found.reset()
      assert.strictEqual(yield* made.protect(Effect.succeed({ status: 200 })).pipe(Effect.map((r) => r.status)), 200)
    }).pipe(Effect.provide(CircuitBreakerRegistry.layer)))

  it.effect("controls breakers by name", () =>
    Effect.gen(function*() {
      const llm = yield* CircuitBreaker.make({ name: "llm" })
      yield* CircuitBreakerRegistry.forceOpen("llm")
      assert.strictEqual(yield* llm.state, "ForcedOpen")
      yield* CircuitBreakerRegistry.disable("llm")
      assert.strictEqual(yield* llm.state, "Disabled")
      yield* CircuitBreakerRegistry.metricsOnly("llm", "tenant-1")
      assert.strictEqual(yield* llm.stateKey("tenant-1"), "MetricsOnly")
      yield* CircuitBreakerRegistry.reset("llm")
      assert.strictEqual(yield* llm.state, "Closed")
      assert.strictEqual(
        (yield* Effect.flip(CircuitBreakerRegistry.reset("nope")))._tag,
        "CircuitBreakerNotFound"
      )
    }).pipe(Effect.provide(CircuitBreakerRegistry.layer)))

  it.effect("rejects a second breaker with a name already registered", () =>
    Effect.gen(function*() {
      yield* CircuitBreaker.make({ name: "db" })
      const error = yield* Effect.flip(CircuitBreaker.make({ name: "db" }))
      assert.deepStrictEqual(error.issues, [{
        path: "name",
        message: "Expected a name not yet registered, but \"db\" is taken"
      }])
    }).pipe(Effect.provide(CircuitBreakerRegistry.layer)))

  it.effect("a refused second breaker leaves the live one's metrics as they were, in its scope or after it", () =>
    Effect.gen(function*() {
      const failures = Metric.snapshot.pipe(Effect.map((all) => {
        const found = all.find((m) =>
          m.id === "circuit_breaker_calls_total" && m.attributes?.["breaker"] === "db" &&
          m.attributes?.["outcome"] === "failure"
        )
        return (found?.state as { readonly count?: number } | undefined)?.count
      }))
      const db = yield* CircuitBreaker.make({ name: "db" })
      yield* Effect.ignore(db.protect(Effect.fail("boom")))
      yield* Effect.ignore(db.protect(Effect.fail("boom")))
      assert.strictEqual(yield* failures, 2)
      // Refused in a scope of its own, which then closes; then refused in the live breaker's scope.
      assert.strictEqual(
        (yield* Effect.flip(Effect.scoped(CircuitBreaker.make({ name: "db" }))))._tag,
        "PolicyConfigError"
      )
      assert.strictEqual(yield* failures, 2)
      assert.strictEqual((yield* Effect.flip(CircuitBreaker.make({ name: "db" })))._tag, "PolicyConfigError")
      yield* Effect.ignore(db.protect(Effect.fail("boom")))
      assert.strictEqual(yield* failures, 3)
    }).pipe(Effect.provide(CircuitBreakerRegistry.layer), Effect.provideService(Metric.MetricRegistry, new Map())))

  it.effect("a breaker leaves the registry when its scope closes, and its name is free again", () =>
    Effect.gen(function*() {
      yield* Effect.scoped(CircuitBreaker.make({ name: "db" }))
      assert.deepStrictEqual(yield* CircuitBreakerRegistry.all, [])
      yield* CircuitBreaker.make({ name: "db" })
      assert.strictEqual((yield* CircuitBreakerRegistry.all).length, 1)
    }).pipe(Effect.provide(CircuitBreakerRegistry.layer)))

  it.effect("streams the transitions of every breaker", () =>
    Effect.gen(function*() {
      const seen: Array<string> = []
      yield* CircuitBreakerRegistry.transitions.pipe(
        Stream.runForEach((t) => Effect.sync(() => seen.push(`${t.breaker}: ${t.from} -> ${t.to}`))),
        Effect.forkScoped({ startImmediately: true })
      )
      const search = yield* CircuitBreaker.make({ name: "search", trip: CircuitBreaker.consecutive(1) })
      yield* CircuitBreaker.make({ name: "llm" })
      yield* Effect.ignore(search.protect(Effect.fail("down")))
      yield* CircuitBreakerRegistry.forceOpen("llm")
      yield* Effect.yieldNow
      assert.deepStrictEqual(seen, ["search: Closed -> Open", "llm: Closed -> ForcedOpen"])
    }).pipe(Effect.provide(CircuitBreakerRegistry.layer)))

  it.effect("breaker layers built on the registry layer register themselves", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.CircuitBreaker
      assert.strictEqual(yield* CircuitBreakerRegistry.get("search"), breaker)
    }).pipe(
      Effect.provide(CircuitBreaker.layer({ name: "search" }).pipe(Layer.provideMerge(CircuitBreakerRegistry.layer)))
    ))

  describe("interrupted at any point", () => {
    it.effect("a breaker whose making is interrupted leaves its name free once its scope is closed", () =>
      Effect.gen(function*() {
        for (let turns = 0; turns < 120; turns++) {
          const registry = yield* CircuitBreakerRegistry.make
          const provide = Effect.provideService(CircuitBreakerRegistry.CircuitBreakerRegistry, registry)
          yield* interruptedAfter(
            Effect.scoped(Effect.andThen(CircuitBreaker.make({ name: "db" }), Effect.never)).pipe(provide),
            turns
          )
          const again = yield* Effect.exit(Effect.scoped(CircuitBreaker.make({ name: "db" })).pipe(provide))
          assert.isTrue(Exit.isSuccess(again), `interrupted after ${turns} turns: the name "db" is left taken`)
          assert.deepStrictEqual(
            registry.breakers(),
            [],
            `interrupted after ${turns} turns: a closed breaker is listed`
          )
        }
      }))

    it.effect("a caller whose admission moved a circuit on never loses that transition, here or in the registry", () =>
      Effect.gen(function*() {
        for (let turns = 0; turns < 40; turns++) {
          const scope = yield* Scope.make()
          const registry = yield* CircuitBreakerRegistry.make.pipe(Scope.provide(scope))
          const breaker = yield* CircuitBreaker.make({ name: "b", openDuration: "1 second" }).pipe(
            Scope.provide(scope),
            Effect.provideService(CircuitBreakerRegistry.CircuitBreakerRegistry, registry)
          )
          const local: Array<string> = []
          const global: Array<string> = []
          for (const [stream, seen] of [[breaker.transitions, local], [registry.transitions, global]] as const) {
            yield* stream.pipe(
              Stream.runForEach((t) => Effect.sync(() => seen.push(`${t.from}->${t.to}`))),
              Effect.forkIn(scope, { startImmediately: true })
            )
          }
          yield* CircuitBreaker.setState(breaker, "Open", { key: "a", openFor: "1 second" })
          yield* TestClock.adjust("1 second")
          // The call's admission moves "a" from Open to HalfOpen.
          yield* interruptedAfter(breaker.protectKey(Effect.never, "a"), turns)
          yield* yieldTimes(30)
          assert.strictEqual(yield* breaker.stateKey("a"), "HalfOpen")
          yield* yieldTimes(30)
          assert.deepStrictEqual([local, global], [["Closed->Open", "Open->HalfOpen"], [
            "Closed->Open",
            "Open->HalfOpen"
          ]], `interrupted after ${turns} turns`)
          yield* Scope.close(scope, Exit.void)
        }
      }))
  })
})
