import { Hedge } from "@effect-resilience/core"
import { Clock, type Duration, Effect } from "effect"

// A read served by whichever replica the load balancer picks: this time the first one is stuck in a long GC pause,
// and the next one answers in 80 ms.
const makeReplicas = (latencies: ReadonlyArray<Duration.Input>) => {
  let picked = 0
  return Effect.suspend(() => {
    const replica = picked++
    return Effect.sleep(latencies[replica]).pipe(Effect.as(`price from replica ${replica}`))
  })
}

export const program = Effect.gen(function*() {
  const getPrice = makeReplicas(["3 seconds", "80 millis"])
  // No answer in 200 ms? Ask again alongside, at most twice. The first success wins; the others are interrupted.
  const hedge = yield* Hedge.make({ name: "prices", delay: "200 millis", maxHedges: 2 })

  const start = yield* Clock.currentTimeMillis
  const price = yield* getPrice.pipe(hedge.protect)
  const took = (yield* Clock.currentTimeMillis) - start

  const { hedges } = yield* hedge.snapshot
  return `${price} in ${took}ms, after ${hedges} hedge`
}).pipe(Effect.scoped)

// Effect.runPromise(program).then(console.log) // "price from replica 1 in 280ms, after 1 hedge"
