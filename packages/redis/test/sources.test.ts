import { assert, describe, it } from "@effect/vitest"
import { readdirSync, readFileSync } from "node:fs"
import { join } from "node:path"

// Library code reads time from `Clock`, randomness from `Random` (so tests can control both), and decodes what it
// reads with Schemas rather than trusting `JSON.parse` and a cast.
const forbidden = [/\bDate\.now\(/, /\bMath\.random\(/, /\bJSON\.parse\(/]

const sources = (dir: string): ReadonlyArray<string> =>
  readdirSync(dir, { recursive: true, encoding: "utf8" })
    .filter((file) => file.endsWith(".ts"))
    .map((file) => join(dir, file))

describe("sources", () => {
  for (const pkg of ["redis", "health-pg"]) {
    it(`${pkg}/src reads no wall clock, no Math.random, and parses no JSON by hand`, () => {
      const files = sources(join(import.meta.dirname, "..", "..", pkg, "src"))
      assert.isAtLeast(files.length, 2)
      const found = files.flatMap((file) =>
        readFileSync(file, "utf8").split("\n").flatMap((line, i) =>
          // JSDoc examples are user code, not the library's.
          line.trimStart().startsWith("*") || !forbidden.some((pattern) => pattern.test(line))
            ? []
            : [`${file}:${i + 1}: ${line.trim()}`]
        )
      )
      assert.deepStrictEqual(found, [])
    })
  }
})
