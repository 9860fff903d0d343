import { FallbackStore } from "@effect-resilience/core"
import * as AgentProcess from "@effect-resilience/example-agent-service/process"
import * as RedisServer from "@effect-resilience/testing/RedisServer"
import { NodeServices } from "@effect/platform-node"
import { assert, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { readdirSync } from "node:fs"
import { join } from "node:path"

const token = "test-admin-token"

const instance = (redisUrl: string) => AgentProcess.startFresh(token, { REDIS_URL: redisUrl })

const stateOf = (agent: AgentProcess.Instance, breaker: string) =>
  Effect.map(
    agent.request("GET", `/api/v1/resilience/circuit-breakers/${breaker}`),
    (response) => response.body.state as string
  )

it.live(
  "two instances on one Redis share breakers: forced open on one, open on the other within a second",
  () =>
    Effect.gen(function*() {
      const redis = yield* RedisServer.make()
      const a = yield* instance(redis.url)
      const b = yield* instance(redis.url)
      yield* AgentProcess.eventually(
        Effect.flatMap(a.request("GET", "/api/v1/resilience/fleet"), (r) =>
          r.status === 200 && r.body.live_instances.length === 2
            ? Effect.void
            : Effect.fail(new AgentProcess.ProcessError({ message: JSON.stringify(r.body) })))
      )
      assert.strictEqual(yield* stateOf(b, "claude_api"), "closed")

      const forced = yield* a.request("POST", "/api/v1/resilience/circuit-breakers/claude_api/force-open", { token })
      assert.strictEqual(forced.status, 200)
      const started = Date.now()
      yield* AgentProcess.eventually(
        Effect.flatMap(stateOf(b, "claude_api"), (state) =>
          state === "forced_open"
            ? Effect.void
            : Effect.fail(new AgentProcess.ProcessError({ message: state }))),
        "1 second"
      )
      assert.isBelow(Date.now() - started, 1_000)
      // What the other instance does with it: Claude's breaker is open there too (level 4, apology, queued).
      const chat = yield* b.request("POST", "/chat", { body: { user_id: "zoe", message: "hello" } })
      assert.strictEqual(chat.body.claude, "queued")
      assert.strictEqual(chat.body.degradation_level, 4)

      // The search cache is shared too: an answer cached by one instance serves the other when both providers fail.
      yield* a.request("GET", "/search?q=shared")
      for (const name of ["exa", "tavily"]) {
        const set = yield* b.request("POST", `/chaos/${name}`, { body: { failure_rate: 1 }, token })
        assert.strictEqual(set.status, 200)
      }
      const cached = yield* b.request("GET", "/search?q=shared")
      assert.strictEqual(cached.body.served_by, "cache")

      // Reset on b: closed on a within a second; both stop cleanly.
      yield* b.request("POST", "/api/v1/resilience/circuit-breakers/claude_api/reset", { token })
      yield* AgentProcess.eventually(
        Effect.flatMap(
          stateOf(a, "claude_api"),
          (state) =>
            state === "closed" ? Effect.void : Effect.fail(new AgentProcess.ProcessError({ message: state }))
        ),
        "1 second"
      )
      assert.strictEqual(yield* a.stop("SIGTERM"), 0)
      assert.strictEqual(yield* b.stop("SIGTERM"), 0)
    }).pipe(Effect.scoped),
  { timeout: 60_000 }
)

it.live(
  "with REDIS_URL and Redis down at startup, the service starts on its local store and joins when Redis comes",
  () =>
    Effect.gen(function*() {
      const redis = yield* RedisServer.make()
      yield* redis.kill
      const agent = yield* instance(redis.url)
      const search = yield* agent.request("GET", "/search?q=effect")
      assert.strictEqual(search.status, 200)
      assert.strictEqual(search.body.served_by, "exa_api")
      const chat = yield* agent.request("POST", "/chat", { body: { user_id: "kim", message: "hello" } })
      assert.strictEqual(chat.body.delivery, "Delivered")

      // Redis comes: the instance joins the fleet (its heartbeat shows it live).
      yield* redis.restart
      yield* AgentProcess.eventually(
        Effect.flatMap(agent.request("GET", "/api/v1/resilience/fleet"), (r) =>
          r.status === 200 && r.body.live_instances.length === 1
            ? Effect.void
            : Effect.fail(new AgentProcess.ProcessError({ message: JSON.stringify(r.body) }))),
        "20 seconds"
      )
      assert.strictEqual(yield* agent.stop("SIGTERM"), 0)
    }).pipe(Effect.scoped),
  { timeout: 60_000 }
)

it.live(
  "REDIS_PASSWORD opens a Redis that requires one: the search cache is written there; the password is never printed",
  () =>
    Effect.gen(function*() {
      const redis = yield* RedisServer.make()
      const password = "agent-redis-pa55"
      assert.include(yield* RedisServer.command(redis.port, ["CONFIG", "SET", "requirepass", password]), "+OK")
      const agent = yield* AgentProcess.startFresh(token, { REDIS_URL: redis.url, REDIS_PASSWORD: password })
      assert.strictEqual((yield* agent.request("GET", "/search?q=locked")).body.served_by, "exa_api")
      yield* AgentProcess.eventually(
        Effect.flatMap(RedisServer.command(redis.port, ["KEYS", "*search:locked"], { password }), (reply) =>
          reply.includes("search:locked")
            ? Effect.void
            : Effect.fail(new AgentProcess.ProcessError({ message: `not in Redis: ${reply}` })))
      )
      assert.notInclude(agent.output(), password)
      assert.strictEqual(yield* agent.stop("SIGTERM"), 0)
    }).pipe(Effect.scoped),
  { timeout: 60_000 }
)

it.live(
  "with REDIS_URL on a Redis that accepts connections but never answers, the service serves and stops on SIGTERM",
  () =>
    Effect.gen(function*() {
      const redis = yield* RedisServer.make()
      yield* redis.freeze
      const agent = yield* instance(redis.url)
      const search = yield* agent.request("GET", "/search?q=effect")
      assert.strictEqual(search.status, 200)
      assert.strictEqual(search.body.served_by, "exa_api")
      // Every connection to Redis is bounded (the fleet's subscription too), so nothing holds the shutdown.
      const started = Date.now()
      assert.strictEqual(yield* agent.stop("SIGTERM"), 0)
      assert.isBelow(Date.now() - started, 15_000)
    }).pipe(Effect.scoped),
  { timeout: 60_000 }
)

// The bound the service gives its local search cache (Agent.searchCacheEntries), and in Redis mode its copies.
const searchCacheBound = 10_000

// The entries of a FallbackStore directory (their file names start with "k").
const entryFiles = (directory: string): number => readdirSync(directory).filter((name) => name.startsWith("k")).length

// With REDIS_URL, every search answer Redis took was also copied to the local `redis-fallback` store (ResilientRedis'
// warm copies), with no bound: one file per distinct query for a day (the answers' TTL), ~480 files a second under
// distinct-query traffic in a soak, and a slow restart. The copies are now bounded like the local cache. Cheaper than
// sending the bound's worth of queries: the copies an earlier, unbounded process left are seeded on its disk, the
// service trims them as it starts, then keeps the bound as queries come (the library's tests cover the order).
it.live(
  "with REDIS_URL, the search answers the service keeps on its own disk stay within the local cache's bound",
  () =>
    Effect.gen(function*() {
      const redis = yield* RedisServer.make()
      const dataDir = yield* AgentProcess.tempDir("redis-cache-bound-")
      const directory = join(dataDir, "redis-fallback")
      const seeded = searchCacheBound + 200
      // Written as the copies of a release that kept the bare value (still read as a copy), many at a time.
      yield* Effect.gen(function*() {
        const fallback = yield* FallbackStore.FallbackStore
        yield* Effect.forEach(
          Array.from({ length: seeded }, (_, i) => i),
          (i) => fallback.set(`agent:search:value:search:seeded-${i}`, "{}", { ttl: "1 day" }),
          { concurrency: 32, discard: true }
        )
      }).pipe(
        Effect.provide(
          FallbackStore.layer({ directory, name: "redis-fallback" }).pipe(Layer.provide(NodeServices.layer))
        )
      )
      assert.isAtLeast(entryFiles(directory), seeded)

      const agent = yield* AgentProcess.startFresh(token, { REDIS_URL: redis.url, DATA_DIR: dataDir })
      yield* AgentProcess.eventually(
        Effect.flatMap(agent.request("GET", "/search?q=warmup"), (r) =>
          r.status === 200 && r.body.served_by === "exa_api"
            ? Effect.void
            : Effect.fail(new AgentProcess.ProcessError({ message: JSON.stringify(r.body) })))
      )
      yield* Effect.forEach(
        Array.from({ length: 100 }, (_, i) => i),
        (i) => agent.request("GET", `/search?q=distinct-${i}`),
        { concurrency: 16, discard: true }
      )
      // The copies, and a few bookkeeping entries (the data marker seen).
      const files = entryFiles(directory)
      assert.isAtMost(files, searchCacheBound + 5, `${files} entries in ${directory}`)
      assert.isAtLeast(files, searchCacheBound, `${files} entries in ${directory}`)
      assert.strictEqual(yield* agent.stop("SIGTERM"), 0)
    }).pipe(Effect.scoped),
  { timeout: 120_000 }
)
