/**
 * Built-in checks for `HealthMonitor`: an HTTP endpoint, a circuit breaker's state, and free disk space. Each is a
 * plain `Effect` that succeeds when the target is healthy, fails with `HealthCheckFailed` when it is not, and fails
 * with `Warning` when it works but is degraded.
 *
 * **Details**
 *
 * - Any `Effect` is a check, so a custom check needs no helper: `check: db.query("SELECT 1")` counts success as
 *   passing and any failure or defect as failing. To report "degraded, not failing", fail with `Warning`.
 * - Options are validated each time the check runs; invalid ones fail it with `PolicyConfigError`, whose message
 *   the monitor shows as the check's last error.
 *
 * **Example** (Registering the built-in checks)
 *
 * ```ts
 * import { CircuitBreaker, HealthCheck, HealthMonitor } from "@effect-resilience/core"
 * import { Effect } from "effect"
 * import { FetchHttpClient } from "effect/http"
 * import * as fs from "node:fs"
 *
 * const program = Effect.gen(function*() {
 *   const monitor = yield* HealthMonitor.HealthMonitor
 *   const breaker = yield* CircuitBreaker.make({ name: "payments" })
 *   yield* monitor.register({ name: "api", check: HealthCheck.http({ url: "http://127.0.0.1:8080/health" }) })
 *   yield* monitor.register({ name: "payments", check: HealthCheck.circuitBreaker(breaker) })
 *   yield* monitor.register({
 *     name: "disk",
 *     critical: false,
 *     check: HealthCheck.diskSpace({
 *       path: "/",
 *       usage: (path) =>
 *         Effect.tryPromise(() => fs.promises.statfs(path)).pipe(
 *           Effect.map((s) => ({ free: s.bavail * s.bsize, total: s.blocks * s.bsize }))
 *         )
 *     })
 *   })
 * }).pipe(Effect.provide([HealthMonitor.layer(), FetchHttpClient.layer]))
 * ```
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as HttpClient from "effect/http/HttpClient"
import type * as HttpClientError from "effect/http/HttpClientError"
import * as Schema from "effect/Schema"
import type * as CircuitBreaker from "./CircuitBreaker.ts"
import { decode, DurationInput, millisOf, type PolicyConfigError, Probability } from "./PolicyConfig.ts"

// -----------------------------------------------------------------------------
// errors
// -----------------------------------------------------------------------------

/**
 * A check found its target unhealthy. `check` names the target; `latencyMillis` is how long it took to answer,
 * when it did.
 *
 * @example
 * ```ts
 * import { HealthCheck } from "@effect-resilience/core"
 *
 * const error = new HealthCheck.HealthCheckFailed({
 *   check: "GET http://127.0.0.1:8080/health",
 *   message: "GET http://127.0.0.1:8080/health returned 503, expected 2xx",
 *   latencyMillis: 12
 * })
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export class HealthCheckFailed extends Schema.TaggedError<HealthCheckFailed>()("HealthCheckFailed", {
  check: Schema.String,
  message: Schema.String,
  latencyMillis: Schema.optional(Schema.Finite)
}) {}

/**
 * A check found its target working but degraded: the monitor makes it `Degraded` at once, without counting a
 * failure.
 *
 * @example
 * ```ts
 * import { HealthCheck } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * const queueCheck = (depth: number) =>
 *   depth > 10_000 ? Effect.fail(new HealthCheck.Warning({ message: `queue depth ${depth}` })) : Effect.void
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export class Warning extends Schema.TaggedError<Warning>()("Warning", {
  message: Schema.String
}) {}

// -----------------------------------------------------------------------------
// http
// -----------------------------------------------------------------------------

/**
 * Options for `http`.
 *
 * @example
 * ```ts
 * import type { HealthCheck } from "@effect-resilience/core"
 *
 * const options: HealthCheck.HttpOptions = {
 *   url: "http://127.0.0.1:8080/health",
 *   expectStatus: (status) => status === 200 || status === 204,
 *   timeout: "2 seconds"
 * }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface HttpOptions {
  readonly url: string
  /** The status that passes, or a predicate on it. Default: any 2xx. */
  readonly expectStatus?: number | ((status: number) => boolean) | undefined
  /** Fails the check when no response has come by then. Default: none (the monitor's timeout applies). */
  readonly timeout?: Duration.Input | undefined
}

