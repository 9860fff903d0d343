import { assert, describe, it } from "@effect/vitest"
import * as internal from "../src/internal/fallbackStore.ts"

// What `Index.victim` answered before it kept a heap: a scan of every entry, expired ones first (at `now`), then the
// closest to expiry, then the least recently written; never `keep`.
const scanned = (index: internal.Index, now: number, keep: string | undefined): string | undefined => {
  let best: string | undefined
  let bestMeta: internal.Meta | undefined
  for (const [key, meta] of index.entries) {
    if (key === keep) continue
    const before = bestMeta === undefined ||
      (internal.isExpired(meta, now) !== internal.isExpired(bestMeta, now)
        ? internal.isExpired(meta, now)
        : meta.expiresAt !== bestMeta.expiresAt
        ? meta.expiresAt < bestMeta.expiresAt
        : meta.seq < bestMeta.seq)
    if (before) {
      best = key
      bestMeta = meta
    }
  }
  return best
}

// A small deterministic generator (mulberry32): the same operations on every run.
const generator = (seed: number) => () => {
  seed = (seed + 0x6d2b79f5) | 0
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296
}

describe("FallbackStore's index", () => {
  it("evicts in the order a scan of every entry would, through writes, rewrites, removes and a restart", () => {
    const random = generator(7)
    const index = new internal.Index()
    const keys = Array.from({ length: 60 }, (_, i) => `k${i}`)
    // Few distinct expiries, so that ties (broken by write order) are common; no TTL is `Infinity`.
    const expiries = [100, 200, 300, Infinity]
    let checked = 0
    for (let step = 0; step < 20_000; step++) {
      const key = keys[Math.floor(random() * keys.length)]!
      const roll = random()
      if (roll < 0.6) {
        const expiresAt = expiries[Math.floor(random() * expiries.length)]!
        index.put(key, { expiresAt, writtenAt: step, seq: index.nextSeq(), bytes: 1 + Math.floor(random() * 10) })
      } else if (roll < 0.9) {
        index.delete(key)
      } else if (roll < 0.905) {
        index.resequence()
      } else {
        const now = Math.floor(random() * 400)
        const keep = random() < 0.5 ? undefined : keys[Math.floor(random() * keys.length)]
        assert.strictEqual(index.victim(0, 0, keep), scanned(index, now, keep), `step ${step}`)
        checked++
      }
    }
    assert.isAbove(checked, 1_000)
    // Under its caps there is nothing to evict; `bytes` follows every write and remove.
    assert.isUndefined(index.victim(index.entries.size, index.bytes, undefined))
    let bytes = 0
    for (const meta of index.entries.values()) bytes += meta.bytes
    assert.strictEqual(index.bytes, bytes)
  })
})
