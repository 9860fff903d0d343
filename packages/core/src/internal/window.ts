/**
 * Sliding windows that count calls, failures and slow calls; a failure-rate policy reads the failures, a slow-call
 * policy the slow calls, and a snapshot all three. Both are O(1) per call and allocate nothing after construction.
 *
 * @internal
 */

/** @internal */
export interface Window {
  /** Calls currently inside the window. */
  readonly calls: number
  /** Failures currently inside the window. */
  readonly failures: number
  /** Slow calls currently inside the window. */
  readonly slow: number
  readonly record: (failed: boolean, slow: boolean, now: number) => void
  /** Drops what has slid out of the window by `now` (a no-op for count windows). */
  readonly advance: (now: number) => void
  readonly clear: (now: number) => void
}

/**
 * The last `size` recorded calls, as a ring of bytes: bit 0 a failure, bit 1 a slow call.
 *
 * @internal
 */
export class CountWindow implements Window {
  calls = 0
  failures = 0
  slow = 0
  private readonly ring: Uint8Array
  private cursor = 0

  constructor(size: number) {
    this.ring = new Uint8Array(size)
  }

  record(failed: boolean, slow: boolean, _now: number): void {
    const ring = this.ring
    if (this.calls === ring.length) {
      const old = ring[this.cursor]
      this.failures -= old & 1
      this.slow -= old >> 1
    } else {
      this.calls++
    }
    const bits = (failed ? 1 : 0) | (slow ? 2 : 0)
    ring[this.cursor] = bits
    this.failures += bits & 1
    this.slow += bits >> 1
    this.cursor = this.cursor + 1 === ring.length ? 0 : this.cursor + 1
  }

  advance(_now: number): void {}

  clear(_now: number): void {
    this.ring.fill(0)
    this.calls = 0
    this.failures = 0
    this.slow = 0
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
  failures = 0
  slow = 0
  // [calls, failures, slow calls] per bucket, interleaved, in one allocation.
  private readonly counts: Int32Array
  private readonly buckets: number
  private readonly bucketMillis: number
  private head: number

  constructor(buckets: number, bucketMillis: number, now: number) {
    this.buckets = buckets
    this.bucketMillis = bucketMillis
    this.counts = new Int32Array(buckets * 3)
    this.head = Math.floor(now / bucketMillis)
  }

  /** Counts a call; returns its bucket, for `forget`. */
  record(failed: boolean, slow: boolean, now: number): number {
    this.advance(now)
    const slot = (this.head % this.buckets) * 3
    this.counts[slot]++
    this.calls++
    if (failed) {
      this.counts[slot + 1]++
      this.failures++
    }
    if (slow) {
      this.counts[slot + 2]++
      this.slow++
    }
    return this.head
  }

  /** Takes back a call `record` counted in `bucket`, unless the window has rotated past it. */
  forget(bucket: number, failed: boolean, slow: boolean, now: number): void {
    this.advance(now)
    if (this.head - bucket >= this.buckets) return
    const slot = (bucket % this.buckets) * 3
    this.counts[slot]--
    this.calls--
    if (failed) {
      this.counts[slot + 1]--
      this.failures--
    }
    if (slow) {
      this.counts[slot + 2]--
      this.slow--
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
      this.failures = 0
      this.slow = 0
    } else {
      for (let i = 1; i <= gap; i++) {
        const slot = ((this.head + i) % this.buckets) * 3
        this.calls -= this.counts[slot]
        this.failures -= this.counts[slot + 1]
        this.slow -= this.counts[slot + 2]
        this.counts[slot] = 0
        this.counts[slot + 1] = 0
        this.counts[slot + 2] = 0
      }
    }
    this.head = epoch
  }

  clear(now: number): void {
    this.counts.fill(0)
    this.calls = 0
    this.failures = 0
    this.slow = 0
    this.head = Math.floor(now / this.bucketMillis)
  }
}
