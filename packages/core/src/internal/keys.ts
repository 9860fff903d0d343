/**
 * A keyed breaker's circuits: the default circuit held directly, the others in a map in recency order, with the
 * eviction rules of the module docs (idle keys swept as new keys arrive, a cap that spares Closed keys last).
 *
 * @internal
 */
import * as internal from "./circuitBreaker.ts"

/** The key of a breaker's default circuit. @internal */
export const defaultKey = "default"

const ignoreEmit: internal.Emit = () => {}

/** The manual action that puts a fresh cell into `mode`. @internal */
export const actionOf = (mode: internal.Mode): "forceOpen" | "disable" | "metricsOnly" | "reset" =>
  mode === "ForcedOpen"
    ? "forceOpen"
    : mode === "Disabled"
    ? "disable"
    : mode === "MetricsOnly"
    ? "metricsOnly"
    : "reset"

/** @internal */
export class Keys {
  readonly defaultCell: internal.Cell
  /** Insertion order is recency order: a use moves its key to the end, so the least recently used come first. */
  readonly cells = new Map<string, internal.Cell>()
  /** The mode of the breaker as a whole: what a new key starts in. */
  baseMode: internal.Mode = "Live"
  readonly idleMillis: number
  readonly maxKeys: number
  /** A probe running this long no longer decides, nor keeps its key. */
  readonly maxProbeMillis: number
  /** Called for each new key (say, to register its metric); what it returns runs when the key goes. */
  readonly onCreate: ((cell: internal.Cell) => () => void) | undefined
  /** Called when a key is evicted (say, so that a fleet forgets it), not when the breaker closes. */
  readonly onEvict: ((key: string) => void) | undefined
  private readonly removals = new Map<internal.Cell, () => void>()
  /** Where the idle sweep stopped: a live iterator over `cells`, which sees deletions and moves. */
  private cursor: Iterator<internal.Cell> | undefined = undefined
  /**
   * Where the cap's search for a Closed key stopped, a live iterator too: no key before it is a Closed key the cap
   * may take. A key used since has moved behind it (and is looked at again); a key that may have become one (a
   * transition to Closed, a mode change) drops it (`reconsider`), and the next search starts from the oldest.
   */
  private capCursor: Iterator<internal.Cell> | undefined = undefined

  constructor(
    now: number,
    idleMillis: number,
    maxKeys: number,
    maxProbeMillis: number,
    onCreate: ((cell: internal.Cell) => () => void) | undefined,
    onEvict?: ((key: string) => void) | undefined
  ) {
    this.defaultCell = new internal.Cell(defaultKey, now)
    this.idleMillis = idleMillis
    this.maxKeys = maxKeys
    this.maxProbeMillis = maxProbeMillis
    this.onCreate = onCreate
    this.onEvict = onEvict
  }

  /** The circuit of a key for a call or a control: created on first use, and now the most recent. */
  use(key: string, now: number): internal.Cell {
    if (key === defaultKey) return this.defaultCell
    let cell = this.cells.get(key)
    if (cell === undefined) {
      cell = this.create(key, now)
    } else {
      this.cells.delete(key)
    }
    this.cells.set(key, cell)
    return cell
  }

  /** The circuit a read looks at, without creating it: an unknown key reads as a fresh circuit. */
  peek(key: string, now: number): internal.Cell {
    return key === defaultKey ? this.defaultCell : this.cells.get(key) ?? this.fresh(key, now)
  }

  /** Whether the key has a circuit now (the default one always has). */
  holds(key: string): boolean {
    return key === defaultKey || this.cells.has(key)
  }

  /**
   * Whether a key given `state` now would be kept by an idle sweep: under a mode of its own, open with time left, or
   * half-open. A key the breaker does not hold, in any other state, is as good as a fresh one.
   */
  keeps(state: internal.Persisted, now: number): boolean {
    return state.mode !== this.baseMode || state.phase === "HalfOpen" ||
      (state.phase === "Open" && now < state.openUntil)
  }

