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

let crcTable: Uint32Array | undefined

const makeCrcTable = (): Uint32Array => {
  const table = new Uint32Array(256)
  for (let n = 0; n < 256; n++) {
    let c = n
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1
    table[n] = c >>> 0
  }
  return table
}

/**
 * CRC-32 (IEEE 802.3, as in gzip, zip and PNG) of `bytes[start, end)`.
 *
 * @internal
 */
export const crc32 = (bytes: Uint8Array, start = 0, end = bytes.length): number => {
  const table = crcTable ??= makeCrcTable()
  let crc = 0xffffffff
  for (let i = start; i < end; i++) crc = table[(crc ^ bytes[i]) & 0xff] ^ (crc >>> 8)
  return (crc ^ 0xffffffff) >>> 0
}

const K = new Uint32Array([
  0x428a2f98,
  0x71374491,
  0xb5c0fbcf,
  0xe9b5dba5,
  0x3956c25b,
  0x59f111f1,
  0x923f82a4,
  0xab1c5ed5,
  0xd807aa98,
  0x12835b01,
  0x243185be,
  0x550c7dc3,
  0x72be5d74,
  0x80deb1fe,
  0x9bdc06a7,
  0xc19bf174,
  0xe49b69c1,
  0xefbe4786,
  0x0fc19dc6,
  0x240ca1cc,
  0x2de92c6f,
  0x4a7484aa,
  0x5cb0a9dc,
  0x76f988da,
  0x983e5152,
  0xa831c66d,
  0xb00327c8,
  0xbf597fc7,
  0xc6e00bf3,
  0xd5a79147,
  0x06ca6351,
  0x14292967,
  0x27b70a85,
  0x2e1b2138,
  0x4d2c6dfc,
  0x53380d13,
  0x650a7354,
  0x766a0abb,
  0x81c2c92e,
  0x92722c85,
  0xa2bfe8a1,
  0xa81a664b,
  0xc24b8b70,
  0xc76c51a3,
  0xd192e819,
  0xd6990624,
  0xf40e3585,
  0x106aa070,
  0x19a4c116,
  0x1e376c08,
  0x2748774c,
  0x34b0bcb5,
  0x391c0cb3,
  0x4ed8aa4a,
  0x5b9cca4f,
  0x682e6ff3,
  0x748f82ee,
  0x78a5636f,
  0x84c87814,
  0x8cc70208,
  0x90befffa,
  0xa4506ceb,
  0xbef9a3f7,
  0xc67178f2
])

const rotr = (x: number, n: number): number => (x >>> n) | (x << (32 - n))

/**
 * SHA-256 (FIPS 180-4) of `bytes`, synchronous and platform-free: it names the files of long keys, where a
 * collision must be infeasible even for keys chosen to collide.
 *
 * @internal
 */
export const sha256 = (bytes: Uint8Array): Uint8Array => {
  const bitLength = bytes.length * 8
  const padded = new Uint8Array(((bytes.length + 9 + 63) >> 6) << 6)
  padded.set(bytes)
  padded[bytes.length] = 0x80
  const view = new DataView(padded.buffer)
  // The length in bits, big-endian, in the last 8 bytes (split: bit operators are 32-bit).
  view.setUint32(padded.length - 8, Math.floor(bitLength / 0x100000000))
  view.setUint32(padded.length - 4, bitLength >>> 0)
  const h = new Uint32Array([
    0x6a09e667,
    0xbb67ae85,
    0x3c6ef372,
    0xa54ff53a,
    0x510e527f,
    0x9b05688c,
    0x1f83d9ab,
    0x5be0cd19
  ])
  const w = new Uint32Array(64)
  for (let offset = 0; offset < padded.length; offset += 64) {
    for (let t = 0; t < 16; t++) w[t] = view.getUint32(offset + t * 4)
    for (let t = 16; t < 64; t++) {
      const s0 = rotr(w[t - 15], 7) ^ rotr(w[t - 15], 18) ^ (w[t - 15] >>> 3)
      const s1 = rotr(w[t - 2], 17) ^ rotr(w[t - 2], 19) ^ (w[t - 2] >>> 10)
      w[t] = (w[t - 16] + s0 + w[t - 7] + s1) >>> 0
    }
    let a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], k = h[7]
    for (let t = 0; t < 64; t++) {
      const t1 = (k + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + K[t] + w[t]) >>> 0
      const t2 = ((rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c))) >>> 0
      k = g
      g = f
      f = e
      e = (d + t1) >>> 0
      d = c
      c = b
      b = a
      a = (t1 + t2) >>> 0
    }
    h[0] += a
    h[1] += b
    h[2] += c
    h[3] += d
    h[4] += e
    h[5] += f
    h[6] += g
    h[7] += k
  }
  const out = new Uint8Array(32)
  const outView = new DataView(out.buffer)
  for (let i = 0; i < 8; i++) outView.setUint32(i * 4, h[i])
  return out
}

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
 * The live entries of a store by key, with their total size.
 *
 * @internal
 */
export class Index {
  readonly entries = new Map<string, Meta>()
  bytes = 0
  private seq = 0

  nextSeq(): number {
    return ++this.seq
  }

  put(key: string, meta: Meta): void {
    const old = this.entries.get(key)
    if (old !== undefined) this.bytes -= old.bytes
    this.entries.set(key, meta)
    this.bytes += meta.bytes
  }

  delete(key: string): void {
    const old = this.entries.get(key)
    if (old === undefined) return
    this.bytes -= old.bytes
    this.entries.delete(key)
  }

  clear(): void {
    this.entries.clear()
    this.bytes = 0
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
  victim(now: number, maxEntries: number, maxBytes: number, keep: string | undefined): string | undefined {
    if (this.entries.size <= maxEntries && this.bytes <= maxBytes) return undefined
    let best: string | undefined
    let bestMeta: Meta | undefined
    for (const [key, meta] of this.entries) {
      if (key === keep) continue
      if (bestMeta === undefined || evictsBefore(meta, bestMeta, now)) {
        best = key
        bestMeta = meta
      }
    }
    return best
  }
}

const evictsBefore = (a: Meta, b: Meta, now: number): boolean => {
  const expiredA = isExpired(a, now)
  if (expiredA !== isExpired(b, now)) return expiredA
  if (a.expiresAt !== b.expiresAt) return a.expiresAt < b.expiresAt
  if (a.writtenAt !== b.writtenAt) return a.writtenAt < b.writtenAt
  return a.seq < b.seq
}
