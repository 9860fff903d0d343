import { FallbackStore } from "@effect-resilience/core"
import { Data, Effect, Option } from "effect"

class PricingDown extends Data.TaggedError("PricingDown") {}

// A pricing service that answers the first request, then goes down.
const pricingService = () => {
  let requests = 0
  return (sku: string) =>
    Effect.suspend(() => requests++ === 0 ? Effect.succeed(`${sku}: $19.99`) : Effect.fail(new PricingDown()))
}

export const program = Effect.gen(function*() {
  const store = yield* FallbackStore.FallbackStore
  const fetchPrice = pricingService()
  // Every fresh price is kept for an hour; while the service is down, the last good one answers.
  const price = (sku: string) =>
    fetchPrice(sku).pipe(
      Effect.tap((fresh) => store.set(`price:${sku}`, fresh, { ttl: "1 hour" })),
      Effect.catchTag("PricingDown", () =>
        store.get(`price:${sku}`).pipe(Effect.map(Option.match({
          onNone: () => "price unavailable",
          onSome: (last) => `${last} (cached)`
        }))))
    )

  const fresh = yield* price("sku-1")
  yield* Effect.sleep("30 minutes")
  const cached = yield* price("sku-1") // the service is down: the stored price answers
  yield* Effect.sleep("30 minutes")
  const expired = yield* price("sku-1") // an hour old: no longer served
  return [fresh, cached, expired]
}).pipe(
  // In memory for the example. In production, `FallbackStore.layer({ directory: ".data" })` with
  // `NodeServices.layer` keeps the prices on disk, so they survive a restart.
  Effect.provide(FallbackStore.layerMemory({ maxEntries: 10_000 }))
)

// Effect.runPromise(program).then(console.log) // ["sku-1: $19.99", "sku-1: $19.99 (cached)", "price unavailable"]
