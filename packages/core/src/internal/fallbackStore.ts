/**
 * The fallback store's pieces that need no effect: the string codec, the checksum, the key-to-file-name
 * encoding, the entry format, and the index that decides expiry and eviction.
 *
 * Why our own UTF-8 codec: a JavaScript string may hold lone surrogates ("\uD800"), which `TextEncoder` turns
 * into U+FFFD, so "\uD800" and "\uD801" would share a file and come back changed. WTF-8 (UTF-8 that also encodes
 * lone surrogates) maps every string to its own bytes and back; for well-formed strings it is plain UTF-8. Core has
 * no DOM or Node typings, so `TextEncoder` is not there to call anyway.
 *
 * @internal
 */
import { sha256 as nobleSha256 } from "@noble/hashes/sha2.js"
// A CommonJS module whose exports Node only exposes as the default import.
import CRC32 from "crc-32"

// -----------------------------------------------------------------------------
// WTF-8
// -----------------------------------------------------------------------------

/** Bytes `encodeString(s)` takes, without encoding. @internal */
export const byteLength = (s: string): number => {
  let n = 0
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (c < 0x80) n += 1
    else if (c < 0x800) n += 2
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length && isTrail(s.charCodeAt(i + 1))) {
      n += 4
      i++
    } else n += 3
  }
  return n
}

const isTrail = (c: number): boolean => c >= 0xdc00 && c <= 0xdfff

/** Writes the WTF-8 bytes of `s` into `out` at `offset`; returns the offset after them. @internal */
export const writeString = (s: string, out: Uint8Array, offset: number): number => {
  let j = offset
  for (let i = 0; i < s.length; i++) {
    let c = s.charCodeAt(i)
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length && isTrail(s.charCodeAt(i + 1))) {
      c = 0x10000 + ((c - 0xd800) << 10) + (s.charCodeAt(++i) - 0xdc00)
    }
    if (c < 0x80) {
      out[j++] = c
    } else if (c < 0x800) {
      out[j++] = 0xc0 | (c >> 6)
      out[j++] = 0x80 | (c & 0x3f)
    } else if (c < 0x10000) {
      out[j++] = 0xe0 | (c >> 12)
      out[j++] = 0x80 | ((c >> 6) & 0x3f)
      out[j++] = 0x80 | (c & 0x3f)
    } else {
      out[j++] = 0xf0 | (c >> 18)
      out[j++] = 0x80 | ((c >> 12) & 0x3f)
      out[j++] = 0x80 | ((c >> 6) & 0x3f)
      out[j++] = 0x80 | (c & 0x3f)
    }
  }
  return j
}

/** The WTF-8 bytes of `s`. @internal */
export const encodeString = (s: string): Uint8Array => {
  const out = new Uint8Array(byteLength(s))
  writeString(s, out, 0)
  return out
}

const CHUNK = 4096

/**
 * Decodes WTF-8 from `bytes[start, end)`, strictly: an overlong form, a code point past U+10FFFF, a stray
 * continuation byte, or a surrogate pair written as two 3-byte sequences (which `writeString` never writes) gives
 * `undefined`, so one string has exactly one encoding.
 *
 * @internal
 */
export const decodeString = (bytes: Uint8Array, start: number, end: number): string | undefined => {
  let result = ""
  const units: Array<number> = []
  let lead = false // the last code point was a lone lead surrogate
  let i = start
  while (i < end) {
    const b = bytes[i]
    let c: number
    if (b < 0x80) {
      c = b
      i += 1
    } else if (b >= 0xc2 && b <= 0xdf) {
      if (i + 1 >= end || !isContinuation(bytes[i + 1])) return undefined
      c = ((b & 0x1f) << 6) | (bytes[i + 1] & 0x3f)
      i += 2
    } else if (b >= 0xe0 && b <= 0xef) {
      if (i + 2 >= end || !isContinuation(bytes[i + 1]) || !isContinuation(bytes[i + 2])) return undefined
      c = ((b & 0x0f) << 12) | ((bytes[i + 1] & 0x3f) << 6) | (bytes[i + 2] & 0x3f)
      if (c < 0x800) return undefined
      i += 3
    } else if (b >= 0xf0 && b <= 0xf4) {
      if (
        i + 3 >= end || !isContinuation(bytes[i + 1]) || !isContinuation(bytes[i + 2]) ||
        !isContinuation(bytes[i + 3])
      ) return undefined
      c = ((b & 0x07) << 18) | ((bytes[i + 1] & 0x3f) << 12) | ((bytes[i + 2] & 0x3f) << 6) | (bytes[i + 3] & 0x3f)
      if (c < 0x10000 || c > 0x10ffff) return undefined
      i += 4
    } else {
      return undefined
    }
    if (lead && isTrail(c)) return undefined
    lead = c >= 0xd800 && c <= 0xdbff
    if (c < 0x10000) {
      units.push(c)
    } else {
      c -= 0x10000
      units.push(0xd800 + (c >> 10), 0xdc00 + (c & 0x3ff))
    }
    if (units.length >= CHUNK) {
      result += String.fromCharCode(...units)
      units.length = 0
    }
  }
  return units.length === 0 ? result : result + String.fromCharCode(...units)
}

