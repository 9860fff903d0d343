import { assert, describe, it } from "@effect/vitest"
import {
  examplesOf,
  importedPackages,
  isImportLine,
  mapDiagnostic,
  markdownExamplesOf,
  parseDiagnostic
} from "./jsdocExamples.ts"

const source = [
  "/**", // 1
  " * A module.", // 2
  " *", // 3
  " * ```ts", // 4
  " * import { A } from \"a\"", // 5
  " *", // 6
  " * const x: number = A", // 7
  " * ```", // 8
  " */", // 9
  "export const a = 1", // 10
  "", // 11
  "  /**", // 12
  "   * Indented, with a shell block that is not checked.", // 13
  "   *", // 14
  "   * ```sh", // 15
  "   * pnpm test", // 16
  "   * ```", // 17
  "   *", // 18
  "   * @example", // 19
  "   * ```ts", // 20
  "   * const f = (n: number) =>", // 21
  "   *   n + 1", // 22
  "   * ```", // 23
  "   */", // 24
  "// ```ts (not a JSDoc comment)", // 25
  "/** ```ts on one line is not an example */" // 26
].join("\n")

describe("JSDoc examples", () => {
  it("finds the ```ts blocks of JSDoc comments, without the prefix, keeping the code's own indentation", () => {
    const examples = examplesOf("packages/x/src/X.ts", source)
    assert.deepStrictEqual(examples, [
      {
        source: "packages/x/src/X.ts",
        fence: 4,
        code: ["import { A } from \"a\"", "", "const x: number = A"],
        indents: [3, 2, 3]
      },
      {
        source: "packages/x/src/X.ts",
        fence: 20,
        code: ["const f = (n: number) =>", "  n + 1"],
        indents: [5, 5]
      }
    ])
  })

  it("an example left open when its comment ends is an error", () => {
    assert.throws(() => examplesOf("X.ts", "/**\n * ```ts\n * const a = 1\n */"), /X\.ts:2: the example is not closed/)
  })

  it("maps a diagnostic back to the source's line and column", () => {
    const [example] = examplesOf("packages/x/src/X.ts", source)
    const diagnostic = parseDiagnostic(
      "node_modules/.cache/jsdoc-examples/run-1/x/X.L4.ts(3,7): error TS2322: Type 'string' is not assignable to type 'number'."
    )
    assert.deepStrictEqual(diagnostic && { ...diagnostic, text: "" }, {
      file: "node_modules/.cache/jsdoc-examples/run-1/x/X.L4.ts",
      line: 3,
      column: 7,
      code: "TS2322",
      text: ""
    })
    // Line 3 of the example is line 7 of the source; column 7 there is column 10 after ` * `.
    assert.strictEqual(
      mapDiagnostic(example, diagnostic!),
      "packages/x/src/X.ts:7:10 (example at line 4): error TS2322: Type 'string' is not assignable to type 'number'."
    )
    assert.isUndefined(parseDiagnostic("  Property 'a' is missing."))
  })

  it("keeps unused imports, drops unused locals", () => {
    const [example] = examplesOf("packages/x/src/X.ts", source)
    const unusedImport = parseDiagnostic("x.ts(1,10): error TS6133: 'A' is declared but its value is never read.")!
    const unusedLocal = parseDiagnostic("x.ts(3,7): error TS6133: 'x' is declared but its value is never read.")!
    assert.match(mapDiagnostic(example, unusedImport) ?? "", /^packages\/x\/src\/X\.ts:5:13 .* TS6133/)
    assert.isUndefined(mapDiagnostic(example, unusedLocal))
  })

  it("an import declaration may span lines", () => {
    const code = ["import {", "  A,", "  B", "} from \"a\"", "import \"side-effect\"", "const c = 1"]
    assert.deepStrictEqual(code.map((_, i) => isImportLine(code, i)), [true, true, true, true, true, false])
  })
})

const page = [
  "# A page", // 1
  "", // 2
  "```ts", // 3
  "import { A } from \"a\"", // 4
  "", // 5
  "const x: number = A", // 6
  "```", // 7
  "", // 8
  "```sh", // 9
  "pnpm test", // 10
  "```", // 11
  "", // 12
  "1. In a list:", // 13
  "", // 14
  "   ```typescript", // 15
  "   const f = (n: number) =>", // 16
  "     n + 1", // 17
  "   ```", // 18
  "", // 19
  "<!-- check-examples: skip (a fragment) -->", // 20
  "", // 21
  "```ts", // 22
  "yield* f(1)", // 23
  "```", // 24
  "", // 25
  "````md", // 26
  "```ts", // 27
  "not an example: inside a block of another language", // 28
  "```", // 29
  "````" // 30
].join("\n")

describe("Markdown examples", () => {
  it("finds the ```ts blocks of a page, without the fence's indentation; a marked one carries its reason", () => {
    assert.deepStrictEqual(markdownExamplesOf("docs/x.md", page), [
      {
        source: "docs/x.md",
        fence: 3,
        code: ["import { A } from \"a\"", "", "const x: number = A"],
        indents: [0, 0, 0]
      },
      {
        source: "docs/x.md",
        fence: 15,
        code: ["const f = (n: number) =>", "  n + 1"],
        indents: [3, 3]
      },
      { source: "docs/x.md", fence: 22, code: ["yield* f(1)"], indents: [0], skip: "a fragment" }
    ])
  })

  it("the marker skips only the block right after it", () => {
    const text = "<!-- check-examples: skip (why) -->\n\nSome text.\n\n```ts\nconst a = 1\n```"
    assert.deepStrictEqual(markdownExamplesOf("x.md", text), [
      { source: "x.md", fence: 5, code: ["const a = 1"], indents: [0] }
    ])
  })

  it("a misspelt marker, or a block left open, is an error", () => {
    assert.throws(
      () => markdownExamplesOf("x.md", "<!-- check-examples: skip -->\n```ts\nconst a = 1\n```"),
      /x\.md:1: write the marker as <!-- check-examples: skip \(the reason\) -->/
    )
    assert.throws(
      () => markdownExamplesOf("x.md", "text\n\n```ts\nconst a = 1\n"),
      /x\.md:3: the code block is not closed/
    )
  })

  it("maps a diagnostic back to the page's line", () => {
    const [, indented] = markdownExamplesOf("docs/x.md", page)
    const diagnostic = parseDiagnostic(
      "node_modules/.cache/jsdoc-examples/run-1/pages/docs/x.L15.ts(2,3): error TS2365: Operator '+' cannot be applied."
    )!
    // Line 2 of the example is line 17 of the page; column 3 there is column 6 after the list's indentation.
    assert.strictEqual(
      mapDiagnostic(indented, diagnostic),
      "docs/x.md:17:6 (example at line 15): error TS2365: Operator '+' cannot be applied."
    )
  })

  it("names the packages an example imports", () => {
    const code = [
      "import { CircuitBreaker } from \"@effect-resilience/core\"",
      "import { Effect } from \"effect\"",
      "import { TestClock } from \"effect/testing\"",
      "import type { Server } from \"node:http\"",
      "import { helper } from \"./helper.ts\"",
      "import \"@effect/platform-node/NodeRuntime\"",
      "const lazy = () => import(\"@effect-resilience/redis\")"
    ]
    assert.deepStrictEqual(importedPackages(code), [
      "@effect-resilience/core",
      "effect",
      "@effect/platform-node",
      "@effect-resilience/redis"
    ])
  })
})