/**
 * What a passing `http` check saw.
 *
 * @example
 * ```ts
 * import type { HealthCheck } from "@effect-resilience/core"
 *
 * const slow = (result: HealthCheck.HttpResult) => result.latencyMillis > 500
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface HttpResult {
  readonly status: number
  /** From sending the request to receiving the response's status and headers. */
  readonly latencyMillis: number
}

const HttpOptionsSchema = Schema.Struct({
  url: Schema.NonEmptyString,
  expectStatus: Schema.Unknown.check(
    Schema.makeFilter((u) =>
      typeof u === "function" || (Number.isInteger(u) && (u as number) >= 100 && (u as number) <= 599)
        ? undefined
        : "Expected a status code (100 to 599) or a function"
    )
  ),
  timeout: Schema.optional(DurationInput({ positive: true }))
})

const is2xx = (status: number) => status >= 200 && status < 300

// The reason and its innermost message ("TransportError: connect ECONNREFUSED 127.0.0.1:8080"): the error's own
// message repeats the request, which the check's message already names.
const describeHttpError = (error: HttpClientError.HttpClientError): string => {
  const reason: { readonly _tag: string; readonly description?: string | undefined; readonly cause?: unknown } =
    error.reason
  if (reason.description !== undefined && reason.description !== "") return `${reason._tag}: ${reason.description}`
  let detail: string | undefined
  let cause = reason.cause
  for (let depth = 0; depth < 5 && typeof cause === "object" && cause !== null; depth++) {
    const message = (cause as { readonly message?: unknown }).message
    if (typeof message === "string" && message !== "") detail = message
    cause = (cause as { readonly cause?: unknown }).cause
  }
  return detail === undefined ? reason._tag : `${reason._tag}: ${detail}`
}

/**
 * Checks an HTTP endpoint with a `GET`: passes with the status and the latency when the status is the expected
 * one (default: any 2xx), fails with `HealthCheckFailed` otherwise or when the request fails.
 *
 * The response body is not read: the request is aborted once the status is in.
 *
 * @example
 * ```ts
 * import { HealthCheck, HealthMonitor } from "@effect-resilience/core"
 * import { Effect } from "effect"
 * import { FetchHttpClient } from "effect/http"
 *
 * const program = Effect.gen(function*() {
 *   const monitor = yield* HealthMonitor.HealthMonitor
 *   yield* monitor.register({
 *     name: "search",
 *     check: HealthCheck.http({ url: "http://search.internal/health", timeout: "2 seconds" }),
 *     interval: "10 seconds"
 *   })
 * }).pipe(Effect.provide([HealthMonitor.layer(), FetchHttpClient.layer]))
 * ```
 *
 * @since 0.1.0
 * @category checks
 */
export const http = (
  options: HttpOptions
): Effect.Effect<HttpResult, HealthCheckFailed | PolicyConfigError, HttpClient.HttpClient> => {
  const raw = { url: options.url, expectStatus: options.expectStatus ?? is2xx, timeout: options.timeout }
  const check = `GET ${options.url}`
  const expectStatus = options.expectStatus
  const accepts = typeof expectStatus === "number"
    ? (status: number) => status === expectStatus
    : expectStatus ?? is2xx
  const expected = typeof expectStatus === "number"
    ? String(expectStatus)
    : expectStatus === undefined
    ? "2xx"
    : "a status accepted by expectStatus"
  return Effect.gen(function*() {
    yield* decode(HttpOptionsSchema, raw, { kind: "http health check", policy: options.url })
    // Scoped, so that closing the scope aborts the request: the body is never read.
    const client = HttpClient.withScope(yield* HttpClient.HttpClient)
    const startedAt = yield* Clock.currentTimeMillis
    const latency = Effect.map(Clock.currentTimeMillis, (now) => now - startedAt)
    const request = client.get(options.url).pipe(
      Effect.catchTag("HttpClientError", (error) =>
        Effect.flatMap(latency, (latencyMillis) =>
          Effect.fail(
            new HealthCheckFailed({ check, message: `${check} failed: ${describeHttpError(error)}`, latencyMillis })
          )))
    )
    const timeout = options.timeout
    const response = timeout === undefined ? yield* request : yield* request.pipe(
      Effect.timeoutOrElse({
        duration: millisOf(timeout),
        orElse: () =>
          Effect.flatMap(latency, (latencyMillis) =>
            Effect.fail(
              new HealthCheckFailed({
                check,
                message: `${check} timed out after ${Duration.format(Duration.millis(millisOf(timeout)))}`,
                latencyMillis
              })
            ))
      })
    )
    const latencyMillis = yield* latency
    if (!accepts(response.status)) {
      return yield* new HealthCheckFailed({
        check,
        message: `${check} returned ${response.status}, expected ${expected}`,
        latencyMillis
      })
    }
    return { status: response.status, latencyMillis }
  }).pipe(Effect.scoped)
}

