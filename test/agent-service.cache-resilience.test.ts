import { program } from "@effect-resilience/example-cache-resilience/driver"
import { assert, it } from "@effect/vitest"
import { Effect } from "effect"

it.live("the cache resilience driver keeps answering through a cache outage and reports combined metrics", () =>
  Effect.gen(function*() {
    const { lines, metrics } = yield* program
    assert.deepStrictEqual(lines, [
      "cache healthy: 5/5 answered, cache breaker Closed",
      "cache down: 5/5 answered, cache breaker Open",
      "cache down, breaker open: 5/5 answered, cache breaker Open",
      "cache back: 5/5 answered, cache breaker Closed",
      "cache back, recovering: 5/5 answered, cache breaker Closed"
    ])
    assert.strictEqual(metrics.driver.total_queries, 25)
    assert.strictEqual(metrics.driver.error_rate, 0)
    // Healthy: 3 distinct queries computed, 2 hits. While down, every query is computed. Back: hits again.
    assert.isBelow(metrics.driver.tool_executions, 25)
    assert.isAtLeast(metrics.cache.cache_hits, 4)
    // The breaker opened after 5 failures, then skipped the dead cache instead of calling it.
    assert.strictEqual(metrics.circuit_breaker.failure_count, 5)
    assert.isAbove(metrics.cache.skipped, 0)
    assert.isAtLeast(metrics.circuit_breaker.state_changes, 3)
    assert.strictEqual(metrics.circuit_breaker.state, "Closed")
    assert.isFalse(metrics.driver.cache_degraded)
  }))
