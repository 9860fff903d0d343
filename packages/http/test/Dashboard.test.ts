import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as NodeServices from "@effect/platform-node/NodeServices"
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as HttpClient from "effect/http/HttpClient"
import * as HttpRouter from "effect/http/HttpRouter"
import * as Layer from "effect/Layer"
import { createHash } from "node:crypto"
import * as Dashboard from "../src/Dashboard.ts"

const inlineScripts = (html: string) => [...html.matchAll(/<script>([\s\S]*?)<\/script>/g)].map((match) => match[1]!)

describe("Dashboard", () => {
  it.effect("render: self-contained, every inline script allowed by its hash and nothing else", () =>
    Effect.gen(function*() {
      const { headers, html } = yield* Dashboard.render()
      // Nothing fetched from elsewhere (the CSP's default-src 'none' would refuse it anyway).
      assert.notMatch(html, /<script[^>]+src=|<link[^>]+stylesheet|@import|url\(\s*["']?https?:/)
      const scripts = inlineScripts(html)
      assert.strictEqual(scripts.length, 2)
      assert.include(scripts[0]!, "uPlot")
      const allowed = headers["content-security-policy"].match(/script-src ([^;]+)/)![1]!.split(" ")
      assert.deepStrictEqual(
        allowed,
        scripts.map((script) => `'sha256-${createHash("sha256").update(script, "utf8").digest("base64")}'`)
      )
      assert.include(headers["content-security-policy"], "connect-src 'self'")
    }).pipe(Effect.provide(NodeServices.layer)))

  it.effect("render: a title cannot break out of the page's markup or its config", () =>
    Effect.gen(function*() {
      const title = "</script><script>alert(1)</script><b>"
      const { html } = yield* Dashboard.render({ title })
      assert.strictEqual(html.match(/<script/g)!.length, 3) // the config, uPlot and the page's script
      assert.include(html, "<title>&#60;/script&#62;&#60;script&#62;alert(1)&#60;/script&#62;&#60;b&#62;</title>")
      const config = html.match(/<script type="application\/json" id="dashboard-config">(.*?)<\/script>/)![1]!
      assert.strictEqual(JSON.parse(config).title, title)
    }).pipe(Effect.provide(NodeServices.layer)))

  it.effect("render: bad options fail with every issue", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(
        Dashboard.render({ path: "/dash board" as `/${string}`, title: "", refreshInterval: "0 millis" })
      )
      if (error._tag !== "PolicyConfigError") return assert.fail(`expected a PolicyConfigError, got ${error._tag}`)
      assert.deepStrictEqual(error.issues.map((issue) => issue.path).sort(), ["path", "refreshInterval", "title"])
    }).pipe(Effect.provide(NodeServices.layer)))

  it.effect("layer: serves the page at its path with its security headers", () =>
    Effect.gen(function*() {
      const client = yield* HttpClient.HttpClient
      const response = yield* client.get("/ops")
      assert.strictEqual(response.status, 200)
      assert.match(response.headers["content-type"] ?? "", /^text\/html/)
      assert.match(response.headers["content-security-policy"] ?? "", /^default-src 'none'; script-src 'sha256-/)
      assert.strictEqual(response.headers["cache-control"], "no-store")
      assert.include(yield* response.text, "<title>ops</title>")
      assert.strictEqual((yield* client.get("/dashboard")).status, 404)
    }).pipe(
      Effect.provide(
        HttpRouter.serve(Dashboard.layer({ path: "/ops", title: "ops" }), {
          disableLogger: true,
          disableListenLog: true
        }).pipe(Layer.provideMerge(NodeHttpServer.layerTest))
      )
    ))
})
