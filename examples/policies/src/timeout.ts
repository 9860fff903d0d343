import { Timeout } from "@effect-resilience/core"
import { Data, Effect } from "effect"

class StockError extends Data.TaggedError("StockError")<{ readonly cause: unknown }> {}

// A promise-based client, like `fetch`: it answers for socks at once, and its request for boots hangs until the
// request's signal aborts it.
const makeClient = () => {
  let aborted = 0
  const requestStock = (sku: string, signal: AbortSignal): Promise<number> =>
    sku === "socks" ? Promise.resolve(12) : new Promise((_resolve, reject) => {
      signal.addEventListener("abort", () => {
        aborted++
        reject(signal.reason)
      })
    })
  return { requestStock, aborted: () => aborted }
}

export const program = Effect.gen(function*() {
  const client = makeClient()
  const timeout = yield* Timeout.make({ name: "stock", duration: "2 seconds" })
  const stock = (sku: string) =>
    Effect.tryPromise({
      // Take the signal: Effect aborts it when the attempt is interrupted, so a timeout cancels the request too.
      try: (signal) => client.requestStock(sku, signal),
      catch: (cause) => new StockError({ cause })
    }).pipe(
      timeout.protect,
      Effect.catchTag("TimeoutError", (e) => Effect.succeed(e.message))
    )

  const socks = yield* stock("socks")
  // Two seconds later: a TimeoutError, and the hanging request is aborted rather than left open.
  const boots = yield* stock("boots")
  return { socks, boots, aborted: client.aborted() }
}).pipe(Effect.scoped)

// Effect.runPromise(program).then(console.log) // { socks: 12, boots: 'Operation "stock" timed out after 2s', aborted: 1 }
