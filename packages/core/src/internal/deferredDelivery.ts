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