  /** Every circuit, the default one first. */
  all(): Array<internal.Cell> {
    return [this.defaultCell, ...this.cells.values()]
  }

  /** Drops every key's extras (metrics), when the breaker's scope closes. */
  close(): void {
    this.removals.forEach((remove) => remove())
    this.removals.clear()
  }

  // A cell as a new key gets it: fresh, in the breaker-wide mode (set silently: it is no transition).
  private fresh(key: string, now: number): internal.Cell {
    const cell = new internal.Cell(key, now)
    if (this.baseMode !== "Live") {
      internal.setMode(cell, this.baseMode, actionOf(this.baseMode), now, ignoreEmit)
    }
    return cell
  }

  private create(key: string, now: number): internal.Cell {
    this.sweep(now)
    if (this.cells.size >= this.maxKeys) this.evictForCap(now)
    const cell = this.fresh(key, now)
    if (this.onCreate !== undefined) this.removals.set(cell, this.onCreate(cell))
    return cell
  }

  // Never evicted: a key under a manual control of its own (a fresh key would come back without it), and a key
  // with a probe in flight (its outcome would find no circuit), until the probe has run for maxProbeTime: its outcome
  // is dropped then, and a probe that hangs must not hold its key forever.
  private pinned(cell: internal.Cell, now: number): boolean {
    return cell.mode !== this.baseMode || internal.probing(cell, now, this.maxProbeMillis)
  }

  // Amortised idle sweep: each new key looks at two keys, from the least recently used on, so idle keys drain as
  // fast as new ones arrive. An idle key it keeps (pinned, or open with time left) stays where it is, and the next
  // sweep goes on past it, so the keys behind it still drain; the first key that is not idle ends the pass (those
  // behind it are more recent still), and the next pass starts again from the least recently used.
  private sweep(now: number): void {
    for (let looked = 0; looked < 2; looked++) {
      const cursor = this.cursor ?? (this.cursor = this.cells.values())
      const next = cursor.next()
      if (next.done === true || now - next.value.lastCallAt < this.idleMillis) {
        this.cursor = undefined
        return
      }
      const cell = next.value
      if (!this.pinned(cell, now) && !(cell.phase === "Open" && now < cell.openUntil)) this.evict(cell)
    }
  }

  // At the cap: the least recently used Closed key goes; only when none is left, the least recently used Open or
  // HalfOpen one; when every key is pinned, none (the map grows past the cap rather than lose a decision). Runs only
  // when a key is created at the cap, so the call path never pays for it.
  //
  // The search goes on from where the last one stopped: with thousands of keys open (an outage, new keys arriving),
  // starting from the oldest each time cost tens of microseconds per new key.
  private evictForCap(now: number): void {
    const cursor = this.capCursor ?? (this.capCursor = this.cells.values())
    for (let next = cursor.next(); next.done !== true; next = cursor.next()) {
      const cell = next.value
      if (cell.phase === "Closed" && !this.pinned(cell, now)) return this.evict(cell)
    }
    // Exhausted (a finished iterator sees no new keys): the next search starts from the oldest.
    this.capCursor = undefined
    for (const cell of this.cells.values()) {
      if (!this.pinned(cell, now)) return this.evict(cell)
    }
  }

  /** Some key may have become a Closed key the cap may take, anywhere in the order: the cap's search starts over. */
  reconsider(): void {
    this.capCursor = undefined
  }

  /** Sets the mode new keys start in; keys in it are no longer kept as under a manual control of their own. */
  setBaseMode(mode: internal.Mode): void {
    this.baseMode = mode
    this.capCursor = undefined
  }

  private evict(cell: internal.Cell): void {
    this.cells.delete(cell.key)
    const remove = this.removals.get(cell)
    if (remove !== undefined) {
      remove()
      this.removals.delete(cell)
    }
    if (this.onEvict !== undefined) this.onEvict(cell.key)
  }
}
