import * as AgentProcess from "@effect-resilience/example-agent-service/process"
import * as RedisServer from "@effect-resilience/testing/RedisServer"
import { assert, it } from "@effect/vitest"
import { Effect } from "effect"

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
