import { Chaos } from "@effect-resilience/core"
import { Effect, Random } from "effect"

// The inventory service, as the shop sees it.
const checkStock = (_sku: string) => Effect.succeed("in stock")

export const program = Effect.gen(function*() {
  // Off at first: the demo turns the dependency bad, then good again, while the shop keeps running.
  const chaos = yield* Chaos.make({ name: "inventory", enabled: false })
  const stock = (sku: string) =>
    checkStock(sku).pipe(
      chaos.protect,
      Effect.timeout("500 millis"),
      // The shop's own fallbacks: what the demo is there to exercise.
      Effect.catchTag("ChaosFault", () => Effect.succeed("down")),
      Effect.catchTag("TimeoutError", () => Effect.succeed("slow"))
    )

  const before = yield* stock("sku-1")
  // A third of the calls fail, and every call takes 200-800 ms longer.
  yield* chaos.set({ enabled: true, faultRate: 0.3, latency: { min: "200 millis", max: "800 millis" } })
  const during = yield* Effect.forEach(["sku-2", "sku-3", "sku-4", "sku-5"], stock)
  yield* chaos.disable
  const after = yield* stock("sku-6")

  return { before, during, after }
}).pipe(
  Effect.scoped,
  // The same seed injects the same faults and delays: a demo that runs the same way every time.
  Random.withSeed("demo")
)

// Effect.runPromise(program).then(console.log) // { before: "in stock", during: ["in stock", "down", "in stock", "slow"], after: "in stock" }
