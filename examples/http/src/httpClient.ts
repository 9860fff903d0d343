import { CircuitBreaker } from "@effect-resilience/core"
import { ResilientHttpClient } from "@effect-resilience/http"
import { Effect, Schema } from "effect"
import { HttpClient, HttpClientResponse } from "effect/http"

const Item = Schema.Struct({ id: Schema.Number, stock: Schema.Number })

// Calls to the inventory service: one circuit per host, up to 3 retries of GETs on connection errors, timeouts
// and 429/502/503/504 (waiting at least what Retry-After asks), 2 seconds per attempt, and a retry budget.
export const program = (baseUrl: string) =>
  Effect.gen(function*() {
    const inventory = yield* ResilientHttpClient.make({
      name: "inventory",
      timeout: "2 seconds",
      retry: { times: 3, base: "100 millis", maxRetryAfter: "10 seconds" },
      circuitBreaker: { trip: CircuitBreaker.consecutive(3), openDuration: "30 seconds" }
    })
    // Statuses are values inside the middleware: filter them outside it.
    const client = (yield* HttpClient.HttpClient).pipe(inventory.apply, HttpClient.filterStatusOk)
    const item = yield* client.get(`${baseUrl}/items/42`).pipe(
      Effect.flatMap(HttpClientResponse.schemaBodyJson(Item))
    )
    const retries = (yield* inventory.retry!.snapshot).retries
    return { stock: item.stock, retries } // e.g. { stock: 7, retries: 2 } after a 503 and a 429
  }).pipe(Effect.scoped)
