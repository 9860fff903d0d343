import { CircuitBreaker, CircuitBreakerRegistry } from "@effect-resilience/core"
import { ResilienceApi, ResilienceHttp } from "@effect-resilience/http"
import { NodeHttpServer } from "@effect/platform-node"
import { Duration, Effect, Layer } from "effect"
import { HttpRouter, HttpServerResponse } from "effect/http"

// Your own routes, with a breaker made under the registry.
export const AppRoutes = HttpRouter.use(Effect.fnUntraced(function*(router) {
  const payments = yield* CircuitBreaker.make({ name: "payments", trip: CircuitBreaker.consecutive(5) })
  yield* router.add(
    "POST",
    "/pay",
    payments.protect(Effect.succeed(HttpServerResponse.text("paid"))).pipe(
      // Open: a 503 saying when to come back, not a 500. Forced open has no end (an infinite retryAfter): no header.
      Effect.catchTag("CircuitBreakerError", (error) =>
        Effect.succeed(HttpServerResponse.text(error.message, {
          status: 503,
          headers: Duration.isFinite(error.retryAfter)
            ? { "retry-after": String(Math.ceil(Duration.toSeconds(error.retryAfter))) }
            : {}
        })))
    )
  )
}))

// One layer mounts the API, the probes, the admin controls, /metrics, the event stream and /dashboard.
// The admin token comes from RESILIENCE_ADMIN_TOKEN; "payments" open takes the instance out of rotation.
// The router takes breaker names as long as the API does (200 characters; its own default is 100).
export const Main = HttpRouter.serve(
  Layer.mergeAll(AppRoutes, ResilienceHttp.layer({ criticalBreakers: ["payments"] })),
  { routerConfig: { maxParamLength: ResilienceApi.maxNameLength } }
).pipe(
  Layer.provide(CircuitBreakerRegistry.layer),
  // Node's server, answering what its parser rejects with a JSON problem instead of a reset connection.
  Layer.provide(NodeHttpServer.layer(ResilienceHttp.createServer, { port: 8080 }))
)

// Or the surface alone, on an operations port of its own, beside your program: one registry for both, or the
// surface would read a registry of its own, empty.
export const WithOps = <E>(app: Layer.Layer<never, E, CircuitBreakerRegistry.CircuitBreakerRegistry>, port = 9464) =>
  Layer.mergeAll(app, ResilienceHttp.layerServer({ port, host: "127.0.0.1" })).pipe(
    Layer.provide(CircuitBreakerRegistry.layer)
  )
