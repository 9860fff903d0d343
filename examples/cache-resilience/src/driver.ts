/**
 * The seeds' cache resilience driver (FACT): every query looks in the cache first, through `ResilientCache`, and
 * computes the answer (a tool execution) on a miss. The run below breaks the cache halfway: the driver keeps
 * answering, the cache's breaker opens so that the dead cache costs nothing, and once the cache is back the breaker
 * lets it serve again, gradually. It prints the combined metrics of the cache and its breaker.
 */
import { CircuitBreaker, ResilientCache } from "@effect-resilience/core"
import { Data, Effect, Option } from "effect"

class CacheDown extends Data.TaggedError("CacheDown")<{ readonly operation: string }> {}

// The cache being wrapped: a map that fails every call while `down` is set, as a cache server mid-maintenance would.
const makeFlakyCache = () => {
  const entries = new Map<string, string>()
  let down = false
  const guard = <A>(operation: string, f: () => A) =>
    Effect.suspend(() => down ? Effect.fail(new CacheDown({ operation })) : Effect.sync(f))
  const backend: ResilientCache.Backend<string, CacheDown> = {
    get: (key) => guard("get", () => Option.fromUndefinedOr(entries.get(key))),
    set: (key, value) => guard("set", () => void entries.set(key, value)),
    invalidate: (key) => guard("invalidate", () => entries.delete(key) ? 1 : 0)
  }
  return { backend, setDown: (value: boolean) => Effect.sync(() => (down = value)), size: () => entries.size }
}

export const program = Effect.gen(function*() {
  const cache = makeFlakyCache()
  const resilient = yield* ResilientCache.make({
    name: "fact_cache",
    backend: cache.backend,
    timeout: "100 millis",
    // The seeds' settings, with a short open time: 5 failures open it; it recovers gradually, 3 successes close it.
    circuitBreaker: {
      trip: CircuitBreaker.consecutive(5),
      openDuration: "300 millis",
      halfOpen: { successThreshold: 3, recoveryFactor: 0.5 }
    },
    onFailure: (failure) => Effect.logDebug(`cache ${failure.operation} failed (${failure.kind}): continuing without`)
  })

  let totalQueries = 0
  let toolExecutions = 0
  let errors = 0
  // The driver: cache-first; a miss runs the tool and stores its answer. The cache's failures never reach here.
  const processQuery = (input: string) =>
    resilient.getOrCompute(
      `query:${input}`,
      Effect.sync(() => {
        toolExecutions++
        return `answer to "${input}"`
      })
    ).pipe(
      Effect.tap(() => Effect.sync(() => totalQueries++)),
      Effect.tapError(() => Effect.sync(() => errors++))
    )

  const queries = ["revenue 2024", "top customers", "churn rate", "revenue 2024", "top customers"]
  const run = (label: string) =>
    Effect.gen(function*() {
      const answers = yield* Effect.forEach(queries, processQuery)
      const state = yield* resilient.breaker.state
      return `${label}: ${answers.length}/${queries.length} answered, cache breaker ${state}`
    })

  const lines: Array<string> = []
  lines.push(yield* run("cache healthy"))
  yield* cache.setDown(true)
  lines.push(yield* run("cache down"))
  lines.push(yield* run("cache down, breaker open")) // skipped at once: no timeout paid
  yield* cache.setDown(false)
  yield* Effect.sleep("350 millis")
  lines.push(yield* run("cache back"))
  lines.push(yield* run("cache back, recovering"))

  const snapshot = yield* resilient.snapshot
  const metrics = {
    cache: {
      hit_rate: Math.round(snapshot.hitRate * 1000) / 10,
      cache_hits: snapshot.hits,
      cache_misses: snapshot.misses,
      errors: snapshot.errors,
      skipped: snapshot.skipped,
      total_entries: cache.size()
    },
    circuit_breaker: {
      state: snapshot.breaker.state,
      failure_count: snapshot.breaker.failureCount,
      success_count: snapshot.breaker.successCount,
      rejected_count: snapshot.breaker.rejectedCount,
      failure_rate: snapshot.breaker.failureRate,
      state_changes: snapshot.breaker.stateChanges
    },
    driver: {
      total_queries: totalQueries,
      tool_executions: toolExecutions,
      error_rate: totalQueries === 0 ? 0 : errors / totalQueries,
      cache_degraded: snapshot.breaker.state !== "Closed"
    }
  }
  return { lines, metrics }
}).pipe(Effect.scoped)
