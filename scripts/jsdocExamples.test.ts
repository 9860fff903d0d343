import { assert, describe, it } from "@effect/vitest"
import { examplesOf, isImportLine, mapDiagnostic, parseDiagnostic } from "./jsdocExamples.ts"

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
