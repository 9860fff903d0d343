import { program } from "@effect-resilience/example-breaker-demo/quickstart"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { existsSync, readdirSync, readFileSync } from "node:fs"
import { dirname, join, relative } from "node:path"

const root = join(import.meta.dirname, "..")

// The guide and its topic pages: every one is checked the same way.
const pages = [
  "README.md",
  ...readdirSync(join(root, "docs")).filter((name) => name.endsWith(".md")).sort().map((name) => `docs/${name}`)
].map((path) => ({ path, text: readFileSync(join(root, path), "utf8") }))

// A code block preceded by `<!-- snippet: path -->` (path from the repository's root) must be that file, verbatim:
// the file is typechecked and run, so the pages' examples are too.
const snippetsOf = (text: string) =>
  Array.from(text.matchAll(/<!-- snippet: (\S+) -->\s*```ts\n([\s\S]*?)```/g), (m) => ({ path: m[1], code: m[2] }))

const withoutCode = (text: string) => text.replace(/```[\s\S]*?```/g, "")

// Relative links and images outside code blocks, `[text](target)`, without the web and mail ones; `anchor` is the
// part after `#`, `target` the file ("" for the page itself).
const anchoredLinksOf = (text: string) =>
  Array.from(withoutCode(text).matchAll(/!?\[[^\]]*\]\(([^)\s]+)\)/g), (m) => m[1])
    .filter((link) => !/^[a-z]+:/i.test(link))
    .map((link) => ({
      target: link.replace(/#.*$/, ""),
      anchor: link.includes("#") ? link.replace(/^[^#]*#/, "") : ""
    }))

const linksOf = (text: string) => anchoredLinksOf(text).map(({ target }) => target).filter((target) => target !== "")

// The anchors GitHub gives a page's headings: lower case, punctuation dropped, spaces as dashes.
const anchorsOf = (text: string) =>
  new Set(
    Array.from(
      withoutCode(text).matchAll(/^#{1,6} (.+)$/gm),
      (m) => m[1].toLowerCase().replace(/[^\p{L}\p{N} _-]/gu, "").replace(/ /g, "-")
    )
  )

// The topic pages the README's table of modules points into.
const topics = [
  "docs/breakers.md",
  "docs/policies.md",
  "docs/degradation.md",
  "docs/health.md",
  "docs/stores.md",
  "docs/fleet.md",
  "docs/testing.md",
  "docs/operations.md"
]

describe("README and docs/", () => {
  it("the README links every topic page", () => {
    const links = new Set(linksOf(pages[0].text))
    for (const topic of topics) assert.isTrue(links.has(topic), `README.md does not link ${topic}`)
  })

  for (const { path, text } of pages) {
    describe(`${path}`, () => {
      it("has no broken relative links", () => {
        const broken = linksOf(text).filter((target) => !existsSync(join(root, dirname(path), target)))
        assert.deepStrictEqual(broken, [])
      })

      it("links only to headings that exist", () => {
        const broken = anchoredLinksOf(text)
          .filter(({ anchor, target }) => anchor !== "" && /\.md$|^$/.test(target))
          .filter(({ anchor, target }) => {
            const file = target === "" ? join(root, path) : join(root, dirname(path), target)
            return existsSync(file) && !anchorsOf(readFileSync(file, "utf8")).has(anchor)
          })
          .map(({ anchor, target }) => `${target}#${anchor}`)
        assert.deepStrictEqual(broken, [])
      })

      it("has no snippet marker without its ts block", () => {
        assert.strictEqual(snippetsOf(text).length, Array.from(text.matchAll(/<!-- snippet: /g)).length)
      })

      for (const snippet of snippetsOf(text)) {
        it(`shows ${snippet.path} as it is`, () => {
          assert.strictEqual(snippet.code, readFileSync(join(root, snippet.path), "utf8"))
        })
      }
    })
  }

  it("every topic page exists and links back to the README", () => {
    assert.deepStrictEqual(topics.filter((topic) => !pages.some((page) => page.path === topic)), [])
    for (const { path, text } of pages.filter((page) => topics.includes(page.path))) {
      assert.include(linksOf(text), relative(dirname(path), "README.md"), `${path} does not link the README`)
    }
  })

  it.effect("the quick-start snippet does what its last line says", () =>
    Effect.gen(function*() {
      assert.strictEqual(yield* program, "Open: 3 failures, 2 rejected")
    }))
})
