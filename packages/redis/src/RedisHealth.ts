/**
 * A Redis health check for `HealthMonitor`: sends `PING` through `effect/persistence`'s `Redis` service, measures the
 * latency, and turns every failure into a typed `RedisHealthCheckFailed`.
 *
 * **Details**
 *
 * - `check` is a plain `Effect` that needs a `Redis` (`RedisStore.layer` or `NodeRedis.layer` provides one): it
 *   succeeds with `{ latencyMillis }` when Redis answers `PONG`, and fails with `RedisHealthCheckFailed` (message,
 *   latency, and the `RedisError` as `cause`) when it does not. On `RedisStore.layer`'s client, a `PING` that got no
 *   reply within the store's `timeout` fails (`ReplyTimeoutError`), however long the server stays silent. The latency
 *   is measured with the monotonic `Clock`.
 * - Recovery needs nothing: node-redis reconnects in the background (backoff up to about 2 seconds with `NodeRedis`'
 *   default strategy), so the first check after Redis is back and the client has reconnected passes.
 * - `layer` registers the check on the `HealthMonitor` (name `"redis"` by default) for the layer's lifetime.
 *
 * **Gotchas**
 *
 * - With node-redis' offline queue on (the `NodeRedis.layer` default), a `PING` sent while the client reconnects
 *   waits for the reconnection, so a dead server shows up as the monitor's timeout. `RedisStore.layer` turns the
 *   queue off (`disableOfflineQueue`), so the check fails at once with the client's reason; do the same on a
 *   `NodeRedis.layer` of your own.
 *
 * **Example** (Watching Redis)
 *
 * ```ts
 * import { HealthMonitor } from "@effect-resilience/core"
 * import { RedisHealth, RedisStore } from "@effect-resilience/redis"
 * import { Effect, Layer } from "effect"
 *
 * const program = Effect.gen(function*() {
 *   const monitor = yield* HealthMonitor.HealthMonitor
 *   return yield* monitor.runNow("redis")
 * }).pipe(
 *   Effect.provide(RedisHealth.layer({ interval: "10 seconds", timeout: "2 seconds" }).pipe(
 *     Layer.provideMerge(HealthMonitor.layer()),
 *     Layer.provide(RedisStore.layer({ url: "redis://127.0.0.1:6379" }))
 *   ))
 * )
 * ```
 *
 * @since 0.1.0
 */
import * as HealthMonitor from "@effect-resilience/core/HealthMonitor"
import type { PolicyConfigError } from "@effect-resilience/core/PolicyConfig"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redis from "effect/persistence/Redis"
import * as Schema from "effect/Schema"
import { describeCause } from "./internal/describe.ts"

// -----------------------------------------------------------------------------
// models
// -----------------------------------------------------------------------------

/**
 * What a passing check saw.
 *
 * @example
 * ```ts
 * import type { RedisHealth } from "@effect-resilience/redis"
 *
 * const slow = (result: RedisHealth.CheckResult) => result.latencyMillis > 50
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface CheckResult {
  /** From sending `PING` to Redis' answer, in (fractional) milliseconds. */
  readonly latencyMillis: number
}

/**
 * Options for `layer`: the check's name and the monitor's options for it.
 *
 * @example
 * ```ts
 * import type { RedisHealth } from "@effect-resilience/redis"
 *
 * const options: RedisHealth.LayerOptions = { name: "cache", interval: "5 seconds", timeout: "1 second" }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface LayerOptions extends Omit<HealthMonitor.CheckOptions<unknown, never>, "name" | "check"> {
  /** The name of the check in the monitor. Default: `"redis"`. */
  readonly name?: string | undefined
}

// -----------------------------------------------------------------------------
// errors
// -----------------------------------------------------------------------------

