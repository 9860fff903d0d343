/**
 * The journal of a deferred delivery queue, as entries of a `FallbackStore`: one entry per queued message
 * (`<queue>/q/<seq>`) and per dead letter (`<queue>/d/<seq>`), `seq` growing with every enqueue so that sorting by it
 * gives the delivery order back after a restart.
 *
 * @internal
 */
import * as Schema from "effect/Schema"

/** A message in the journal, its payload already encoded to JSON by the queue's schema. @internal */
export const Record = Schema.Struct({
  key: Schema.String,
  message: Schema.Unknown,
  enqueuedAt: Schema.Number,
  attempts: Schema.Number,
  lastError: Schema.optional(Schema.String),
  deadAt: Schema.optional(Schema.Number)
})

/** @internal */
export type Record = typeof Record.Type

/** @internal */
export const RecordJson = Schema.fromJsonString(Record)

/** @internal */
export interface Item extends Record {
  readonly seq: number
}

/** @internal */
export type Kind = "q" | "d"

// 16 digits hold every safe integer, and keep the keys sortable as strings too.
/** @internal */
export const keyOf = (queue: string, kind: Kind, seq: number): string =>
  `${queue}/${kind}/${seq.toString().padStart(16, "0")}`

/** The kind and sequence number of a journal key of `queue`, or undefined for any other key. @internal */
export const parseKey = (queue: string, key: string): { readonly kind: Kind; readonly seq: number } | undefined => {
  const prefix = `${queue}/`
  if (!key.startsWith(prefix)) return undefined
  const match = /^([qd])\/(\d{16})$/.exec(key.slice(prefix.length))
  if (match === null) return undefined
  return { kind: match[1] as Kind, seq: Number(match[2]) }
}

/** Orders items by sequence number. @internal */
export const bySeq = (a: Item, b: Item): number => a.seq - b.seq

/** Bytes of a string as the file store writes it (WTF-8). @internal */
export { byteLength } from "./fallbackStore.ts"

/**
 * At least the bytes of `JSON.stringify(value)` written as WTF-8, without building the string: a send whose entry is
 * certainly under the cap needs no encoding to know it. Undefined where only the string can tell: a value that is not
 * plain data (a `toJSON`, a class instance, a function, a bigint) or is nested deeper than 32.
 *
 * Each UTF-16 unit of a string takes at most 6 bytes in JSON (the `\uXXXX` escape; unescaped, at most 3); a number
 * at most 25 characters (`-0.0000012345678901234567`).
 *
 * @internal
 */
export const jsonBytesBound = (value: unknown, depth = 0): number | undefined => {
  switch (typeof value) {
    case "string":
      return 2 + 6 * value.length
    case "number":
      return 25
    case "boolean":
      return 5
    case "object": {
      if (value === null) return 4
      if (depth >= 32) return undefined
      // A `toJSON` anywhere (an array's own included) writes whatever it returns.
      if ("toJSON" in value) return undefined
      const proto = Object.getPrototypeOf(value)
      if (Array.isArray(value)) {
        if (proto !== Array.prototype) return undefined
        let total = 2
        for (let i = 0; i < value.length; i++) {
          // A hole or `undefined` is written as `null`.
          const item = value[i] === undefined ? 4 : jsonBytesBound(value[i], depth + 1)
          if (item === undefined) return undefined
          total += item + 1
        }
        return total
      }
      if (proto !== Object.prototype && proto !== null) return undefined
      let total = 2
      // `for in` over own keys: `Object.keys` would allocate an array on every send.
      for (const key in value) {
        if (!Object.hasOwn(value, key)) continue
        const field = (value as { readonly [k: string]: unknown })[key]
        // JSON leaves `undefined` fields out.
        if (field === undefined) continue
        const bound = jsonBytesBound(field, depth + 1)
        if (bound === undefined) return undefined
        total += 2 + 6 * key.length + 1 + bound + 1
      }
      return total
    }
    default:
      return undefined
  }
}
