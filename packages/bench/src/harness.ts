/**
 * The harness: what a benchmark case is, how one is timed, and how the cases are interleaved.
 *
 * A case is either timed (its setup returns a loop the harness times) or a memory case (it measures retained heap
 * itself, with forced GC). Every case runs once per round (memory cases only in the first few rounds), rounds run
 * the cases in a freshly shuffled order, and the figure reported is the median across rounds. Interleaving
 * spreads drift (thermal, GC pressure, a neighbour on the machine) over all cases alike, so ratios between cases
 * measured in the same run stay meaningful even when absolute numbers move.
 *
 * To add a case, export it from a group module and list that group in `main.ts`.
 */
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Scope from "effect/Scope"

/** A subject made ready for timing: `run(n)` makes `n` calls, and the harness times the whole of it. */
export interface Timed {
  readonly run: (iterations: number) => Promise<void>
  /** Checked after each sample, outside the timing: throws when the sample did not measure what it claims. */
  readonly verify?: ((iterations: number) => Promise<void>) | undefined
  readonly teardown?: (() => Promise<void>) | undefined
}

/** A case timed in ns per call. */
export interface TimedCase {
  readonly kind: "time"
  readonly name: string
  readonly description: string
  /** Builds the subject once; the same subject serves warm-up and every round. */
  readonly setup: () => Promise<Timed>
}

/** A case measuring retained heap per key: each round builds a fresh subject and returns bytes per key. */
export interface MemoryCase {
  readonly kind: "memory"
  readonly name: string
  readonly description: string
  readonly measure: (keys: ReadonlyArray<string>) => Promise<number>
}

export type Case = TimedCase | MemoryCase

export interface Settings {
  readonly rounds: number
  /** Target duration of one timing sample, in milliseconds. */
  readonly sampleMillis: number
  /** How long each timed case runs untimed after calibration, before the rounds, in milliseconds. */
  readonly warmupMillis: number
  /** Keys touched by a memory case. */
  readonly keys: number
  /** Rounds that include the memory cases (the first ones): their figures barely vary, and each costs seconds. */
  readonly memoryRounds: number
  /** Seed of the per-round shuffle, so that a run's order can be replayed. */
  readonly seed: number
}

export interface TimedResult {
  readonly kind: "time"
  readonly name: string
  readonly description: string
  readonly iterations: number
  /** ns per call, one per round, in round order. */
  readonly samples: ReadonlyArray<number>
}

export interface MemoryResult {
  readonly kind: "memory"
  readonly name: string
  readonly description: string
  readonly keys: number
  /** Bytes per key, one per round, in round order. */
  readonly samples: ReadonlyArray<number>
}

export type Result = TimedResult | MemoryResult

// -----------------------------------------------------------------------------
// statistics
// -----------------------------------------------------------------------------

/** The q-quantile with linear interpolation; q = 0.5 is the median. */
export const quantile = (values: ReadonlyArray<number>, q: number): number => {
  const sorted = [...values].sort((a, b) => a - b)
  if (sorted.length === 0) return NaN
  const position = (sorted.length - 1) * q
  const below = Math.floor(position)
  const above = Math.ceil(position)
  return sorted[below] + (sorted[above] - sorted[below]) * (position - below)
}

export const median = (values: ReadonlyArray<number>): number => quantile(values, 0.5)

// A small seeded PRNG (mulberry32): the shuffle only needs to be unbiased and replayable.
const random = (seed: number) => {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

const shuffle = <A>(items: ReadonlyArray<A>, next: () => number): Array<A> => {
  const out = [...items]
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(next() * (i + 1))
    const swap = out[i]
    out[i] = out[j]
    out[j] = swap
  }
  return out
}

// -----------------------------------------------------------------------------
// helpers for cases
// -----------------------------------------------------------------------------

/** Milliseconds taken by `run(iterations)`, wall clock around the whole loop. */
export const time = async (run: (iterations: number) => Promise<void>, iterations: number): Promise<number> => {
  const start = performance.now()
  await run(iterations)
  return performance.now() - start
}