const isContinuation = (b: number): boolean => (b & 0xc0) === 0x80

// -----------------------------------------------------------------------------
// checksum and hash
// -----------------------------------------------------------------------------

// Both from libraries that are pure JavaScript and synchronous, so a read stays one synchronous decode on any
// platform: `crc-32` (SheetJS, the IEEE polynomial 0xEDB88320 of gzip, zip and PNG) and `@noble/hashes` (audited).
// The file format depends on exactly these functions: the tests pin an entry's bytes and a hashed file name.

/**
 * CRC-32 (IEEE 802.3, as in gzip, zip and PNG) of `bytes[start, end)`.
 *
 * @internal
 */
export const crc32 = (bytes: Uint8Array, start = 0, end = bytes.length): number =>
  // `buf` gives a signed 32-bit integer; the header stores the unsigned one.
  CRC32.buf(bytes.subarray(start, end)) >>> 0

/**
 * SHA-256 (FIPS 180-4) of `bytes`: it names the files of long keys, where a collision must be infeasible even for
 * keys chosen to collide.
 *
 * @internal
 */
export const sha256 = (bytes: Uint8Array): Uint8Array => nobleSha256(bytes)

const HEX = "0123456789abcdef"

/** Lower-case hex of `bytes`. @internal */
export const toHex = (bytes: Uint8Array): string => {
  let out = ""
  for (let i = 0; i < bytes.length; i++) out += HEX[bytes[i] >> 4] + HEX[bytes[i] & 15]
  return out
}

// -----------------------------------------------------------------------------
// file names
// -----------------------------------------------------------------------------

/** Keys up to this many WTF-8 bytes are spelled out in their file name; longer ones are hashed. @internal */
export const MAX_INLINE_KEY_BYTES = 100

/**
 * The file name of a key: `k` + the hex of its WTF-8 bytes when they are at most 100 (so at most 201 characters,
 * under the 255 most file systems allow), else `h` + the hex of their SHA-256. Only `[0-9a-fhk]` appear, so no name
 * is `.`, `..`, holds a separator or NUL, is reserved on Windows, or differs from another only by case. Distinct
 * keys have distinct bytes, so inline names never collide, and hashed ones only if SHA-256 does.
 *
 * @internal
 */
export const fileNameOf = (key: string): string => {
  const bytes = encodeString(key)
  return bytes.length <= MAX_INLINE_KEY_BYTES ? `k${toHex(bytes)}` : `h${toHex(sha256(bytes))}`
}

const ENTRY_NAME = /^(?:k(?:[0-9a-f]{2}){0,100}|h[0-9a-f]{64})$/

/** Whether a directory entry is named like a store entry. @internal */
export const isEntryName = (name: string): boolean => ENTRY_NAME.test(name)

/** The prefix of the temporary files a write goes through before its rename. @internal */
export const TEMP_PREFIX = "tmp-"

/** Whether a directory entry is a temporary file of an unfinished write. @internal */
export const isTempName = (name: string): boolean => name.startsWith(TEMP_PREFIX) && name.endsWith(".tmp")

// -----------------------------------------------------------------------------
// the directory lock
// -----------------------------------------------------------------------------

