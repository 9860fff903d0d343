import * as CircuitBreaker from "@effect-resilience/core/CircuitBreaker"
import * as RedisServer from "@effect-resilience/testing/RedisServer"
import { NodeRedis } from "@effect/platform-node"
import { assert, it } from "@effect/vitest"
import { Context, Data, type Duration, Effect, Exit, Fiber, Layer, Metric, Schedule, Scope, Stream } from "effect"
import * as RedisFleet from "../src/RedisFleet.ts"
import * as RedisStore from "../src/RedisStore.ts"

class Boom extends Data.TaggedError("Boom") {}

const options: CircuitBreaker.Options = { name: "search", trip: CircuitBreaker.consecutive(1), openDuration: "1 hour" }
const prefix = "restart:"

const waitState = (
  breaker: CircuitBreaker.CircuitBreaker,
  state: CircuitBreaker.State,
  within: Duration.Input = "5 seconds"
) =>
  breaker.state.pipe(
    Effect.flatMap((now) => now === state ? Effect.void : Effect.fail(`${now}, waiting for ${state}`)),
    Effect.retry(Schedule.spaced("10 millis").pipe(Schedule.upTo({ duration: within })))
  )

/** How an instance reaches the server. */
type StoreOn = (server: RedisServer.RedisServer) => Layer.Layer<RedisStore.RedisStore, unknown>

const ownConnection = (server: RedisServer.RedisServer) =>
  RedisStore.layer({ url: server.url, timeout: "500 millis", prefix })

/** A breaker on an instance of its own (its own connections), living until the returned scope closes. */
const breakerOn = (
  server: RedisServer.RedisServer,
  instance: string,
  store: StoreOn = ownConnection
) =>
  Effect.gen(function*() {
    const scope = yield* Scope.make()
    yield* Effect.addFinalizer(() => Scope.close(scope, Exit.void))
    // The periodic resync is a minute away: whatever is seen sooner came from the reconnection.
    const context = yield* Layer.buildWithScope(
      RedisFleet.layer({ instance, heartbeat: "100 millis", resyncInterval: "1 minute" }).pipe(
        Layer.provideMerge(store(server)),
        Layer.provideMerge(Layer.succeed(Metric.MetricRegistry, new Map()))
      ),
      scope
    )
    const breaker = yield* CircuitBreaker.make(options).pipe(Effect.provide(context), Scope.provide(scope))
    return { breaker, close: Scope.close(scope, Exit.void) }
  })

/** How many connections are subscribed to the fleet's channel right now. */
const subscribers = (server: RedisServer.RedisServer) =>
  Effect.map(RedisServer.command(server.port, ["PUBSUB", "NUMSUB", `${prefix}fleet:events`]), (reply) => {
    const count = /:(\d+)\r\n$/.exec(reply)
    return count === null ? -1 : Number(count[1])
  })

// A failure on `from` (tripping on one) opens the fleet's circuit: `to` sees it open.
const tripSeen = (from: CircuitBreaker.CircuitBreaker, to: CircuitBreaker.CircuitBreaker) =>
  Effect.andThen(Effect.ignore(from.protect(Effect.fail(new Boom()))), waitState(to, "Open"))

// `rounds` trips and resets on `from`, each seen by `to`, then a trip: the circuit ends open, a few epochs up.
const tripsAndResets = (from: CircuitBreaker.CircuitBreaker, to: CircuitBreaker.CircuitBreaker, rounds: number) =>
  Effect.gen(function*() {
    for (let i = 0; i < rounds; i++) {
      yield* tripSeen(from, to)
      yield* from.reset()
      yield* waitState(to, "Closed")
    }
    yield* tripSeen(from, to)
  })

