import * as AgentProcess from "@effect-resilience/example-agent-service/process"
import * as RedisServer from "@effect-resilience/testing/RedisServer"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"

const token = "test-admin-token"
const masterName = "mymaster"

const startAt = (env: Record<string, string>, waitForListening = true) =>
  AgentProcess.startFresh(token, { BREAKER_OPEN_DURATION: "1 second", ...env }, { waitForListening })

// Whether the search cache on the server at `port` holds the answer to `query`: the service writes it through
// `ResilientRedis` as `...search:<query>`, beside a time key (`...at:search:<query>`).
const cachedOn = (port: number, query: string, password?: string) =>
  Effect.map(
    RedisServer.command(port, ["KEYS", `*search:${query}`], { password }),
    (reply) => reply.split("\r\n").some((line) => line.endsWith(`search:${query}`) && !line.includes(":at:"))
  )

// The exit code, or "still running" (a service that should have stopped at startup fails the test without a hang).
const exitCode = (agent: AgentProcess.Instance) =>
  agent.exited.pipe(Effect.timeoutOrElse({ duration: "20 seconds", orElse: () => Effect.succeed("still running") }))

describe("agent service on Redis Sentinel", { timeout: 90_000 }, () => {
  it.live("bad Sentinel configuration stops the service at startup with a message naming the variable", () =>
    Effect.gen(function*() {
      const cases: ReadonlyArray<[Record<string, string>, RegExp]> = [
        [{ REDIS_SENTINELS: "localhost" }, /REDIS_SENTINELS: Expected a comma-separated list of host:port/],
        [{ REDIS_SENTINELS: "127.0.0.1:0" }, /REDIS_SENTINELS: .*got "127\.0\.0\.1:0"/],
        [{ REDIS_SENTINELS: "127.0.0.1:26379,127.0.0.1:65536" }, /REDIS_SENTINELS: .*got "127\.0\.0\.1:65536"/],
        [{ REDIS_SENTINELS: "127.0.0.1:26379,:26380" }, /REDIS_SENTINELS: .*got ":26380"/],
        [{ REDIS_SENTINELS: "127.0.0.1:26379," }, /REDIS_SENTINELS: .*got ""/],
        [{ REDIS_SENTINELS: "::1:26379" }, /REDIS_SENTINELS: .*got "::1:26379"/],
        [
          { REDIS_SENTINELS: "127.0.0.1:26379", REDIS_URL: "redis://127.0.0.1:6379" },
          /REDIS_SENTINELS: Expected either REDIS_URL or REDIS_SENTINELS, not both/
        ],
        [{ REDIS_SENTINEL_MASTER: "mymaster" }, /REDIS_SENTINEL_MASTER: Expected REDIS_SENTINELS as well/],
        [
          { REDIS_SENTINELS: "127.0.0.1:26379", REDIS_SENTINEL_MASTER: "  " },
          /REDIS_SENTINEL_MASTER: Expected a non-empty master name/
        ]
      ]
      yield* Effect.forEach(cases, ([env, message]) =>
        Effect.gen(function*() {
          const agent = yield* startAt(env, false)
          assert.strictEqual(yield* exitCode(agent), 1, agent.output())
          assert.match(agent.output(), /Configuration error/)
          assert.match(agent.output(), message)
          assert.notInclude(agent.output(), "listening on")
        }), { concurrency: 4, discard: true })
    }).pipe(Effect.scoped))

  it.live("with no sentinel answering, starts on its local store, names each sentinel asked, and joins when one comes", () =>
    Effect.gen(function*() {
      const ports = [yield* RedisServer.freePort, yield* RedisServer.freePort]
      const agent = yield* startAt({ REDIS_SENTINELS: ports.map((p) => `127.0.0.1:${p}`).join(",") })
      // Serving meanwhile: the search cache is the local store, the breakers are this instance's own.
      assert.strictEqual((yield* agent.request("GET", "/search?q=early")).body.served_by, "exa_api")
      assert.match(agent.output(), /RedisSentinel: cannot find master "mymaster" yet/)
      for (const port of ports) assert.include(agent.output(), `127.0.0.1:${port}`)

      // The second sentinel comes up, with its master: the service finds it and writes there.
      const master = yield* RedisServer.make()
      yield* RedisServer.makeReplica(master)
      yield* RedisServer.makeSentinel({ masterName, masterPort: master.port, port: ports[1]! })
      let probe = 0
      yield* AgentProcess.eventually(
        Effect.gen(function*() {
          const query = `joined-${probe++}`
          assert.strictEqual((yield* agent.request("GET", `/search?q=${query}`)).status, 200)
          yield* Effect.sleep("100 millis")
          if (!(yield* cachedOn(master.port, query))) {
            return yield* new AgentProcess.ProcessError({ message: `${query} not on the master` })
          }
        }),
        "20 seconds"
      )
      assert.match(
        agent.output(),
        new RegExp(`RedisSentinel: master "mymaster" found at 127\\.0\\.0\\.1:${master.port}`)
      )
      assert.strictEqual(yield* agent.stop("SIGTERM"), 0)
    }).pipe(Effect.scoped))

  it.live("follows a failover: with the master SIGKILLed, writes reach the promoted replica and chats succeed", () =>
    Effect.gen(function*() {
      const master = yield* RedisServer.make()
      const replica = yield* RedisServer.makeReplica(master)
      const sentinels = yield* RedisServer.makeSentinels(3, { masterName, masterPort: master.port, quorum: 2 })
      const agent = yield* startAt({
        REDIS_SENTINELS: sentinels.map((s) => `127.0.0.1:${s.port}`).join(","),
        REDIS_SENTINEL_MASTER: masterName
      })

      const before = yield* agent.request("GET", "/search?q=before")
      assert.strictEqual(before.body.served_by, "exa_api")
      yield* AgentProcess.eventually(
        Effect.flatMap(
          cachedOn(master.port, "before"),
          (found) => found ? Effect.void : Effect.fail(new AgentProcess.ProcessError({ message: "not on the master" }))
        )
      )
      const chat = yield* agent.request("POST", "/chat", { body: { user_id: "ada", message: "before" } })
      assert.strictEqual(chat.status, 200, JSON.stringify(chat.body))
      // Replicated before the kill, so that the promoted replica has it.
      yield* AgentProcess.eventually(
        Effect.flatMap(
          cachedOn(replica.port, "before"),
          (found) => found ? Effect.void : Effect.fail(new AgentProcess.ProcessError({ message: "not on the replica" }))
        )
      )

      yield* master.kill
      // A fresh query each attempt: each answer is a new write, which lands once the service follows the new master.
      let probe = 0
      yield* AgentProcess.eventually(
        Effect.gen(function*() {
          const query = `after-${probe++}`
          const response = yield* agent.request("GET", `/search?q=${query}`)
          assert.strictEqual(response.status, 200)
          yield* Effect.sleep("200 millis")
          if (!(yield* cachedOn(replica.port, query))) {
            return yield* new AgentProcess.ProcessError({ message: `${query} not on the new master` })
          }
        }),
        "20 seconds"
      )
      const after = yield* agent.request("POST", "/chat", { body: { user_id: "ada", message: "after" } })
      assert.strictEqual(after.status, 200, JSON.stringify(after.body))
      assert.strictEqual(after.body.session.turns, 2)
      assert.isTrue(after.body.session.persisted)
      // The sentinels promoted the replica; the service said it followed.
      const named = yield* RedisServer.command(sentinels[0]!.port, [
        "SENTINEL",
        "get-master-addr-by-name",
        masterName
      ])
      assert.include(named, String(replica.port))
      assert.match(
        agent.output(),
        new RegExp(`moved from 127\\.0\\.0\\.1:${master.port} to 127\\.0\\.0\\.1:${replica.port}`)
      )
      assert.isTrue(yield* cachedOn(replica.port, "before"))
      assert.strictEqual(yield* agent.stop("SIGTERM"), 0)
    }).pipe(Effect.scoped))

  it.live("with REDIS_PASSWORD, opens the master the sentinels name with it; the password is never printed", () =>
    Effect.gen(function*() {
      const password = "sentinel-master-pa55"
      const master = yield* RedisServer.make({ password })
      yield* RedisServer.makeReplica(master, { password })
      const sentinel = yield* RedisServer.makeSentinel({ masterName, masterPort: master.port, authPass: password })
      const agent = yield* startAt({ REDIS_SENTINELS: `127.0.0.1:${sentinel.port}`, REDIS_PASSWORD: password })
      assert.strictEqual((yield* agent.request("GET", "/search?q=guarded")).body.served_by, "exa_api")
      yield* AgentProcess.eventually(
        Effect.flatMap(
          cachedOn(master.port, "guarded", password),
          (found) => found ? Effect.void : Effect.fail(new AgentProcess.ProcessError({ message: "not on the master" }))
        )
      )
      assert.notInclude(agent.output(), password)
      assert.strictEqual(yield* agent.stop("SIGTERM"), 0)
    }).pipe(Effect.scoped))
})
