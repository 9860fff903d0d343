import { program } from "@effect-resilience/example-http/httpClient"
import { assert, it } from "@effect/vitest"
import { Effect } from "effect"
import { FetchHttpClient } from "effect/http"
import { createServer } from "node:http"
import type { AddressInfo } from "node:net"

// The README's resilient HttpClient example against a local server that answers a 503, then a 429 asking for a
// second, then the item: real sockets, so real time (the second the 429 asks for is waited).
const inventoryServer = Effect.acquireRelease(
  Effect.callback<ReturnType<typeof createServer>>((resume) => {
    let requests = 0
    const server = createServer((_request, response) => {
      requests++
      if (requests === 1) return void response.writeHead(503).end()
      if (requests === 2) return void response.writeHead(429, { "retry-after": "1" }).end()
      response.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ id: 42, stock: 7 }))
    })
    server.listen(0, "127.0.0.1", () => resume(Effect.succeed(server)))
  }),
  (server) =>
    Effect.callback<void>((resume) => {
      server.closeAllConnections()
      server.close(() => resume(Effect.void))
    })
)

it.live("the resilient HttpClient example returns what its last line says", () =>
  Effect.gen(function*() {
    const server = yield* inventoryServer
    const started = Date.now()
    const result = yield* program(`http://127.0.0.1:${(server.address() as AddressInfo).port}`)
    assert.deepStrictEqual(result, { stock: 7, retries: 2 })
    // The 429's Retry-After was honoured: its second was waited, not the backoff's 200 millis.
    assert.isAtLeast(Date.now() - started, 1000)
  }).pipe(Effect.provide(FetchHttpClient.layer)))
