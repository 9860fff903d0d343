import { assert, describe, it } from "@effect/vitest"
import { jsonBytesBound } from "../src/internal/deferredDelivery.ts"

// A seeded generator, so that a failure names the value that broke the bound and reproduces.
const random = (seed: number) => () => {
  seed = (seed * 1103515245 + 12345) % 2 ** 31
  return seed / 2 ** 31
}

// Every kind of UTF-16 unit JSON treats differently: control characters, quote and backslash, ASCII, two- and
// three-byte characters, lone surrogates (escaped by JSON.stringify) and surrogate pairs.
const units = ["\u0000", "\u001f", "\n", "\"", "\\", "a", "é", "€", "\ud800", "\udfff", "😀", "\u2028"]

const value = (next: () => number, depth: number): unknown => {
  const pick = Math.floor(next() * (depth > 3 ? 5 : 8))
  switch (pick) {
    case 0:
      return Array.from({ length: Math.floor(next() * 20) }, () => units[Math.floor(next() * units.length)]).join("")
    case 1:
      return [
        0,
        -0.0000012345678901234567,
        -1.7976931348623157e308,
        5e-324,
        Number.NaN,
        -Infinity,
        123456789012345680000
      ][
        Math.floor(next() * 7)
      ]
    case 2:
      return next() < 0.5
    case 3:
      return null
    case 4:
      return undefined
    case 5:
      return Array.from({ length: Math.floor(next() * 5) }, () => value(next, depth + 1))
    default:
      return Object.fromEntries(
        Array.from(
          { length: Math.floor(next() * 5) },
          (_, i) => [`${units[i % units.length]}k${i}`, value(next, depth + 1)]
        )
      )
  }
}

describe("jsonBytesBound", () => {
  it("is never below the bytes of JSON.stringify, for every kind of string unit, number and nesting", () => {
    const next = random(20261206)
    for (let i = 0; i < 5000; i++) {
      const v = value(next, 0)
      const json = JSON.stringify(v)
      if (json === undefined) continue
      const bound = jsonBytesBound(v)
      assert.isDefined(bound, json)
      assert.isAtLeast(bound!, Buffer.byteLength(json, "utf8"), json)
    }
  })

  it("leaves to JSON.stringify what only it can tell: toJSON, class instances, functions, bigints, deep nesting", () => {
    class Point {
      readonly x = 1
    }
    let deep: unknown = "x"
    for (let i = 0; i < 40; i++) deep = [deep]
    const withToJSON = Object.assign(["short"], { toJSON: () => "a".repeat(1000) })
    for (const v of [new Date(0), { toJSON: () => "x" }, withToJSON, new Point(), { f: () => 1 }, 1n, deep]) {
      assert.isUndefined(jsonBytesBound(v))
    }
    assert.strictEqual(jsonBytesBound({ user_id: "u1", text: "hi" }), 2 + (2 + 42 + 1 + 14 + 1) + (2 + 24 + 1 + 14 + 1))
  })
})