/** Heap in use after full collections. Needs `node --expose-gc`. */
export const settledHeap = (): number => {
  const gc = globalThis.gc
  if (gc === undefined) throw new Error("Memory cases need global.gc: run node with --expose-gc (pnpm bench does)")
  // Twice: the first collection may leave garbage that only a second one finds (weak references, finalizers).
  gc()
  gc()
  return process.memoryUsage().heapUsed
}

/**
 * Builds a scoped subject (a breaker, say) in a scope that stays open until `close`, so that one subject can be
 * driven by many separate `Effect.runPromise` calls.
 */
export const acquire = async <A, E>(
  make: Effect.Effect<A, E, Scope.Scope>
): Promise<{ readonly value: A; readonly close: () => Promise<void> }> => {
  const scope = Scope.makeUnsafe()
  const value = await Effect.runPromise(Scope.provide(make, scope))
  return { value, close: () => Effect.runPromise(Scope.close(scope, Exit.void)) }
}

export const check = (condition: boolean, message: string): void => {
  if (!condition) throw new Error(`Benchmark check failed: ${message}`)
}

// -----------------------------------------------------------------------------
// running
// -----------------------------------------------------------------------------

/** Iterations such that one sample takes about `targetMillis`, found by growing a probe run. */
const calibrate = async (run: (iterations: number) => Promise<void>, targetMillis: number): Promise<number> => {
  let iterations = 16
  for (;;) {
    const millis = await time(run, iterations)
    // Stop growing once a probe takes a quarter of the target: the estimate is good enough to scale from.
    if (millis >= targetMillis / 4 || iterations >= 1 << 28) {
      return Math.max(1, Math.round(iterations * targetMillis / Math.max(millis, 0.001)))
    }
    iterations *= millis <= 0.05 ? 16 : 4
  }
}

interface Prepared {
  readonly case: Case
  readonly timed?: Timed
  readonly iterations: number
  readonly samples: Array<number>
}

/**
 * Runs every case: sets the timed cases up, calibrates and warms them, then runs `rounds` rounds, each a shuffled
 * pass over all cases. `log` receives progress lines.
 */
export const runAll = async (
  cases: ReadonlyArray<Case>,
  settings: Settings,
  log: (line: string) => void
): Promise<Array<Result>> => {
  const keys = Array.from({ length: settings.keys }, (_, i) => `k${i}`)
  const prepared: Array<Prepared> = []
  for (const c of cases) {
    if (c.kind === "memory") {
      // One untimed pass warms the code paths the measurement goes through.
      await c.measure(keys)
      prepared.push({ case: c, iterations: settings.keys, samples: [] })
      log(`  warmed ${c.name}`)
      continue
    }
    const timed = await c.setup()
    let iterations = await calibrate(timed.run, settings.sampleMillis)
    // Warm up for a fixed time rather than a fixed count: the JIT tiers up after enough calls, and a slow cold
    // start would otherwise leave the sample size too small.
    const warmUntil = performance.now() + settings.warmupMillis
    do {
      const millis = await time(timed.run, iterations)
      await timed.verify?.(iterations)
      // Re-aim at the target from the warmed-up speed.
      iterations = Math.max(1, Math.round(iterations * settings.sampleMillis / Math.max(millis, 0.001)))
    } while (performance.now() < warmUntil)
    prepared.push({ case: c, timed, iterations, samples: [] })
    log(`  warmed ${c.name}: ${iterations} calls per sample`)
  }

  const next = random(settings.seed)
  for (let round = 0; round < settings.rounds; round++) {
    for (const p of shuffle(prepared, next)) {
      if (p.case.kind === "memory") {
        if (round < settings.memoryRounds) p.samples.push(await p.case.measure(keys))
        continue
      }
      const timed = p.timed!
      const millis = await time(timed.run, p.iterations)
      await timed.verify?.(p.iterations)
      p.samples.push(millis * 1e6 / p.iterations)
    }
    log(`  round ${round + 1}/${settings.rounds} done`)
  }

  for (const p of prepared) await p.timed?.teardown?.()

  return prepared.map((p): Result =>
    p.case.kind === "memory"
      ? {
        kind: "memory",
        name: p.case.name,
        description: p.case.description,
        keys: settings.keys,
        samples: p.samples
      }
      : {
        kind: "time",
        name: p.case.name,
        description: p.case.description,
        iterations: p.iterations,
        samples: p.samples
      }
  )
}
