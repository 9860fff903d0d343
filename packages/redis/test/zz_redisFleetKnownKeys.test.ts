// Code-review finding (not reachable through the agent service, whose breakers have no keys): RedisFleet keeps, per
// breaker, the newest epoch it saw for every key that ever had fleet state (`known` in RedisFleet.ts), and forgets
// them only when Redis loses its data. A keyed breaker (one circuit per host, per tenant) evicts idle keys locally
// (`keys.idleTimeToLive`, `keys.maxKeys`), but in a fleet every key that ever tripped stays in `known` for the life of
// the process, and every resync loads every such key's state again from Redis (whose `cb:<breaker>` set and hashes do
// not expire either): memory and resync cost grow with the distinct keys ever tripped.
import * as CircuitBreaker from "@effect-resilience/core/CircuitBreaker"
import * as RedisServer from "@effect-resilience/testing/RedisServer"
import { assert, describe, it } from "@effect/vitest"
import { Context, Data, Effect, Layer, Metric, Schedule } from "effect"
import * as RedisFleet from "../src/RedisFleet.ts"
import * as RedisStore from "../src/RedisStore.ts"

class Boom extends Data.TaggedError("Boom") {}

describe("RedisFleet: keys of a keyed breaker over time", () => {
  it.live("the fleet's books of a keyed breaker stay within the breaker's key bounds", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.make()
      const context = yield* Layer.build(
        RedisFleet.layer({ instance: "a", heartbeat: "100 millis", resyncInterval: "200 millis" }).pipe(
          Layer.provideMerge(RedisStore.layer({ url: server.url, timeout: "500 millis", prefix: "zz-fleet:" })),
          Layer.provideMerge(Layer.succeed(Metric.MetricRegistry, new Map()))
        )
      )
      const maxKeys = 20
      const breaker = yield* CircuitBreaker.make({
        name: "per-host",
        trip: CircuitBreaker.consecutive(1),
        openDuration: "20 millis",
        keys: { idleTimeToLive: "50 millis", maxKeys }
      }).pipe(Effect.provide(context))
      const fleet = Context.get(context, RedisFleet.RedisFleet)

      // Hosts come and go: each fails once (its circuit trips, and the fleet hears of it), then is never seen again.
      const hosts = 300
      for (let i = 0; i < hosts; i++) {
        yield* Effect.ignore(breaker.protectKey(Effect.fail(new Boom()), `host-${i}`))
      }
      // Everything sent to the fleet.
      yield* fleet.snapshot.pipe(
        Effect.flatMap(({ breakers: [b] }) => b.queued === 0 ? Effect.void : Effect.fail(b)),
        Effect.retry(Schedule.spaced("20 millis").pipe(Schedule.upTo({ duration: "10 seconds" })))
      )
      // Idle past idleTimeToLive: fresh keys sweep the old ones out locally.
      yield* Effect.sleep("200 millis")
      for (let i = 0; i < 2 * maxKeys; i++) yield* breaker.protectKey(Effect.void, `fresh-${i}`)
      const local = (yield* breaker.snapshots).length - 1
      assert.isAtMost(local, maxKeys, "keys held by the breaker itself")

      const [books] = (yield* fleet.snapshot).breakers
      assert.isAtMost(books.keys, maxKeys, `keys the fleet member keeps for ${local} live keys`)
    }).pipe(Effect.scoped), { timeout: 30_000 })
})