// The subscriber reconnects by itself when Redis comes back, so the stream never fails and a resync "whenever the
// subscription comes back" never ran: until the periodic resync, an instance ignored the changes of a Redis restarted
// empty (their epochs start again, below the ones it knows) and missed what was published while it reconnected.
const resetAfterEmptyRestart = (store?: StoreOn) =>
  Effect.gen(function*() {
    const server = yield* RedisServer.make()
    const { breaker: onA } = yield* breakerOn(server, "a", store)
    const { breaker: onC } = yield* breakerOn(server, "c", store)
    // A few epochs (trip, reset), so that A knows one above where the empty Redis counts from.
    yield* tripsAndResets(onC, onA, 3)
    yield* server.restartEmpty
    // Both connections are back well within this (heartbeats every 100 ms); the periodic resync is a minute away.
    yield* Effect.sleep("2 seconds")
    yield* onC.reset()
    const seen = yield* Effect.exit(waitState(onA, "Closed", "3 seconds"))
    assert.isTrue(Exit.isSuccess(seen), `A still ${yield* onA.state} 3 s after a reset on C`)
  }).pipe(Effect.scoped)

it.live(
  "after Redis restarts empty, a reset on C reaches A at once, not at A's next periodic resync",
  () => resetAfterEmptyRestart(),
  30_000
)

// NodeRedis' subscriber reconnects too, but does not say so: there the heartbeat finds the new incarnation.
it.live(
  "after Redis restarts empty, over a Redis service that does not signal reconnects, a heartbeat finds out",
  () =>
    resetAfterEmptyRestart((server) =>
      RedisStore.layerRedis({ timeout: "500 millis", prefix }).pipe(
        Layer.provide(NodeRedis.layer({ url: server.url, disableOfflineQueue: true }))
      )
    ),
  30_000
)

// Once both connections are back (well within 2 s; the periodic resync is a minute away), a reset on `from` reaches
// `to` within 3 s.
const resetReaches = (from: CircuitBreaker.CircuitBreaker, to: CircuitBreaker.CircuitBreaker) =>
  Effect.gen(function*() {
    yield* Effect.sleep("2 seconds")
    yield* from.reset()
    yield* waitState(from, "Closed")
    const seen = yield* Effect.exit(waitState(to, "Closed", "3 seconds"))
    assert.isTrue(Exit.isSuccess(seen), `still ${yield* to.state} 3 s after a reset on the other instance`)
  })

// Redis with RDB snapshots (its default persistence) that crashes comes back with the data of its last snapshot: the
// incarnation key is there, but every epoch written after the snapshot is gone. An instance that kept the newer epochs
// ignored every state the fleet held or published until its epochs climbed past them.
it.live(
  "after Redis comes back from an older snapshot (epochs went back), a reset on C still reaches A",
  () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.make()
      const { breaker: onA } = yield* breakerOn(server, "a")
      const { breaker: onC } = yield* breakerOn(server, "c")
      // Epoch 1: open for the fleet. The snapshot is taken here.
      yield* tripSeen(onC, onA)
      yield* RedisServer.command(server.port, ["SAVE"])
      // Epochs 2 and 3, after the snapshot: closed, then open again.
      yield* onC.reset()
      yield* waitState(onA, "Closed")
      yield* tripSeen(onC, onA)
      // Redis crashes and comes back from its snapshot: the same incarnation, epoch 1.
      yield* server.restart
      assert.include(
        yield* RedisServer.command(server.port, ["HGET", `${prefix}cb:search:kdefault`, "epoch"]),
        "$1\r\n1\r\n"
      )
      yield* resetReaches(onC, onA)
    }).pipe(Effect.scoped),
  30_000
)

// The same, from a snapshot taken before the breaker had any state: its key is gone, not at a lower epoch, and the
// epochs the fleet counts again from 1 were below the ones A kept.
it.live(
  "after Redis comes back from a snapshot without the breaker's key, a reset on C still reaches A",
  () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.make()
      const { breaker: onA } = yield* breakerOn(server, "a")
      const { breaker: onC } = yield* breakerOn(server, "c")
      // The snapshot holds the fleet's incarnation, and nothing of the breaker yet.
      yield* RedisServer.command(server.port, ["SAVE"])
      yield* tripsAndResets(onC, onA, 2)
      yield* server.restart
      assert.include(yield* RedisServer.command(server.port, ["EXISTS", `${prefix}cb:search:kdefault`]), ":0\r\n")
      yield* resetReaches(onC, onA)
    }).pipe(Effect.scoped),
  30_000
)

