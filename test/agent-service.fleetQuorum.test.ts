import * as AgentProcess from "@effect-resilience/example-agent-service/process"
import * as RedisServer from "@effect-resilience/testing/RedisServer"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"

const token = "test-admin-token"

const quorum = { FLEET_COUNTING: "quorum", FLEET_QUORUM: "2" }

const instance = (redisUrl: string) =>
  AgentProcess.startFresh(token, { REDIS_URL: redisUrl, BREAKER_OPEN_DURATION: "1 minute", ...quorum })

const stateOf = (agent: AgentProcess.Instance, breaker: string) =>
  Effect.map(
    agent.request("GET", `/api/v1/resilience/circuit-breakers/${breaker}`),
    (response) => response.body.state as string
  )

/** Exa failing on `agent` only (chaos is per process). */
const chaos = (agent: AgentProcess.Instance) =>
  Effect.map(
    agent.request("POST", "/chaos/exa", { body: { failure_rate: 1 }, token }),
    (r) => assert.strictEqual(r.status, 200)
  )

/** Searches on `agent` until its Exa breaker is open. */
const tripExa = (agent: AgentProcess.Instance, tag: string) => {
  let n = 0
  return AgentProcess.eventually(
    Effect.suspend(() =>
      Effect.flatMap(
        agent.request("GET", `/search?q=${tag}-${n++}`),
        () =>
          Effect.flatMap(stateOf(agent, "exa_api"), (state) =>
            state === "open" ? Effect.void : Effect.fail(new AgentProcess.ProcessError({ message: state })))
      )
    )
  )
}

describe("agent service: FLEET_COUNTING and FLEET_QUORUM", () => {
  it.live(
    "a bad fleet setting stops the service at startup with a message naming the variable",
    () =>
      Effect.gen(function*() {
        const redis = { REDIS_URL: "redis://127.0.0.1:1" }
        const cases: ReadonlyArray<[Record<string, string>, RegExp]> = [
          [{ ...redis, FLEET_COUNTING: "sometimes" }, /FLEET_COUNTING/],
          [{ ...redis, FLEET_COUNTING: "quorum" }, /FLEET_QUORUM: Expected the number of instances/],
          [{ ...redis, FLEET_COUNTING: "quorum", FLEET_QUORUM: "0" }, /FLEET_QUORUM: Expected a positive number/],
          [{ ...redis, FLEET_COUNTING: "quorum", FLEET_QUORUM: "two" }, /FLEET_QUORUM/],
          [{ ...redis, FLEET_QUORUM: "2" }, /FLEET_QUORUM: Expected FLEET_COUNTING=quorum/],
          [{ FLEET_COUNTING: "global" }, /FLEET_COUNTING: "global" needs REDIS_URL/]
        ]
        for (const [env, message] of cases) {
          const agent = yield* AgentProcess.start({
            env: {
              PORT: "3000",
              DATA_DIR: yield* AgentProcess.tempDir("agent-service-quorum-"),
              RESILIENCE_ADMIN_TOKEN: token,
              ...env
            },
            waitForListening: false
          })
          assert.strictEqual(yield* agent.exited, 1, agent.output())
          assert.match(agent.output(), /Configuration error/)
          assert.match(agent.output(), message)
          assert.notInclude(agent.output(), "listening on")
        }
      }).pipe(Effect.scoped),
    60_000
  )

  it.live(
    "with a quorum of 2, one instance whose Exa fails opens alone; a second one opens the fleet",
    () =>
      Effect.gen(function*() {
        const redis = yield* RedisServer.make()
        const [a, b, c] = yield* Effect.forEach([1, 2, 3], () => instance(redis.url), { concurrency: 3 })
        yield* AgentProcess.eventually(
          Effect.flatMap(a.request("GET", "/api/v1/resilience/fleet"), (r) =>
            r.status === 200 && r.body.live_instances.length === 3
              ? Effect.succeed(r.body)
              : Effect.fail(new AgentProcess.ProcessError({ message: JSON.stringify(r.body) })))
        ).pipe(
          Effect.map((fleet) =>
            assert.strictEqual(
              fleet.breakers.find((breaker: { name: string }) =>
                breaker.name === "exa_api"
              )?.counting,
              "quorum"
            )
          )
        )
        yield* chaos(a)
        yield* tripExa(a, "a")
        // A's trip is one vote of two: B and C stay closed (checked for a while, as a quorum vote is sent at once).
        for (let i = 0; i < 10; i++) {
          assert.strictEqual(yield* stateOf(b, "exa_api"), "closed")
          assert.strictEqual(yield* stateOf(c, "exa_api"), "closed")
          yield* Effect.sleep("50 millis")
        }
        const search = yield* b.request("GET", "/search?q=served-by-b")
        assert.strictEqual(search.body.served_by, "exa_api")

        yield* chaos(b)
        yield* tripExa(b, "b")
        // The second vote opens the breaker for the fleet: C, whose Exa is fine, too.
        yield* AgentProcess.eventually(
          Effect.flatMap(stateOf(c, "exa_api"), (state) =>
            state === "open" ? Effect.void : Effect.fail(new AgentProcess.ProcessError({ message: state })))
        )
      }).pipe(Effect.scoped),
    60_000
  )
})
