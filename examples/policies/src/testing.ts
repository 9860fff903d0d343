import { CircuitBreaker, FallbackStore } from "@effect-resilience/core"
import { Effect, Option } from "effect"
import { TestClock } from "effect/testing"

// Written for a test (`it.effect` provides TestClock): `setState` puts the breaker where the test needs it without
// driving failures, `TestClock.adjust` passes its open duration at once, and an in-memory store stands in for the disk.
export const program = Effect.gen(function*() {
  const store = yield* FallbackStore.FallbackStore
  const breaker = yield* CircuitBreaker.make({ name: "pricing", openDuration: "30 seconds" })

  // The code under test: a live price, kept in the store; the last one kept while the breaker rejects calls.
  const price = (sku: string) =>
    Effect.succeed(`${sku}: $19.99`).pipe(
      breaker.protect,
      Effect.tap((fresh) => store.set(sku, fresh)),
      Effect.catchTag("CircuitBreakerError", (error) =>
        Effect.map(
          store.get(sku),
          Option.match({
            onNone: () => `unavailable (${error.reason._tag})`,
            onSome: (last) => `${last} (cached)`
          })
        ))
    )

  const live = yield* price("sku-1")
  yield* CircuitBreaker.setState(breaker, "Open", { openFor: "30 seconds" })
  const whileOpen = [yield* price("sku-1"), yield* price("sku-2")]
  yield* TestClock.adjust("30 seconds")
  const probing = yield* breaker.state
  const afterProbe = yield* price("sku-1")
  return { live, whileOpen, probing, afterProbe }
}).pipe(Effect.scoped, Effect.provide(FallbackStore.layerMemory()))

// In a test: { live: "sku-1: $19.99", whileOpen: ["sku-1: $19.99 (cached)", "unavailable (CircuitOpen)"],
//   probing: "HalfOpen", afterProbe: "sku-1: $19.99" }