/**
 * Redis did not answer the check's `PING` with `PONG`: the client is offline, the socket closed, the command timed
 * out, or Redis answered with an error. `cause` is the `RedisError`.
 *
 * @example
 * ```ts
 * import { RedisHealth } from "@effect-resilience/redis"
 *
 * const error = new RedisHealth.RedisHealthCheckFailed({
 *   message: "Redis health check (PING) failed: ClientOfflineError: The client is offline",
 *   latencyMillis: 0.2
 * })
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export class RedisHealthCheckFailed extends Schema.TaggedError<RedisHealthCheckFailed>()("RedisHealthCheckFailed", {
  message: Schema.String,
  latencyMillis: Schema.Finite,
  cause: Schema.optional(Schema.Defect())
}) {}

// -----------------------------------------------------------------------------
// checks
// -----------------------------------------------------------------------------

const nanosToMillis = (nanos: bigint): number => Number(nanos) / 1_000_000

/**
 * Checks Redis: sends `PING` and passes with its latency, or fails with `RedisHealthCheckFailed`.
 *
 * @example
 * ```ts
 * import { HealthMonitor } from "@effect-resilience/core"
 * import { RedisHealth, RedisStore } from "@effect-resilience/redis"
 * import { Effect } from "effect"
 *
 * const program = Effect.gen(function*() {
 *   const monitor = yield* HealthMonitor.HealthMonitor
 *   yield* monitor.register({ name: "redis", check: RedisHealth.check, interval: "10 seconds", timeout: "2 seconds" })
 * }).pipe(Effect.provide([HealthMonitor.layer(), RedisStore.layer({ url: "redis://127.0.0.1:6379" })]))
 * ```
 *
 * @since 0.1.0
 * @category checks
 */
export const check: Effect.Effect<CheckResult, RedisHealthCheckFailed, Redis.Redis> = Effect.gen(function*() {
  const redis = yield* Redis.Redis
  const startedAt = yield* Clock.monotonicTimeNanos
  const latency = Effect.map(Clock.monotonicTimeNanos, (now) => nanosToMillis(now - startedAt))
  const failed = (message: string, cause?: Redis.RedisError) =>
    Effect.flatMap(latency, (latencyMillis) =>
      Effect.fail(
        new RedisHealthCheckFailed({
          message: `Redis health check (PING) failed: ${message}`,
          latencyMillis,
          ...(cause === undefined ? {} : { cause })
        })
      ))
  const reply = yield* redis.send<unknown>("PING").pipe(
    Effect.catchTag("RedisError", (error) => failed(describeCause(error), error))
  )
  if (reply !== "PONG") return yield* failed(`expected PONG, got ${JSON.stringify(reply)}`)
  return { latencyMillis: yield* latency }
})

// -----------------------------------------------------------------------------
// layers
// -----------------------------------------------------------------------------

/**
 * Registers `check` on the `HealthMonitor` under `name` (default `"redis"`) with the monitor's options given, and
 * unregisters it when the layer is released. Invalid options fail the layer with `PolicyConfigError`.
 *
 * @example
 * ```ts
 * import { HealthMonitor } from "@effect-resilience/core"
 * import { RedisHealth, RedisStore } from "@effect-resilience/redis"
 * import { Layer } from "effect"
 *
 * const Monitoring = RedisHealth.layer({ interval: "10 seconds", timeout: "2 seconds", failureThreshold: 2 }).pipe(
 *   Layer.provideMerge(HealthMonitor.layer()),
 *   Layer.provide(RedisStore.layer({ url: "redis://127.0.0.1:6379" }))
 * )
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  options: LayerOptions = {}
): Layer.Layer<never, PolicyConfigError, HealthMonitor.HealthMonitor | Redis.Redis> => {
  const { name = "redis", ...monitorOptions } = options
  return Layer.effectDiscard(Effect.gen(function*() {
    const monitor = yield* HealthMonitor.HealthMonitor
    yield* Effect.acquireRelease(
      monitor.register({ ...monitorOptions, name, check }),
      // Released at shutdown: the check going away is no news for alerts or recovery.
      () => monitor.unregister(name, { quiet: true })
    )
  }))
}
