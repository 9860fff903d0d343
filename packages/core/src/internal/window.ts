/**
 * Sliding windows that count calls and "hits" (failures for a failure-rate policy, slow calls for a slow-call
 * policy). Both are O(1) per call and allocate nothing after construction.
 *
 * @internal
 */

/** @internal */
export interface Window {
  /** Calls currently inside the window. */
  readonly calls: number
  /** Hits currently inside the window. */
  readonly hits: number
  readonly record: (hit: boolean, now: number) => void
  /** Drops what has slid out of the window by `now` (a no-op for count windows). */
  readonly advance: (now: number) => void
  readonly clear: (now: number) => void
}

/**
 * The last `size` recorded calls, as a ring of 0/1 bytes.
 *
 * @internal
 */
export class CountWindow implements Window {
  calls = 0
  hits = 0
  private readonly ring: Uint8Array
  private cursor = 0

  constructor(size: number) {
    this.ring = new Uint8Array(size)
  }

  record(hit: boolean, _now: number): void {
    const ring = this.ring
    if (this.calls === ring.length) {
      this.hits -= ring[this.cursor]
    } else {
      this.calls++
    }
    const bit = hit ? 1 : 0
    ring[this.cursor] = bit
    this.hits += bit
    this.cursor = this.cursor + 1 === ring.length ? 0 : this.cursor + 1
  }

  advance(_now: number): void {}

  clear(_now: number): void {
    this.ring.fill(0)
    this.calls = 0
    this.hits = 0
    this.cursor = 0
  }
}

/**
 * A rolling time window of `buckets` buckets of `bucketMillis` each. Buckets are aligned to multiples of the
 * bucket length (bucket `n` covers `[n * bucketMillis, (n + 1) * bucketMillis)`), so two breakers with the same
 * window agree on where a call falls. Buckets rotate lazily when the window is touched.
 *
 * @internal
 */
export class TimeWindow implements Window {
  calls = 0
  hits = 0
  // [calls, hits] per bucket, interleaved, in one allocation.
  private readonly counts: Int32Array
  private readonly buckets: number
  private readonly bucketMillis: number
  private head: number

  constructor(buckets: number, bucketMillis: number, now: number) {
    this.buckets = buckets
    this.bucketMillis = bucketMillis
    this.counts = new Int32Array(buckets * 2)
    this.head = Math.floor(now / bucketMillis)
  }

  record(hit: boolean, now: number): void {
    this.advance(now)
    const slot = (this.head % this.buckets) * 2
    this.counts[slot]++
    this.calls++
    if (hit) {
      this.counts[slot + 1]++
      this.hits++
    }
  }

  advance(now: number): void {
    const epoch = Math.floor(now / this.bucketMillis)
    const gap = epoch - this.head
    // A clock that steps back (a live clock corrected by NTP) keeps counting into the newest bucket.
    if (gap <= 0) return
    if (gap >= this.buckets) {
      this.counts.fill(0)
      this.calls = 0
      this.hits = 0
    } else {
      for (let i = 1; i <= gap; i++) {
        const slot = ((this.head + i) % this.buckets) * 2
        this.calls -= this.counts[slot]
        this.hits -= this.counts[slot + 1]
        this.counts[slot] = 0
        this.counts[slot + 1] = 0
      }
    }
    this.head = epoch
  }

  clear(now: number): void {
    this.counts.fill(0)
    this.calls = 0
    this.hits = 0
    this.head = Math.floor(now / this.bucketMillis)
  }
}