/**
 * The lock file of a directory: named like neither an entry nor a temporary file (so `clear` leaves it), nor like a
 * file a user would keep there. @internal
 */
export const LOCK_NAME = ".fallback-store.lock"

/** The prefix of the file a lock is written to before it is linked as `LOCK_NAME`. @internal */
export const LOCK_TEMP_PREFIX = ".fallback-store.lock-"

/** Who holds a directory: a process, and the store in it (a random id). @internal */
export interface LockHolder {
  readonly pid: number
  readonly instance: string
}

/** @internal */
export const encodeLock = (holder: LockHolder): string => `FBSLOCK1 ${holder.pid} ${holder.instance}\n`

const LOCK_CONTENT = /^FBSLOCK1 (\d+) ([0-9a-f]+)\n$/

/** The holder a lock file names, `undefined` if the content is not a lock. @internal */
export const decodeLock = (text: string): LockHolder | undefined => {
  const match = LOCK_CONTENT.exec(text)
  return match === null ? undefined : { pid: Number(match[1]), instance: match[2] }
}

/**
 * The instances of the stores this process has open or is opening. A lock naming this process's id but none of
 * them was left by an earlier process that had the same id: a container's PID 1, restarted after a SIGKILL. @internal
 */
export const openInstances = new Set<string>()

/** The part of Node's `process` the lock needs; core does not depend on Node's types. @internal */
export interface HostProcess {
  readonly pid: number
  readonly kill: (pid: number, signal: 0) => boolean
}

/** The host's `process` (Node, Bun, Deno), if any. @internal */
export const hostProcess: HostProcess | undefined = (() => {
  const candidate = (globalThis as { readonly process?: Partial<HostProcess> }).process
  return typeof candidate?.pid === "number" && typeof candidate.kill === "function"
    ? candidate as HostProcess
    : undefined
})()

// -----------------------------------------------------------------------------
// entry format
// -----------------------------------------------------------------------------

/** An entry as stored. `expiresAt` is epoch millis, `Infinity` for no expiry. @internal */
export interface Entry {
  readonly key: string
  readonly value: string
  readonly expiresAt: number
  readonly writtenAt: number
}

/**
 * `FBS1 <crc32: 8 hex> ` then the checksummed body: `<expiresAt|-> <writtenAt> <key bytes> <value bytes>\n`,
 * the key, `\n`, the value. The prefix is 14 bytes.
 *
 * @internal
 */
export const MAGIC = "FBS1"
const PREFIX_LENGTH = 14
const MAX_META_LENGTH = 80

const metaOf = (entry: Entry, keyBytes: number, valueBytes: number): string =>
  `${entry.expiresAt === Infinity ? "-" : entry.expiresAt} ${entry.writtenAt} ${keyBytes} ${valueBytes}\n`

/** The size in bytes of `encodeEntry(entry)`, without encoding it. @internal */
export const entryLength = (entry: Entry): number => {
  const keyBytes = byteLength(entry.key)
  const valueBytes = byteLength(entry.value)
  return PREFIX_LENGTH + metaOf(entry, keyBytes, valueBytes).length + keyBytes + 1 + valueBytes
}

const writeAscii = (s: string, out: Uint8Array, offset: number): number => {
  for (let i = 0; i < s.length; i++) out[offset + i] = s.charCodeAt(i)
  return offset + s.length
}

/** The bytes of an entry file. @internal */
export const encodeEntry = (entry: Entry): Uint8Array => {
  const keyBytes = byteLength(entry.key)
  const valueBytes = byteLength(entry.value)
  const meta = metaOf(entry, keyBytes, valueBytes)
  const out = new Uint8Array(PREFIX_LENGTH + meta.length + keyBytes + 1 + valueBytes)
  let offset = writeAscii(meta, out, PREFIX_LENGTH)
  offset = writeString(entry.key, out, offset)
  out[offset++] = 0x0a
  writeString(entry.value, out, offset)
  const crc = crc32(out, PREFIX_LENGTH)
  writeAscii(`${MAGIC} ${crc.toString(16).padStart(8, "0")} `, out, 0)
  return out
}

/** What reading an entry file found. @internal */
export type Decoded =
  | { readonly _tag: "Valid"; readonly entry: Entry }
  | { readonly _tag: "Corrupt"; readonly reason: string }

