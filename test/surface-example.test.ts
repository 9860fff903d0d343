import { CircuitBreaker, CircuitBreakerRegistry } from "@effect-resilience/core"
import { AppRoutes, WithOps } from "@effect-resilience/example-http/surface"
import { NodeHttpServer } from "@effect/platform-node"
import { assert, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { HttpClient, HttpRouter } from "effect/http"
import { createServer } from "node:net"

const freePort = Effect.callback<number>((resume) => {
  const probe = createServer().listen(0, "127.0.0.1", () => {
    const { port } = probe.address() as { readonly port: number }
    probe.close(() => resume(Effect.succeed(port)))
  })
})

// operations.md's surface on an operations port of its own: it lists the breakers of the program beside it.
it.live("the surface served beside a program shows that program's breakers", () =>
  Effect.gen(function*() {
    const port = yield* freePort
    const app = Layer.effectDiscard(
      Effect.flatMap(CircuitBreaker.make({ name: "payments" }), (payments) => payments.forceOpen())
    )
    yield* Layer.build(WithOps(app, port))
    const listed = yield* Effect.promise(() =>
      fetch(`http://127.0.0.1:${port}/api/v1/resilience/circuit-breakers`).then((r) =>
        r.json() as Promise<Record<string, { readonly state: string }>>
      )
    )
    assert.strictEqual(listed.payments.state, "forced_open")
  }).pipe(Effect.scoped))

// operations.md's /pay route: a rejected call is a 503 with a Retry-After only when the rejection has an end.
it.live("the surface example's /pay sends Retry-After in seconds while open, none while forced open", () =>
  Effect.gen(function*() {
    const pay = Effect.map(
      HttpClient.post("/pay"),
      (response): { readonly status: number; readonly retryAfter: string | null } => ({
        status: response.status,
        retryAfter: response.headers["retry-after"] ?? null
      })
    )
    assert.deepStrictEqual(yield* pay, { status: 200, retryAfter: null })
    const payments = yield* CircuitBreakerRegistry.get("payments")
    yield* CircuitBreaker.setState(payments, "Open", { openFor: "30 seconds" })
    const open = yield* pay
    assert.strictEqual(open.status, 503)
    assert.include(["29", "30"], String(open.retryAfter))
    yield* CircuitBreaker.setState(payments, "ForcedOpen")
    assert.deepStrictEqual(yield* pay, { status: 503, retryAfter: null })
  }).pipe(
    Effect.provide(
      HttpRouter.serve(AppRoutes).pipe(
        Layer.provideMerge(NodeHttpServer.layerTest),
        Layer.provideMerge(CircuitBreakerRegistry.layer)
      )
    )
  ))
