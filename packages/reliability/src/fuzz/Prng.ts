/**
 * A small seeded generator (mulberry32): the fuzzer and the crash scenarios draw from it so that a failing run is
 * replayed exactly with the same seed (`RELIABILITY_SEED`), which Effect's `Random` in a live program is not.
 */
export interface Prng {
  /** A float in [0, 1). */
  readonly next: () => number
  /** An integer in [min, max] (both inclusive). */
  readonly int: (min: number, max: number) => number
  readonly pick: <A>(items: ReadonlyArray<A>) => A
  /** True with probability `p`. */
  readonly chance: (p: number) => boolean
}

export const make = (seed: number): Prng => {
  let state = seed >>> 0
  const next = () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  const int = (min: number, max: number) => min + Math.floor(next() * (max - min + 1))
  return { next, int, pick: (items) => items[int(0, items.length - 1)]!, chance: (p) => next() < p }
}

/** The seed of this run: `RELIABILITY_SEED`, or a fixed default so that runs are comparable. */
export const seed = (): number => {
  const given = Number(process.env["RELIABILITY_SEED"])
  return Number.isInteger(given) && given > 0 ? given : 20261206
}
