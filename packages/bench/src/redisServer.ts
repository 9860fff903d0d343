/**
 * The bench's own `redis-server`, from the workspace's test helper (`@effect-resilience/testing/RedisServer`, the
 * one the redis tests use): started on a free loopback port with no persistence, and SIGKILLed when the case stops
 * it or when the bench process exits, however it exits. A missing binary fails loudly, with how to install it;
 * `REDIS_SERVER` points at another one.
 *
 * Each Redis case starts a server of its own, so that the server's command counters (`INFO commandstats`), which
 * the cases read to verify how many commands a sample sent, count that case's commands only.
 */
import * as RedisServer from "@effect-resilience/testing/RedisServer"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Scope from "effect/Scope"

/** A running server of the bench. */
export interface BenchRedis {
  readonly port: number
  /** `redis://127.0.0.1:<port>` */
  readonly url: string
  /** Calls per command since the server started, from `INFO commandstats` (lower-case names: `evalsha`, `get`). */
  readonly commandCalls: () => Promise<Record<string, number>>
  /** SIGKILLs the server and waits for it to exit. */
  readonly stop: () => Promise<void>
}

/**
 * Starts a `redis-server` for the bench on a free loopback port, answering PING once this resolves. Rejects, saying
 * how to install it, when the binary is missing.
 */
export const startRedisServer = (): Promise<BenchRedis> =>
  Effect.runPromise(Effect.gen(function*() {
    const scope = yield* Scope.make()
    const server = yield* RedisServer.make().pipe(
      Scope.provide(scope),
      Effect.onError(() => Scope.close(scope, Exit.void)),
      Effect.mapError((error) =>
        new Error(`${error.message} To run the bench without Redis, leave the Redis cases out with --only.`)
      )
    )
    return {
      port: server.port,
      url: server.url,
      commandCalls: () => Effect.runPromise(RedisServer.commandCalls(server.port)),
      stop: () => Effect.runPromise(Scope.close(scope, Exit.void))
    }
  }))
