import { CircuitBreaker } from "@effect-resilience/core"
import { WithOps } from "@effect-resilience/example-http/surface"
import { assert, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
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
