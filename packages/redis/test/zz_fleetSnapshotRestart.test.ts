import * as CircuitBreaker from "@effect-resilience/core/CircuitBreaker"
import * as RedisServer from "@effect-resilience/testing/RedisServer"
import { assert, it } from "@effect/vitest"
import { Data, type Duration, Effect, Exit, Layer, Metric, Schedule, Scope } from "effect"
import * as RedisFleet from "../src/RedisFleet.ts"
import * as RedisStore from "../src/RedisStore.ts"

class Boom extends Data.TaggedError("Boom") {}

const options: CircuitBreaker.Options = { name: "search", trip: CircuitBreaker.consecutive(1), openDuration: "1 hour" }
const prefix = "snapshot:"

const waitState = (
  breaker: CircuitBreaker.CircuitBreaker,
  state: CircuitBreaker.State,
  within: Duration.Input = "5 seconds"
) =>
  breaker.state.pipe(
    Effect.flatMap((now) => now === state ? Effect.void : Effect.fail(`${now}, waiting for ${state}`)),
    Effect.retry(Schedule.spaced("10 millis").pipe(Schedule.upTo({ duration: within })))
  )

/** A breaker on an instance of its own (its own connections), living until the returned scope closes. */
const breakerOn = (server: RedisServer.RedisServer, instance: string) =>
  Effect.gen(function*() {
    const scope = yield* Scope.make()
    yield* Effect.addFinalizer(() => Scope.close(scope, Exit.void))
    const context = yield* Layer.buildWithScope(
      RedisFleet.layer({ instance, heartbeat: "100 millis", resyncInterval: "200 millis" }).pipe(
        Layer.provideMerge(RedisStore.layer({ url: server.url, timeout: "500 millis", prefix })),
        Layer.provideMerge(Layer.succeed(Metric.MetricRegistry, new Map()))
      ),
      scope
    )
    return yield* CircuitBreaker.make(options).pipe(Effect.provide(context), Scope.provide(scope))
  })

// Redis with RDB snapshots (its default persistence) that crashes comes back with the data of its last snapshot: the
// incarnation key is there, so the instances believe nothing was lost, but every epoch written after the snapshot is
// gone. The instances still know the newer epochs, so they ignore every state the fleet holds or publishes until its
// epochs climb past them: a reset made on the fleet after the restart does not reach an instance that knew more.
it.live(
  "after Redis comes back from an older snapshot (epochs went back), a reset on C still reaches A",
  () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.make()
      const onA = yield* breakerOn(server, "a")
      const onC = yield* breakerOn(server, "c")
      // Epoch 1: open for the fleet. The snapshot is taken here.
      yield* Effect.ignore(onC.protect(Effect.fail(new Boom())))
      yield* waitState(onA, "Open")
      yield* RedisServer.command(server.port, ["SAVE"])
      // Epochs 2 and 3, after the snapshot: closed, then open again.
      yield* onC.reset()
      yield* waitState(onA, "Closed")
      yield* Effect.ignore(onC.protect(Effect.fail(new Boom())))
      yield* waitState(onA, "Open")
      // Redis crashes and comes back from its snapshot (epoch 1).
      yield* server.restart
      // It did come back with data: the snapshot's incarnation and epoch 1.
      assert.include(
        yield* RedisServer.command(server.port, ["HGET", `${prefix}cb:search:kdefault`, "epoch"]),
        "$1\r\n1\r\n"
      )
      yield* Effect.sleep("2 seconds")
      // An operator resets the breaker on C, once everybody is back.
      yield* onC.reset()
      yield* waitState(onC, "Closed")
      const seen = yield* Effect.exit(waitState(onA, "Closed", "3 seconds"))
      assert.isTrue(Exit.isSuccess(seen), `A still ${yield* onA.state} 3 s after a reset on C`)
    }).pipe(Effect.scoped),
  30_000
)
