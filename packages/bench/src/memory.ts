/**
 * Retained heap per key of a keyed breaker: one breaker, 100k keys touched once each with a successful call.
 *
 * Each measurement builds a fresh breaker, takes the heap in use after forced GC, touches every key, and takes
 * it again: (after − before) / keys. The key strings (`k0`, `k1`, …) are made once, by the harness, before any
 * measurement, and are shared by both cases, so neither is charged for them: what is left is the breaker's own
 * per-key state (its map entry and whatever it keeps per key).
 *
 * - `ours:keyed-memory`: `breaker.protectKey(key)(noop)`, with room for every key (`maxKeys: 200_000`).
 * - `effect:keyed-memory`: Effect's breaker on its in-memory store, `noop.pipe(breaker.execute({ key }))`.
 */
import { CircuitBreaker } from "@effect-resilience/core"
import * as Effect from "effect/Effect"
import { noop } from "./baselines.ts"
import { makeEffectBreaker } from "./effect.ts"
import { acquire, check, type MemoryCase, settledHeap } from "./harness.ts"

export const memory: ReadonlyArray<MemoryCase> = [
  {
    kind: "memory",
    name: "ours:keyed-memory",
    description: "our keyed breaker: heap per key after `protectKey(key)(noop)` on 100k keys",
    measure: async (keys) => {
      const { close, value: breaker } = await acquire(CircuitBreaker.make({
        name: "bench-keys",
        trip: CircuitBreaker.consecutive(5),
        openDuration: "1 hour",
        keys: { maxKeys: 200_000, idleTimeToLive: "1 hour" }
      }))
      const before = settledHeap()
      await Effect.runPromise(Effect.gen(function*() {
        for (let i = 0; i < keys.length; i++) yield* breaker.protectKey(keys[i])(noop)
      }))
      const after = settledHeap()
      // Every key must still be held: an evicted first key would come back with no calls recorded.
      for (const key of [keys[0], keys[keys.length - 1]]) {
        const snapshot = await Effect.runPromise(breaker.snapshotKey(key))
        check(snapshot.totalCalls === 1, `key ${key} was not retained`)
      }
      await close()
      return (after - before) / keys.length
    }
  },
  {
    kind: "memory",
    name: "effect:keyed-memory",
    description: "Effect's breaker, in-memory store: heap per key after `execute({ key })` on 100k keys",
    measure: async (keys) => {
      const { close, value: breaker } = await makeEffectBreaker()
      const before = settledHeap()
      await Effect.runPromise(Effect.gen(function*() {
        for (let i = 0; i < keys.length; i++) yield* noop.pipe(breaker.execute({ key: keys[i] }))
      }))
      const after = settledHeap()
      await close()
      return (after - before) / keys.length
    }
  }
]