// -----------------------------------------------------------------------------
// circuit breaker
// -----------------------------------------------------------------------------

/**
 * Checks a circuit breaker: fails with `HealthCheckFailed` while the circuit of `key` (default: the default
 * circuit) is `Open` or `ForcedOpen`, warns while it is `HalfOpen`, and passes with the state otherwise.
 *
 * @example
 * ```ts
 * import { CircuitBreaker, HealthCheck, HealthMonitor } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * const program = Effect.gen(function*() {
 *   const monitor = yield* HealthMonitor.HealthMonitor
 *   const breaker = yield* CircuitBreaker.make({ name: "payments" })
 *   // An open breaker is already the verdict of many calls: one failing check is enough.
 *   yield* monitor.register({
 *     name: "payments",
 *     check: HealthCheck.circuitBreaker(breaker),
 *     warningThreshold: 1,
 *     failureThreshold: 1
 *   })
 * }).pipe(Effect.scoped, Effect.provide(HealthMonitor.layer()))
 * ```
 *
 * @since 0.1.0
 * @category checks
 */
export const circuitBreaker = (
  breaker: CircuitBreaker.CircuitBreaker<never>,
  key?: string
): Effect.Effect<CircuitBreaker.State, HealthCheckFailed | Warning> => {
  const check = key === undefined
    ? `circuit breaker "${breaker.name}"`
    : `circuit breaker "${breaker.name}" (key "${key}")`
  return Effect.flatMap(
    key === undefined ? breaker.state : breaker.stateKey(key),
    (state): Effect.Effect<CircuitBreaker.State, HealthCheckFailed | Warning> => {
      if (state === "Open" || state === "ForcedOpen") {
        return Effect.fail(
          new HealthCheckFailed({ check, message: `${check} is ${state === "Open" ? "open" : "forced open"}` })
        )
      }
      if (state === "HalfOpen") return Effect.fail(new Warning({ message: `${check} is half-open` }))
      return Effect.succeed(state)
    }
  )
}

// -----------------------------------------------------------------------------
// disk space
// -----------------------------------------------------------------------------

/**
 * Options for `diskSpace`. `usage` reads the free and total bytes of `path`; core has no file system access, so
 * the caller passes it. On Node:
 *
 * ```ts
 * import { Effect } from "effect"
 * import * as fs from "node:fs"
 *
 * const usage = (path: string) =>
 *   Effect.tryPromise(() => fs.promises.statfs(path)).pipe(
 *     Effect.map((s) => ({ free: s.bavail * s.bsize, total: s.blocks * s.bsize }))
 *   )
 * ```
 *
 * @example
 * ```ts
 * import type { HealthCheck } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * const options: HealthCheck.DiskSpaceOptions<never, never> = {
 *   path: "/var/lib/postgresql",
 *   warningFreeShare: 0.25,
 *   criticalFreeShare: 0.05,
 *   usage: () => Effect.succeed({ free: 40e9, total: 100e9 })
 * }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface DiskSpaceOptions<E, R> {
  readonly path: string
  /** Warns when the free share is below this. Default: 0.2. */
  readonly warningFreeShare?: number | undefined
  /** Fails when the free share is below this, at most `warningFreeShare`. Default: 0.1. */
  readonly criticalFreeShare?: number | undefined
  /** Reads the free and total bytes (or any one unit) of `path`. */
  readonly usage: (path: string) => Effect.Effect<{ readonly free: number; readonly total: number }, E, R>
}