it.live(
  "after Redis restarts with its data, a reset published while A reconnects reaches A once it is back",
  () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.make({ persistence: true })
      const { breaker: onA } = yield* breakerOn(server, "a")
      // The reset must be published while A's subscriber is away. A retries about every 2 s once the outage has
      // lasted a while, so a reset made at once on a fresh connection nearly always is; when A was back first (the
      // channel has more than the resetter's subscriber), the round proves nothing and runs again.
      for (let round = 0;; round++) {
        assert.isBelow(round, 5, "A's subscriber was back before every reset")
        const tripper = yield* breakerOn(server, `tripper-${round}`)
        yield* Effect.ignore(tripper.breaker.protect(Effect.fail(new Boom())))
        yield* waitState(onA, "Open")
        yield* tripper.close
        yield* server.kill
        yield* Effect.sleep("2500 millis")
        yield* server.restart
        const resetter = yield* breakerOn(server, `resetter-${round}`)
        // Loaded from the restarted Redis: the data is there.
        yield* waitState(resetter.breaker, "Open")
        yield* resetter.breaker.reset()
        const listening = yield* subscribers(server)
        if (listening !== 1) {
          yield* resetter.close
          yield* waitState(onA, "Closed")
          continue
        }
        const started = performance.now()
        // When A's subscriber is back (for the measure): A's reconnect backoff is not the fleet's doing.
        const back = yield* subscribers(server).pipe(
          Effect.flatMap((n) => n > 1 ? Effect.sync(() => performance.now()) : Effect.fail("A not back")),
          Effect.retry(Schedule.spaced("5 millis")),
          Effect.forkScoped
        )
        const seen = yield* Effect.exit(waitState(onA, "Closed", "5 seconds"))
        const closed = performance.now()
        assert.isTrue(Exit.isSuccess(seen), `A still ${yield* onA.state} 5 s after a reset it missed`)
        const backAt = yield* Fiber.join(back)
        yield* Effect.log(
          `A resubscribed ${Math.round(backAt - started)} ms after the reset it missed, closed ${
            Math.round(closed - backAt)
          } ms later`
        )
        return
      }
    }).pipe(Effect.scoped),
  60_000
)

it.live(
  "a store subscription says when it is subscribed again, in order with the messages",
  () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.make()
      const context = yield* Layer.build(ownConnection(server))
      const store = Context.get(context, RedisStore.RedisStore)
      const seen: Array<string> = []
      const messages = yield* store.subscribe("events", {
        onResubscribed: Effect.sync(() => {
          seen.push("<resubscribed>")
        })
      })
      yield* Stream.runForEach(messages, (message) => Effect.sync(() => seen.push(message))).pipe(Effect.forkScoped)
      const received = (n: number) =>
        Effect.suspend(() => seen.length >= n ? Effect.void : Effect.fail(seen.length)).pipe(
          Effect.retry(Schedule.spaced("10 millis").pipe(Schedule.upTo({ duration: "5 seconds" })))
        )
      yield* store.publish("events", "before")
      yield* received(1)
      yield* server.restart
      yield* received(2)
      // Once the subscriber is back, what is published reaches it, after the signal.
      yield* store.publish("events", "after").pipe(
        Effect.retry(Schedule.spaced("50 millis").pipe(Schedule.upTo({ duration: "5 seconds" })))
      )
      yield* received(3)
      assert.deepStrictEqual(seen, ["before", "<resubscribed>", "after"])
    }).pipe(Effect.scoped),
  30_000
)
