// Soak finding: with REDIS_URL, every search answer Redis accepts is also written to the local `redis-fallback`
// store (ResilientRedis' warm copy), which is uncapped (ResilientRedis forbids a cap: it also holds the journal). The
// local search cache is capped at 10,000 entries (`layerSearchCacheLocal`), but in Redis mode the service keeps one
// file (and one index entry in memory) per distinct query for a whole day (the answers' TTL). Measured in a soak: about
// 480 files (240 KB of disk, 85 KB of heap) per second of distinct-query traffic, linear, never swept within the run.
import * as AgentProcess from "@effect-resilience/example-agent-service/process"
import * as RedisServer from "@effect-resilience/testing/RedisServer"
import { assert, it } from "@effect/vitest"
import { Effect } from "effect"
import { readdirSync } from "node:fs"
import { join } from "node:path"

const token = "test-admin-token"

// The bound the service gives its local search cache (Agent.layerSearchCacheLocal).
const searchCacheBound = 10_000

const entryFiles = (directory: string): number => readdirSync(directory).filter((name) => name.startsWith("k")).length

it.live(
  "with REDIS_URL, what the service keeps on its own disk for the search cache stays bounded by distinct queries",
  () =>
    Effect.gen(function*() {
      const redis = yield* RedisServer.make()
      const dataDir = yield* AgentProcess.tempDir("zz-redis-cache-growth-")
      const agent = yield* AgentProcess.startFresh(token, { REDIS_URL: redis.url, DATA_DIR: dataDir })
      yield* AgentProcess.eventually(
        Effect.flatMap(agent.request("GET", "/search?q=warmup"), (r) =>
          r.status === 200 && r.body.served_by === "exa_api"
            ? Effect.void
            : Effect.fail(new AgentProcess.ProcessError({ message: JSON.stringify(r.body) })))
      )

      // Distinct queries, as users send them: a little more than the local cache's bound.
      const queries = searchCacheBound + 2_000
      yield* Effect.forEach(
        Array.from({ length: queries }, (_, i) => i),
        (i) => agent.request("GET", `/search?q=distinct-${i}`),
        { concurrency: 16, discard: true }
      )

      const files = entryFiles(join(dataDir, "redis-fallback"))
      assert.isAtMost(
        files,
        searchCacheBound + 100,
        `${files} entries in ${dataDir}/redis-fallback after ${queries} distinct queries`
      )
      assert.strictEqual(yield* agent.stop("SIGTERM"), 0)
    }).pipe(Effect.scoped),
  { timeout: 180_000 }
)
