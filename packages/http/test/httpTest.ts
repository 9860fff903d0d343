// Shared by the Api, Health and Admin tests: the surface served on a loopback port, and raw requests to it
// (node:http, so that paths reach the server exactly as written: encoded slashes, dots, case).
import { CircuitBreakerRegistry } from "@effect-resilience/core"
import { Admin, ResilienceApi, ResilienceHttp } from "@effect-resilience/http"
import { NodeHttpServer } from "@effect/platform-node"
import { Effect, Layer } from "effect"
import { type FindMyWay, HttpRouter, HttpServer } from "effect/http"
import * as Http from "node:http"

export const Server = <A = never, E = never>(
  options: ResilienceHttp.Options = {},
  // Services the surface reads when present (HealthMonitor, Degradation), built on the same registry.
  extra?: Layer.Layer<A, E, CircuitBreakerRegistry.CircuitBreakerRegistry>,
  // As `layer`'s documentation asks; `{}` is the router's default (names up to 100 characters).
  routerConfig: Partial<FindMyWay.RouterConfig> = { maxParamLength: ResilienceApi.maxNameLength }
) => {
  const app = HttpRouter.serve(
    ResilienceHttp.layer({ events: false, metrics: false, dashboard: false, ...options }),
    { disableLogger: true, disableListenLog: true, routerConfig }
  ).pipe(Layer.provideMerge(NodeHttpServer.layerTest), Layer.provideMerge(Admin.layer))
  const more = extra ?? (Layer.empty as Layer.Layer<unknown> as Layer.Layer<A, E>)
  return app.pipe(Layer.provideMerge(more), Layer.provideMerge(CircuitBreakerRegistry.layer))
}

export interface Reply {
  readonly status: number
  readonly headers: Http.IncomingHttpHeaders
  readonly text: string
  // oxlint-disable-next-line no-explicit-any -- parsed JSON, checked against the Schemas in the tests
  readonly json: any
}

export const request = (
  method: string,
  path: string,
  options: { readonly headers?: Record<string, string>; readonly body?: string } = {}
): Effect.Effect<Reply, never, HttpServer.HttpServer> =>
  Effect.flatMap(HttpServer.HttpServer, (server) =>
    Effect.callback<Reply>((resume) => {
      const port = (server.address as { readonly port: number }).port
      const req = Http.request({ host: "127.0.0.1", port, method, path, headers: options.headers }, (res) => {
        let text = ""
        res.setEncoding("utf8")
        res.on("data", (chunk: string) => (text += chunk))
        res.on("end", () => {
          let json: unknown = undefined
          try {
            json = text === "" ? undefined : JSON.parse(text)
          } catch {
            json = undefined
          }
          resume(Effect.succeed({ status: res.statusCode ?? 0, headers: res.headers, text, json }))
        })
      })
      req.on("error", (error) => resume(Effect.die(error)))
      if (options.body !== undefined) req.write(options.body)
      req.end()
    }))

export const get = (path: string, headers?: Record<string, string>) =>
  request("GET", path, headers === undefined ? {} : { headers })
