import { CircuitBreaker, ResilientCache } from "@effect-resilience/core"
import { Data, Effect, Option } from "effect"

class RedisDown extends Data.TaggedError("RedisDown") {}

// The sessions on Redis, as the agent service sees them; `redis.up = false` takes Redis down.
const sessionsOnRedis = () => {
  const sessions = new Map<string, string>()
  const redis = { up: true }
  const call = <A>(f: () => A) => Effect.suspend(() => redis.up ? Effect.sync(f) : Effect.fail(new RedisDown()))
  const backend: ResilientCache.Backend<string, RedisDown> = {
    get: (key) => call(() => Option.fromNullishOr(sessions.get(key))),
    set: (key, value) => call(() => void sessions.set(key, value)),
    invalidate: (key) => call(() => (sessions.delete(key) ? 1 : 0))
  }
  return { backend, redis }
}

export const program = Effect.gen(function*() {
  const { backend, redis } = sessionsOnRedis()
  const sessions = yield* ResilientCache.make({
    name: "sessions",
    backend,
    ttl: "1 day",
    timeout: "100 millis",
    // An L1 in front of Redis: what it holds is served while Redis is down.
    l1: { maxEntries: 10_000, ttl: "5 minutes" },
    circuitBreaker: { trip: CircuitBreaker.consecutive(3), openDuration: "30 seconds" },
    onFailure: (failure) => Effect.logDebug(`sessions: ${failure.operation} failed`)
  })
  // L1, then Redis; when both miss, a degraded empty session rather than an error.
  const session = (user: string) =>
    sessions.get(`session:${user}`).pipe(
      Effect.map(Option.getOrElse(() => JSON.stringify({ user, degraded: true })))
    )

  yield* sessions.set("session:alice", JSON.stringify({ user: "alice", plan: "pro" }))
  redis.up = false
  const alice = yield* session("alice") // from the L1
  const others = yield* Effect.forEach(["bob", "carol", "dave"], session) // misses; the third opens the breaker
  const { breaker, hitRate } = yield* sessions.snapshot
  return { alice, bob: others[0], hitRate, breaker: breaker.state }
}).pipe(Effect.scoped)

// Effect.runPromise(program).then(console.log)
// { alice: '{"user":"alice","plan":"pro"}', bob: '{"user":"bob","degraded":true}', hitRate: 0.25, breaker: "Open" }
