/**
 * The pure parts of alerting: which status changes are alerts and how severe, the deduplication books, and
 * maintenance windows. No effects here: everything takes the time as an argument.
 *
 * @internal
 */
import type { Status } from "../HealthMonitor.ts"

/** @internal */
export type Severity = "critical" | "warning" | "info"

/**
 * The severity of a change, or `null` when the change is no alert: the first good check (`Unknown` to
 * `Healthy`) says nothing was ever wrong.
 *
 * @internal
 */
export const severityOf = (from: Status, to: Status): Severity | null => {
  switch (to) {
    case "Unhealthy":
      return "critical"
    case "Degraded":
      return "warning"
    case "Healthy":
      return from === "Unknown" ? null : "info"
    case "Unknown":
      // Losing sight of a check (removed, or reset) is worth knowing, but nothing is known to be broken.
      return from === "Unknown" ? null : "info"
  }
}

/** What makes two alerts the same. @internal */
export interface Identity {
  readonly service: string
  readonly from: Status
  readonly to: Status
  readonly error: string | null
}

/** @internal */
export const keyOf = (identity: Identity): string =>
  // The service's length says where it ends, statuses hold no "|", and the error is the rest ("!" when null).
  `${identity.service.length}:${identity.service}|${identity.from}|${identity.to}|${
    identity.error === null ? "!" : `:${identity.error}`
  }`

/**
 * One kind of alert in the deduplication books: when its window opened (the last delivery, or -1 when none is
 * open) and how many occurrences no sink has heard of yet.
 *
 * @internal
 */
export interface Entry extends Identity {
  openedAt: number
  unreported: number
}

/**
 * Deduplication books. An occurrence is either delivered (in an alert's `count`) or folded into the window of
 * the last delivery of its kind, and then reported by the next delivery of that kind: every occurrence is
 * reported once.
 *
 * @internal
 */
export class Dedup {
  readonly windowMillis: number
  readonly maxEntries: number
  // Insertion order is delivery order, so the first entries are the stalest.
  readonly entries = new Map<string, Entry>()

  constructor(windowMillis: number, maxEntries: number) {
    this.windowMillis = windowMillis
    this.maxEntries = maxEntries
  }

  /** The count to send for an occurrence at `at`, or 0 when it folds into an open window. */
  admit(key: string, at: number): number {
    const entry = this.entries.get(key)
    if (entry === undefined) return 1
    if (entry.openedAt >= 0 && at - entry.openedAt < this.windowMillis) {
      entry.unreported++
      return 0
    }
    return 1 + entry.unreported
  }

  /** A delivery at `at` opens a window; everything it reported is off the books. */
  delivered(key: string, identity: Identity, at: number): void {
    this.put(key, { ...identity, openedAt: at, unreported: 0 })
  }

  /** A failed delivery opens no window; its `count` occurrences wait for the next delivery of their kind. */
  failed(key: string, identity: Identity, count: number): void {
    this.put(key, { ...identity, openedAt: -1, unreported: count })
  }

  /** Kinds with occurrences not reported yet. */
  pending(): ReadonlyArray<Entry> {
    const pending: Array<Entry> = []
    for (const entry of this.entries.values()) if (entry.unreported > 0) pending.push(entry)
    return pending
  }

  private put(key: string, entry: Entry): void {
    this.entries.delete(key)
    this.entries.set(key, entry)
    if (this.entries.size <= this.maxEntries) return
    // Over the bound, the stalest kind whose occurrences are all reported goes: one with folded occurrences still to
    // report would lose them. Only when every kind has some does the stalest go anyway (and its occurrences with it).
    for (const [stale, held] of this.entries) {
      if (held.unreported === 0) {
        this.entries.delete(stale)
        return
      }
    }
    this.entries.delete(this.entries.keys().next().value!)
  }
}

/** A maintenance window, in epoch milliseconds: `[from, until)`. @internal */
export interface Window {
  readonly service: string
  readonly from: number
  readonly until: number
}

/** @internal */
export const suppresses = (windows: ReadonlyArray<Window>, service: string, at: number): boolean =>
  windows.some((window) => window.service === service && window.from <= at && at < window.until)

/** A bounded list that keeps the last `capacity` items. @internal */
export class Ring<A> {
  readonly capacity: number
  private items: Array<A> = []
  private start = 0

  constructor(capacity: number) {
    this.capacity = capacity
  }

  push(item: A): void {
    if (this.items.length < this.capacity) {
      this.items.push(item)
      return
    }
    this.items[this.start] = item
    this.start = (this.start + 1) % this.capacity
  }

  toArray(): ReadonlyArray<A> {
    return this.start === 0 ? this.items.slice() : [...this.items.slice(this.start), ...this.items.slice(0, this.start)]
  }
}
