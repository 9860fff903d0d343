import { Effect, Fiber } from "effect"
import type * as RedisStore from "../src/RedisStore.ts"

/**
 * Publishes `message` on `channel` every 50 ms until `received` (a subscription's collecting fiber) is done, for up to
 * 10 s, and returns what it collected. After a switch or a reconnect, one publish the server counted is no proof of
 * delivery: a message published while the subscriber is moving may be lost (pub/sub; see RedisSentinel's docs), and
 * a test that published once and then waited failed under load.
 */
export const publishUntilReceived = <A, E>(
  store: RedisStore.RedisStore,
  channel: string,
  message: string,
  received: Fiber.Fiber<A, E>
): Effect.Effect<A, unknown> =>
  Effect.gen(function*() {
    while (received.pollUnsafe() === undefined) {
      // The store may still be reconnecting itself: a publish that fails is tried again, as one that reached nobody.
      yield* Effect.ignore(store.publish(channel, message))
      yield* Effect.sleep("50 millis")
    }
    return yield* Fiber.join(received)
  }).pipe(Effect.timeout("10 seconds"))