/**
 * What a passing `diskSpace` check saw.
 *
 * @example
 * ```ts
 * import type { HealthCheck } from "@effect-resilience/core"
 *
 * const gigabytesFree = (disk: HealthCheck.DiskSpace) => disk.free / 1e9
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface DiskSpace {
  readonly path: string
  readonly free: number
  readonly total: number
  /** `free / total`. */
  readonly freeShare: number
}

const DiskSpaceSchema = Schema.Struct({
  path: Schema.NonEmptyString,
  warningFreeShare: Probability,
  criticalFreeShare: Probability
}).check(Schema.makeFilter((options) =>
  options.criticalFreeShare <= options.warningFreeShare
    ? undefined
    : {
      path: ["criticalFreeShare"],
      issue: `Expected at most warningFreeShare (${options.warningFreeShare}), got ${options.criticalFreeShare}`
    }
))

const percent = (share: number): string => `${Math.round(share * 1000) / 10}%`

/**
 * Checks free disk space: fails with `HealthCheckFailed` when the free share of `path` is below
 * `criticalFreeShare`, warns when it is below `warningFreeShare`, and passes with the figures otherwise. A share
 * exactly at a level is not below it. A failure of `usage` fails the check as it is.
 *
 * @example
 * ```ts
 * import { HealthCheck, HealthMonitor } from "@effect-resilience/core"
 * import { Effect } from "effect"
 * import * as fs from "node:fs"
 *
 * const program = Effect.gen(function*() {
 *   const monitor = yield* HealthMonitor.HealthMonitor
 *   yield* monitor.register({
 *     name: "disk",
 *     critical: false,
 *     interval: "1 minute",
 *     check: HealthCheck.diskSpace({
 *       path: "/",
 *       warningFreeShare: 0.2,
 *       criticalFreeShare: 0.1,
 *       usage: (path) =>
 *         Effect.tryPromise(() => fs.promises.statfs(path)).pipe(
 *           Effect.map((s) => ({ free: s.bavail * s.bsize, total: s.blocks * s.bsize }))
 *         )
 *     })
 *   })
 * }).pipe(Effect.provide(HealthMonitor.layer()))
 * ```
 *
 * @since 0.1.0
 * @category checks
 */
export const diskSpace = <E, R>(
  options: DiskSpaceOptions<E, R>
): Effect.Effect<DiskSpace, HealthCheckFailed | Warning | PolicyConfigError | E, R> => {
  const warningFreeShare = options.warningFreeShare ?? 0.2
  const criticalFreeShare = options.criticalFreeShare ?? 0.1
  const raw = { path: options.path, warningFreeShare, criticalFreeShare }
  const check = `disk ${options.path}`
  return decode(DiskSpaceSchema, raw, { kind: "disk space health check", policy: options.path }).pipe(
    Effect.andThen(Effect.suspend(() => options.usage(options.path))),
    Effect.flatMap(({ free, total }): Effect.Effect<DiskSpace, HealthCheckFailed | Warning> => {
      if (!(total > 0) || !(free >= 0)) {
        return Effect.fail(
          new HealthCheckFailed({ check, message: `${check}: usage reported ${free} free of ${total}` })
        )
      }
      const freeShare = free / total
      if (freeShare < criticalFreeShare) {
        return Effect.fail(
          new HealthCheckFailed({
            check,
            message: `${check}: ${percent(freeShare)} free, below the critical ${percent(criticalFreeShare)}`
          })
        )
      }
      if (freeShare < warningFreeShare) {
        return Effect.fail(
          new Warning({ message: `${check}: ${percent(freeShare)} free, below ${percent(warningFreeShare)}` })
        )
      }
      return Effect.succeed({ path: options.path, free, total, freeShare })
    })
  )
}
