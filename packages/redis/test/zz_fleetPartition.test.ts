import * as CircuitBreaker from "@effect-resilience/core/CircuitBreaker"
import * as RedisServer from "@effect-resilience/testing/RedisServer"
import { assert, it } from "@effect/vitest"
import { Context, Effect, Exit, Layer, Metric, Schedule, Scope } from "effect"
import { createConnection, createServer, type Socket } from "node:net"
import * as RedisFleet from "../src/RedisFleet.ts"
import * as RedisStore from "../src/RedisStore.ts"

const prefix = "partition:"

/** A TCP proxy (one instance's network path to Redis) to `port` that can be cut (sockets destroyed, new ones refused) and restored. */
const proxy = (target: number) =>
  Effect.acquireRelease(
    Effect.callback<{ port: number; cut: () => void; restore: () => void; close: () => void }>((resume) => {
      const sockets = new Set<Socket>()
      let up = true
      const server = createServer((client) => {
        if (!up) return client.destroy()
        const upstream = createConnection({ host: "127.0.0.1", port: target })
        sockets.add(client)
        sockets.add(upstream)
        client.pipe(upstream)
        upstream.pipe(client)
        const end = () => {
          client.destroy()
          upstream.destroy()
          sockets.delete(client)
          sockets.delete(upstream)
        }
        client.on("error", end)
        upstream.on("error", end)
        client.on("close", end)
        upstream.on("close", end)
      })
      server.listen(0, "127.0.0.1", () => {
        const address = server.address()
        resume(Effect.succeed({
          port: typeof address === "object" && address !== null ? address.port : 0,
          cut: () => {
            up = false
            for (const s of sockets) s.destroy()
            sockets.clear()
          },
          restore: () => {
            up = true
          },
          close: () => {
            up = false
            for (const s of sockets) s.destroy()
            server.close()
          }
        }))
      })
    }),
    (p) => Effect.sync(() => p.close())
  )

const breakerOn = (port: number, instance: string, options: CircuitBreaker.Options) =>
  Effect.gen(function*() {
    const scope = yield* Scope.make()
    yield* Effect.addFinalizer(() => Scope.close(scope, Exit.void))
    const context = yield* Layer.buildWithScope(
      RedisFleet.layer({ instance, heartbeat: "100 millis", resyncInterval: "200 millis" }).pipe(
        Layer.provideMerge(RedisStore.layer({ url: `redis://127.0.0.1:${port}`, timeout: "500 millis", prefix })),
        Layer.provideMerge(Layer.succeed(Metric.MetricRegistry, new Map()))
      ),
      scope
    )
    const breaker = yield* CircuitBreaker.make(options).pipe(Effect.provide(context), Scope.provide(scope))
    return { breaker, fleet: Context.get(context, RedisFleet.RedisFleet) }
  })

// The announce script lets a manual control win whatever its time ("the operator's intent, last writer wins"), but
// the last to *arrive* wins, not the last one made: an instance cut off from Redis queues a `forceOpen` made at t1;
// meanwhile an operator resets the breaker on a connected instance at t2 > t1; when the cut-off instance is back, its
// older forceOpen is committed over the newer reset, and the whole fleet goes ForcedOpen (and stays so).
// Trips made on a stale epoch are compared by the time they were made (`change.at`); manual controls are not.
it.live(
  "a forceOpen queued on a cut-off instance does not override a reset made on the fleet after it",
  () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.make()
      const toA = yield* proxy(server.port)
      const options: CircuitBreaker.Options = {
        name: "pay",
        trip: CircuitBreaker.consecutive(1),
        openDuration: "1 hour"
      }
      const a = yield* breakerOn(toA.port, "a", options)
      const b = yield* breakerOn(server.port, "b", options)
      // A loses its network path to Redis; an operator forces the breaker open on A.
      toA.cut()
      yield* a.breaker.forceOpen()
      yield* Effect.sleep("200 millis")
      // Later, another operator resets it on B, which is connected: the fleet takes the reset.
      yield* b.breaker.reset()
      assert.strictEqual(yield* b.breaker.state, "Closed")
      // A is back and sends what it queued.
      toA.restore()
      yield* a.fleet.snapshot.pipe(
        Effect.flatMap(({ breakers: [pay] }) => pay.queued === 0 ? Effect.void : Effect.fail(pay)),
        Effect.retry(Schedule.spaced("20 millis").pipe(Schedule.upTo({ duration: "10 seconds" })))
      )
      yield* Effect.sleep("500 millis")
      // The newest control is the reset: the fleet should not end forced open.
      assert.strictEqual(yield* b.breaker.state, "Closed", "B took A's older forceOpen over its newer reset")
      assert.strictEqual(yield* a.breaker.state, "Closed")
    }).pipe(Effect.scoped),
  30_000
)
