/**
 * The agent service's handlers with no resilience at all, for the benchmark's baseline: `node src/bare.ts` (PORT).
 */
import { NodeHttpServer, NodeRuntime } from "@effect/platform-node"
import { Config, Console, Effect, Layer, Redacted } from "effect"
import { HttpRouter } from "effect/http"
import { createServer } from "node:http"
import { setFlagsFromString } from "node:v8"
import * as Agent from "./Agent.ts"
import * as Routes from "./Routes.ts"
import * as Upstreams from "./Upstreams.ts"

// As the resilient service runs (see main.ts), so that the two compare like for like.
setFlagsFromString("--no-allocation-site-pretenuring")

const program = Effect.gen(function*() {
  const port = yield* Config.Port("PORT").pipe(Config.withDefault(3000))
  const token = yield* Config.Redacted("RESILIENCE_ADMIN_TOKEN").pipe(Config.withDefault(Redacted.make("bare-token")))
  // The agent is the routes' alone, as main.ts provides the resilient one: requests run with the server's services.
  const routes = Routes.layerFor(token).pipe(Layer.provide(Agent.layerBare), Layer.provide(Upstreams.layer))
  const serve = HttpRouter.serve(routes, { disableListenLog: true, disableLogger: true })
  const announce = Layer.effectDiscard(
    Console.log(`Bare agent service listening on http://localhost:${port} (pid ${process.pid})`)
  )
  return yield* Layer.launch(
    Layer.provide(announce, serve).pipe(Layer.provide(NodeHttpServer.layer(createServer, { port })))
  )
})

NodeRuntime.runMain(program)