const corrupt = (reason: string): Decoded => ({ _tag: "Corrupt", reason })

const readAscii = (bytes: Uint8Array, start: number, end: number): string => {
  let s = ""
  for (let i = start; i < end; i++) s += String.fromCharCode(bytes[i])
  return s
}

// Integers as `String(n)` writes them, up to 16 digits (any safe integer), negative too (a clock may say so).
const MILLIS = /^(?:0|-?[1-9][0-9]{0,15})$/
const LENGTH = /^(?:0|[1-9][0-9]{0,15})$/

/**
 * Parses and verifies an entry file: the magic, the header's shape, the lengths against the file's size (a short
 * file is "truncated"), the checksum over everything after it, and the encoding of the key and the value.
 *
 * @internal
 */
export const decodeEntry = (bytes: Uint8Array): Decoded => {
  if (bytes.length < PREFIX_LENGTH) return corrupt(bytes.length === 0 ? "empty file" : "truncated header")
  const prefix = readAscii(bytes, 0, PREFIX_LENGTH)
  if (!/^FBS1 [0-9a-f]{8} $/.test(prefix)) {
    return corrupt(prefix.startsWith("FBS") ? "unknown format version or bad header" : "not an entry (bad magic)")
  }
  let newline = -1
  const limit = Math.min(bytes.length, PREFIX_LENGTH + MAX_META_LENGTH)
  for (let i = PREFIX_LENGTH; i < limit; i++) {
    if (bytes[i] === 0x0a) {
      newline = i
      break
    }
  }
  if (newline === -1) return corrupt(bytes.length < limit ? "truncated header" : "bad header")
  const fields = readAscii(bytes, PREFIX_LENGTH, newline).split(" ")
  if (
    fields.length !== 4 || !(fields[0] === "-" || MILLIS.test(fields[0])) ||
    !MILLIS.test(fields[1]) || !LENGTH.test(fields[2]) || !LENGTH.test(fields[3])
  ) return corrupt("bad header")
  const keyBytes = Number(fields[2])
  const valueBytes = Number(fields[3])
  const keyStart = newline + 1
  const keyEnd = keyStart + keyBytes
  const expected = keyEnd + 1 + valueBytes
  if (bytes.length < expected) return corrupt(`truncated (${bytes.length} of ${expected} bytes)`)
  if (bytes.length > expected) return corrupt(`trailing bytes (${bytes.length} for ${expected})`)
  if (bytes[keyEnd] !== 0x0a) return corrupt("bad key separator")
  if (crc32(bytes, PREFIX_LENGTH) !== parseInt(prefix.slice(5, 13), 16)) return corrupt("checksum mismatch")
  const key = decodeString(bytes, keyStart, keyEnd)
  const value = decodeString(bytes, keyEnd + 1, expected)
  if (key === undefined || value === undefined) return corrupt("invalid encoding")
  return {
    _tag: "Valid",
    entry: { key, value, expiresAt: fields[0] === "-" ? Infinity : Number(fields[0]), writtenAt: Number(fields[1]) }
  }
}

// -----------------------------------------------------------------------------
// index
// -----------------------------------------------------------------------------

/** What the store remembers of an entry. `seq` orders writes and tells a rewritten entry from the old one. @internal */
export interface Meta {
  readonly expiresAt: number
  readonly writtenAt: number
  readonly seq: number
  readonly bytes: number
}

/** Whether an entry is expired at `now`: expiry is inclusive, a 1-second entry is gone at exactly 1 second. @internal */
export const isExpired = (meta: { readonly expiresAt: number }, now: number): boolean => now >= meta.expiresAt

/**
 * The live entries of a store by key, with their total size, and the order they are evicted in.
 *
 * @internal
 */
export class Index {
  readonly entries = new Map<string, Meta>()
  bytes = 0
  private seq = 0
  // The entries in eviction order (`evictsBefore`) as a binary min-heap, with each key's place in it: a capped store
  // evicts on every write once it is full, and a scan of every entry for the victim cost a full store tens of
  // microseconds per write.
  private readonly heap: Array<Slot> = []
  private readonly places = new Map<string, number>()

  nextSeq(): number {
    return ++this.seq
  }

