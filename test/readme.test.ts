import { program } from "@effect-resilience/example-breaker-demo/quickstart"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { readFileSync } from "node:fs"
import { join } from "node:path"

const root = join(import.meta.dirname, "..")
const readme = readFileSync(join(root, "README.md"), "utf8")

// A README code block preceded by `<!-- snippet: path -->` must be that file, verbatim: the file is typechecked
// and run, so the README's examples are too.
const snippets = Array.from(readme.matchAll(/<!-- snippet: (\S+) -->\s*```ts\n([\s\S]*?)```/g), (m) => ({
  path: m[1],
  code: m[2]
}))

describe("README", () => {
  it("has snippets", () => {
    assert.isAtLeast(snippets.length, 1)
  })

  for (const { code, path } of snippets) {
    it(`shows ${path} as it is`, () => {
      assert.strictEqual(code, readFileSync(join(root, path), "utf8"))
    })
  }

  it.effect("the quick-start snippet does what its last line says", () =>
    Effect.gen(function*() {
      assert.strictEqual(yield* program, "Open: 3 failures, 2 rejected")
    }))
})
