/**
 * The L1 of a resilient cache: a bounded in-memory map with per-entry expiry, least recently used first out.
 *
 * @internal
 */

/** @internal */
export interface Entry<A> {
  readonly value: A
  readonly expiresAt: number
  /** The `set` that wrote it, counted by `L1.writes`; 0 for a value a read filled. */
  readonly setBy: number
}

/**
 * A `Map` keeps insertion order, so re-inserting a key on every hit makes the first key the least recently used one:
 * eviction is O(1) and needs no linked list.
 *
 * @internal
 */
export class L1<A> {
  readonly entries = new Map<string, Entry<A>>()
  /**
   * The backend reads in flight, by key: a `set` or `delete` of the key moves its `version` on, so that a read it
   * overtook keeps nothing (what it read is the value the write replaced or removed). Only keys being read are kept.
   */
  readonly reads = new Map<string, Reads>()
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

  /** The `set`s so far: an entry written by one of them after a given count is newer than what came before. */
  writes = 0

  /** A write of the key: the reads in flight of it keep nothing. */
  set(key: string, value: A, now: number): void {
    this.overtake(key)
    this.put(key, value, now, ++this.writes)
  }

  delete(key: string): boolean {
    this.overtake(key)
    return this.entries.delete(key)
  }

  /** `delete`, but an entry a `set` wrote after `since` (a count of `writes`) is the newer write and stays. */
  deleteUnlessSetSince(key: string, since: number): void {
    this.overtake(key)
    const entry = this.entries.get(key)
    if (entry !== undefined && entry.setBy > since) return
    this.entries.delete(key)
  }

  /** A backend read of `key` starts: `fill` with what it read once it ends, `settle` whatever its end. */
  startRead(key: string): Reads {
    let reads = this.reads.get(key)
    if (reads === undefined) {
      reads = new Reads()
      this.reads.set(key, reads)
    }
    reads.count++
    return reads
  }

  /** A read's value, kept unless a write of the key came since `version` (read when the read started). */
  fill(key: string, value: A, now: number, reads: Reads, version: number): void {
    if (reads.version === version) this.put(key, value, now, 0)
  }

  /** A read ended, however: its key is forgotten once no read of it is in flight. */
  settle(key: string, reads: Reads): void {
    if (--reads.count === 0 && this.reads.get(key) === reads) this.reads.delete(key)
  }

  private overtake(key: string): void {
    const reads = this.reads.get(key)
    if (reads !== undefined) reads.version++
  }

  private put(key: string, value: A, now: number, setBy: number): void {
    this.entries.delete(key)
    this.entries.set(key, { value, expiresAt: now + this.ttlMillis, setBy })
    while (this.entries.size > this.maxEntries) {
      this.entries.delete(this.entries.keys().next().value!)
    }
  }

  /** Live entries; expired ones still held count until they are read or evicted. */
  size(now: number): number {
    let live = 0
    for (const entry of this.entries.values()) if (now < entry.expiresAt) live++
    return live
  }
}

/** A key's backend reads in flight (`count`), and the writes of it so far (`version`). @internal */
export class Reads {
  count = 0
  version = 0
}