  put(key: string, meta: Meta): void {
    const old = this.entries.get(key)
    if (old !== undefined) this.bytes -= old.bytes
    this.entries.set(key, meta)
    this.bytes += meta.bytes
    const at = this.places.get(key)
    if (at === undefined) {
      this.heap.push({ key, meta })
      this.places.set(key, this.heap.length - 1)
      this.up(this.heap.length - 1)
    } else {
      this.heap[at]!.meta = meta
      this.down(this.up(at))
    }
  }

  delete(key: string): void {
    const old = this.entries.get(key)
    if (old === undefined) return
    this.bytes -= old.bytes
    this.entries.delete(key)
    const at = this.places.get(key)!
    this.places.delete(key)
    const last = this.heap.pop()!
    if (at < this.heap.length) {
      this.heap[at] = last
      this.places.set(last.key, at)
      this.down(this.up(at))
    }
  }

  clear(): void {
    this.entries.clear()
    this.bytes = 0
    this.heap.length = 0
    this.places.clear()
  }

  /**
   * Numbers the entries loaded at open in the order they were written (by `writtenAt`, the only order a restart
   * keeps), so that `seq` orders every write, these and the later ones, whatever the wall clock does meanwhile.
   */
  resequence(): void {
    const loaded = [...this.entries].sort(([, a], [, b]) => a.writtenAt - b.writtenAt || a.seq - b.seq)
    this.seq = 0
    this.clear()
    for (const [key, meta] of loaded) this.put(key, { ...meta, seq: this.nextSeq() })
  }

  live(now: number): Array<string> {
    const keys: Array<string> = []
    for (const [key, meta] of this.entries) if (!isExpired(meta, now)) keys.push(key)
    return keys
  }

  expired(now: number): Array<string> {
    const keys: Array<string> = []
    for (const [key, meta] of this.entries) if (isExpired(meta, now)) keys.push(key)
    return keys
  }

  /**
   * The next entry to evict while the store is over `maxEntries` or `maxBytes`, never `keep`: an expired entry
   * first, then the one closest to expiry (entries without a TTL last), then the least recently written.
   */
  victim(maxEntries: number, maxBytes: number, keep: string | undefined): string | undefined {
    if (this.entries.size <= maxEntries && this.bytes <= maxBytes) return undefined
    const [first, left, right] = this.heap
    if (first === undefined || first.key !== keep) return first?.key
    // `keep` is first: the next is one of its children.
    if (left === undefined) return undefined
    return right !== undefined && evictsBefore(right.meta, left.meta) ? right.key : left.key
  }

  // Moves the slot at `at` towards the root while it evicts before its parent; returns where it ends.
  private up(at: number): number {
    const heap = this.heap
    const slot = heap[at]!
    while (at > 0) {
      const parent = (at - 1) >> 1
      if (!evictsBefore(slot.meta, heap[parent]!.meta)) break
      this.place(heap[parent]!, at)
      at = parent
    }
    this.place(slot, at)
    return at
  }

  // Moves the slot at `at` away from the root while a child evicts before it.
  private down(at: number): void {
    const heap = this.heap
    const slot = heap[at]!
    for (;;) {
      const left = 2 * at + 1
      if (left >= heap.length) break
      const right = left + 1
      const child = right < heap.length && evictsBefore(heap[right]!.meta, heap[left]!.meta) ? right : left
      if (!evictsBefore(heap[child]!.meta, slot.meta)) break
      this.place(heap[child]!, at)
      at = child
    }
    this.place(slot, at)
  }

  private place(slot: Slot, at: number): void {
    this.heap[at] = slot
    this.places.set(slot.key, at)
  }
}

/** A key and its entry's metadata, in the eviction heap. */
interface Slot {
  readonly key: string
  meta: Meta
}

// Eviction order: an expired entry first (`isExpired` is `now >= expiresAt`, so at any time the expired entries are
// exactly those of the smallest `expiresAt`), then the closest to expiry (no TTL is `Infinity`: last), then write
// order, not `writtenAt`: a wall clock stepped back would make the newest entries look oldest.
const evictsBefore = (a: Meta, b: Meta): boolean =>
  a.expiresAt !== b.expiresAt ? a.expiresAt < b.expiresAt : a.seq < b.seq
