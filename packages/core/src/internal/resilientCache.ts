/**
 * The L1 of a resilient cache: a bounded in-memory map with per-entry expiry, least recently used first out.
 *
 * @internal
 */

/** @internal */
export interface Entry<A> {
  readonly value: A
  readonly expiresAt: number
}

/**
 * A `Map` keeps insertion order, so re-inserting a key on every hit makes the first key the least recently used one:
 * eviction is O(1) and needs no linked list.
 *
 * @internal
 */
export class L1<A> {
  readonly entries = new Map<string, Entry<A>>()
  readonly maxEntries: number
  readonly ttlMillis: number
  constructor(maxEntries: number, ttlMillis: number) {
    this.maxEntries = maxEntries
    this.ttlMillis = ttlMillis
  }

  get(key: string, now: number): A | undefined {
    const entry = this.entries.get(key)
    if (entry === undefined) return undefined
    this.entries.delete(key)
    if (now >= entry.expiresAt) return undefined
    this.entries.set(key, entry)
    return entry.value
  }

  set(key: string, value: A, now: number): void {
    this.entries.delete(key)
    this.entries.set(key, { value, expiresAt: now + this.ttlMillis })
    while (this.entries.size > this.maxEntries) {
      this.entries.delete(this.entries.keys().next().value!)
    }
  }

  delete(key: string): boolean {
    return this.entries.delete(key)
  }

  /** Live entries; expired ones still held count until they are read or evicted. */
  size(now: number): number {
    let live = 0
    for (const entry of this.entries.values()) if (now < entry.expiresAt) live++
    return live
  }
}

/** A key's reads in flight (`count`), and the writes (`set`, `invalidate`) that started meanwhile (`version`). */
export class Reads {
  count = 0
  version = 0
}
