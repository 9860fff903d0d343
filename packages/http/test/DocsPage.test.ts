import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as docsPage from "../src/internal/docsPage.ts"
import { get, Server } from "./httpTest.ts"

// What `HttpApiScalar.layer` would inline: the bundle module's export, imported.
const imported = Effect.promise(() => import(docsPage.bundleUrl().href) as Promise<{ readonly javascript: string }>)

describe("the docs page", () => {
  it.effect("inlines the bundled Scalar script exactly as the bundle module exports it, without importing it", () =>
    Effect.gen(function*() {
      const { javascript } = yield* imported
      const docs = yield* get("/api/v1/resilience/docs")
      assert.strictEqual(docs.status, 200)
      assert.include(docs.text, `<script>${javascript}</script>`)
      assert.include(docs.text, `"content":`)
      assert.include(docs.text, `"agent":{"disabled":true}`)
      // Not to be framed by another site, as the dashboard is not.
      assert.include(docs.headers["content-security-policy"], "frame-ancestors 'none'")
      assert.strictEqual(docs.headers["x-content-type-options"], "nosniff")
      // Nor does it pass its URL on to the sites it links to.
      assert.strictEqual(docs.headers["referrer-policy"], "no-referrer")
    }).pipe(Effect.provide(Server())))

  it("decodes every escape of a JavaScript string literal, an escaped backslash included", () => {
    const source = String.raw`/** x */export const javascript="a\x41\n\"q\"\\x41\u2028\v\0\'\/\z";
//# sourceMappingURL=x.js.map`
    assert.strictEqual(docsPage.decodeBundle(source), "aA\n\"q\"\\x41\u2028\v\0'/z")
    assert.deepStrictEqual(docsPage.decodeBundle("export const other=1"), {
      error: `no "export const javascript=" in the bundle`
    })
    assert.deepStrictEqual(docsPage.decodeBundle(`export const javascript="never ends`), {
      error: "the bundle's string does not end"
    })
  })
})
