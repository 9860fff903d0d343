/**
 * A resilient `HttpClient`: a middleware for `effect/http` clients that puts a circuit breaker per host, retries
 * with backoff that honour `Retry-After`, a per-attempt timeout and a retry budget around every request, all made
 * of the toolkit's own policies, so that they show in the registry, the metrics and the dashboard like any other.
 *
 * ```
 * circuit breaker, keyed by host   one outcome per call; a 5xx returned as a response counts as a failure
 *   retry (replayable requests)    connection errors, timeouts, 429/502/503/504; waits at least Retry-After
 *     timeout                      per attempt: a hung attempt is interrupted (and its request aborted)
 *       the request
 * ```
 *
 * **Details**
 *
 * - Circuits: one per host (the URL's `host`, with its port when it has one), under one breaker named `name`, or
 *   one per `key(request)`. A response `isFailureResponse` accepts (default: status 500 or above) is a failure for
 *   the breaker (its `isFailureResult`) and is still returned to the caller as a response. Connection errors,
 *   timeouts and a spent retry budget are failures too; a request the client could not even build (bad URL, body
 *   that would not encode) is the caller's mistake and is ignored. (`NodeHttpClient.layerUndici` reports a stream
 *   body that fails as a `TransportError`, which cannot be told from the host's: that one counts.)
 * - Retries: a connection error (`TransportError`), a per-attempt `TimeoutError`, and a response whose status is in
 *   `retry.statuses` (default 429, 502, 503, 504) are retried, with jittered exponential backoff. A `Retry-After`
 *   header, in delay-seconds or as an HTTP-date, sets the least wait; one that would stretch the wait past
 *   `retry.maxRetryAfter` ends the retries at once. When the retries are over, the caller gets the last response
 *   (a 503 is a response, not an error) or the last error.
 * - Only replayable requests are retried: an idempotent method (`GET`, `HEAD`, `OPTIONS`, `PUT`, `DELETE`,
 *   `TRACE`; set `retry.methods` to change the list), or any request with an `Idempotency-Key` header. A request
 *   with a stream body is never retried: the first attempt consumed it. Other requests get the timeout and the
 *   breaker, once.
 * - Budget: every retried call deposits in a retry budget and every retry withdraws (`retry.budget`, a budget of
 *   its own by default, or one shared with other clients); a retry it cannot pay for is not made and the call fails
 *   with `RetryBudgetExhausted`, or returns its last response when that was what failed.
 * - Registry and metrics: the breaker, the retry policy, the timeout and a `Policy` of the retry and the timeout
 *   are all named `name`: made under a `CircuitBreakerRegistry`, they are listed there and exported with its
 *   metrics.
 *
 * **Gotchas**
 *
 * - Statuses are read as values. Put `HttpClient.filterStatusOk` outside the middleware
 *   (`client.pipe(middleware.apply, HttpClient.filterStatusOk)`): inside it, a 503 becomes an error before the
 *   middleware sees its status or its `Retry-After`.
 * - A response the caller does not get is discarded (its body is not read, its connection is closed): a retried one
 *   before the next attempt; one the caller is interrupted away from (say while it waits to retry) at once; and one
 *   that came at its attempt's deadline, which the timeout fails all the same, at once too.
 * - The per-attempt timeout ends when the response's headers arrive: reading the body is the caller's, after the
 *   middleware has answered. Bound it where the upstream may stall mid-body
 *   (`response.json.pipe(Effect.timeout("5 seconds"))`).
 *
 * **Example** (A client for an inventory service)
 *
 * ```ts
 * import { ResilientHttpClient } from "@effect-resilience/http"
 * import { Effect } from "effect"
 * import { FetchHttpClient, HttpClient } from "effect/http"
 *
 * const program = Effect.gen(function*() {
 *   const inventory = yield* ResilientHttpClient.make({
 *     name: "inventory",
 *     timeout: "2 seconds",
 *     retry: { times: 3, base: "100 millis", maxRetryAfter: "10 seconds" }
 *   })
 *   const client = (yield* HttpClient.HttpClient).pipe(inventory.apply)
 *   const response = yield* client.get("http://inventory.internal/items/42")
 *   return response.status
 * }).pipe(Effect.scoped, Effect.provide(FetchHttpClient.layer))
 * ```
 *
 * @since 0.2.0
 */
import * as CircuitBreaker from "@effect-resilience/core/CircuitBreaker"
import * as Policy from "@effect-resilience/core/Policy"
import {
  decode,
  DurationInput,
  error as configError,
  millisOf,
  NonNegativeInt,
  type PolicyConfigError
} from "@effect-resilience/core/PolicyConfig"
import * as Retry from "@effect-resilience/core/Retry"
import * as Timeout from "@effect-resilience/core/Timeout"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as HttpClient from "effect/http/HttpClient"
import * as HttpClientError from "effect/http/HttpClientError"
import type * as HttpClientRequest from "effect/http/HttpClientRequest"
import type * as HttpClientResponse from "effect/http/HttpClientResponse"
import * as HttpMethod from "effect/http/HttpMethod"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as internal from "./internal/resilientHttpClient.ts"

// -----------------------------------------------------------------------------
// models
// -----------------------------------------------------------------------------

/**
 * What the middleware adds to a client's errors: a rejection by the host's open circuit, an attempt that timed
 * out, or a retry the budget refused.
 *
 * @example
 * ```ts
 * import type { ResilientHttpClient } from "@effect-resilience/http"
 *
 * const describe = (error: ResilientHttpClient.Rejection) =>
 *   error._tag === "CircuitBreakerError" ? `${error.key} is down` : error.message
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export type Rejection = CircuitBreaker.CircuitBreakerError | Timeout.TimeoutError | Retry.RetryBudgetExhausted

/**
 * Retry options. All are optional.
 *
 * @example
 * ```ts
 * import type { ResilientHttpClient } from "@effect-resilience/http"
 *
 * // Retry POSTs too: the API deduplicates them by request id.
 * const retry: ResilientHttpClient.RetryOptions = { times: 2, methods: ["GET", "POST"] }
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export interface RetryOptions {
  /** Retries after the first attempt. Default: 3. */
  readonly times?: number | undefined
  /** The first backoff delay, doubling after each retry (jittered x0.8-1.2). Default: 100 millis. */
  readonly base?: Duration.Input | undefined
  /** The longest backoff delay before jitter (so a delay is at most 1.2 times it). Default: 5 seconds. */
  readonly cap?: Duration.Input | undefined
  /**
   * The longest `Retry-After` worth waiting for: one longer than this and than the backoff's own wait ends the
   * retries. Default: 30 seconds.
   */
  readonly maxRetryAfter?: Duration.Input | undefined
  /** No retry starts later than this after the call began. Default: no limit. */
  readonly maxElapsed?: Duration.Input | undefined
  /** The methods retried (any request with an `Idempotency-Key` is too). Default: the idempotent ones. */
  readonly methods?: ReadonlyArray<HttpMethod.HttpMethod> | undefined
  /** The response statuses retried. Default: 429, 502, 503, 504. */
  readonly statuses?: ReadonlyArray<number> | undefined
  /** The retry budget, possibly shared with other clients and policies. Default: `Retry.budget()`, its own. */
  readonly budget?: Retry.RetryBudget | undefined
}

/**
 * Options for `make`. Only `name` is required.
 *
 * @example
 * ```ts
 * import { CircuitBreaker } from "@effect-resilience/core"
 * import type { ResilientHttpClient } from "@effect-resilience/http"
 *
 * const options: ResilientHttpClient.Options = {
 *   name: "payments",
 *   timeout: "3 seconds",
 *   retry: { times: 2, maxRetryAfter: "5 seconds" },
 *   circuitBreaker: { trip: CircuitBreaker.consecutive(3), openDuration: "20 seconds" },
 *   // A 429 is the server protecting itself: trip on it too.
 *   isFailureResponse: (response) => response.status >= 500 || response.status === 429
 * }
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export interface Options {
  /** Names the breaker, the retry policy, the timeout and the policy, in the registry and the metrics. */
  readonly name: string
  /** How long one attempt may take. Default: 10 seconds. */
  readonly timeout?: Duration.Input | undefined
  /** Retry options, or `false` for no retries. Default: see `RetryOptions`. */
  readonly retry?: RetryOptions | false | undefined
  /**
   * The breaker's options, but its name and `isFailureResult`. Default: `CircuitBreaker.make`'s, except
   * `halfOpen.maxProbeTime`: at least the longest one call can take (every attempt timing out, every retry waiting its
   * longest), so that a probe's outcome, after its retries, still counts.
   */
  readonly circuitBreaker?:
    | Omit<CircuitBreaker.Options<HttpClientResponse.HttpClientResponse>, "name" | "isFailureResult">
    | undefined
  /**
   * Which responses the breaker counts as failures (returned to the caller all the same). Default: status >= 500. If
   * it throws, the call fails with that defect (counted as one) and the response is discarded, its connection closed.
   */
  readonly isFailureResponse?: ((response: HttpClientResponse.HttpClientResponse) => boolean) | undefined
  /** The circuit of a request. Default: its URL's host, with its port when it has one. */
  readonly key?: ((request: HttpClientRequest.HttpClientRequest) => string) | undefined
}

/**
 * The middleware: `apply` wraps a client; the parts are there for snapshots and controls.
 *
 * @example
 * ```ts
 * import type { ResilientHttpClient } from "@effect-resilience/http"
 *
 * // Open the circuit of one host by hand, say while it is being migrated.
 * const drain = (middleware: ResilientHttpClient.Middleware) => middleware.circuitBreaker.forceOpen("api.internal:8080")
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export interface Middleware {
  readonly name: string
  /** Wraps a client: `client.pipe(middleware.apply)`. Every client it wraps shares the parts below. */
  readonly apply: <E, R>(client: HttpClient.HttpClient.With<E, R>) => HttpClient.HttpClient.With<E | Rejection, R>
  /** The breaker, one circuit per host. */
  readonly circuitBreaker: CircuitBreaker.CircuitBreaker<HttpClientResponse.HttpClientResponse>
  /** The retry policy, `undefined` with `retry: false`. */
  readonly retry: Retry.Retry<Retry.RetryBudgetExhausted> | undefined
  /** The per-attempt timeout. */
  readonly timeout: Timeout.Timeout
  /** The retry and the timeout as one named policy, as the registry lists it. */
  readonly policy: Policy.Policy<PolicyStages>
}

/**
 * The parts of a middleware's `policy`: the retry (absent with `retry: false`) and the timeout.
 *
 * @example
 * ```ts
 * import type { ResilientHttpClient } from "@effect-resilience/http"
 *
 * const perAttempt = (stages: ResilientHttpClient.PolicyStages) => stages.timeout.duration
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export interface PolicyStages {
  readonly retry?: Retry.Retry<Retry.RetryBudgetExhausted> | undefined
  readonly timeout: Timeout.Timeout
}

/**
 * A resilient client in context, for programs that call one dependency through it; `layer` provides it.
 *
 * @example
 * ```ts
 * import { ResilientHttpClient } from "@effect-resilience/http"
 * import { Effect } from "effect"
 *
 * const status = Effect.gen(function*() {
 *   const client = yield* ResilientHttpClient.ResilientHttpClient
 *   return (yield* client.get("http://search.internal/health")).status
 * })
 * ```
 *
 * @since 0.2.0
 * @category services
 */
export class ResilientHttpClient extends Context.Service<
  ResilientHttpClient,
  HttpClient.HttpClient.With<HttpClientError.HttpClientError | Rejection>
>()("@effect-resilience/http/ResilientHttpClient") {}

// -----------------------------------------------------------------------------
// constructors
// -----------------------------------------------------------------------------

const isFunction = (what: string) =>
  Schema.Unknown.check(
    Schema.makeFilter((input) => typeof input === "function" ? undefined : `Expected a function ${what}`)
  )

const OptionsSchema = Schema.Struct({
  name: Schema.NonEmptyString,
  timeout: DurationInput({ positive: true }),
  retry: Schema.Union([
    Schema.Literal(false),
    Schema.Struct({
      times: NonNegativeInt,
      base: DurationInput({ positive: true }),
      cap: DurationInput({ positive: true }),
      maxRetryAfter: DurationInput({ positive: false }),
      maxElapsed: Schema.optional(DurationInput({ positive: true })),
      methods: Schema.Array(Schema.Literals([...HttpMethod.all])),
      statuses: Schema.Array(Schema.Int.check(Schema.isBetween({ minimum: 100, maximum: 599 })))
    })
  ]),
  isFailureResponse: Schema.optional(isFunction("(response) => boolean")),
  key: Schema.optional(isFunction("(request) => string"))
})

const defaultIsFailureResponse = (response: HttpClientResponse.HttpClientResponse): boolean => response.status >= 500

// A request the client could not build says nothing about the host.
const defaultIsFailure = (error: unknown): boolean =>
  !(HttpClientError.isHttpClientError(error) &&
    (error.reason._tag === "InvalidUrlError" || error.reason._tag === "EncodeError"))

// What an attempt may fail with and still be worth another: the connection, the time, or a retry status.
const isRetryableError = (error: unknown): boolean =>
  error instanceof internal.RetryableResponse ||
  Timeout.isTimeoutError(error) ||
  (HttpClientError.isHttpClientError(error) && error.reason._tag === "TransportError")

// Once the retries are over, a retry status is the call's value again, for the caller and for the breaker.
const unwrap = <E, R>(
  self: Effect.Effect<HttpClientResponse.HttpClientResponse, E | internal.RetryableResponse, R>
): Effect.Effect<HttpClientResponse.HttpClientResponse, E, R> =>
  Effect.catch(self, (error) => {
    if (error instanceof internal.RetryableResponse) return Effect.succeed(error.response)
    if (error instanceof Retry.RetryBudgetExhausted && error.cause instanceof internal.RetryableResponse) {
      return Effect.succeed(error.cause.response)
    }
    return Effect.fail(error as E)
  })

// The breaker's own default.
const defaultMaxProbeMillis = 60_000

// The longest one call can take: every attempt timing out, and each retry waiting its longest (a jittered cap, or the
// longest `Retry-After` taken), up to `maxElapsed`. A probe must be given that long: one that outlives its
// `maxProbeTime` has its outcome dropped, and the circuit stays half-open behind a host that keeps failing.
const longestCall = (
  timeoutMillis: number,
  retry: false | {
    readonly times: number
    readonly cap: Duration.Input
    readonly maxRetryAfter: Duration.Input
    readonly maxElapsed?: Duration.Input | undefined
  }
): number => {
  if (retry === false) return timeoutMillis
  const wait = Math.max(1.2 * millisOf(retry.cap), millisOf(retry.maxRetryAfter))
  const unbounded = (retry.times + 1) * timeoutMillis + retry.times * wait
  return retry.maxElapsed === undefined ? unbounded : Math.min(unbounded, millisOf(retry.maxElapsed) + timeoutMillis)
}

/**
 * Makes the middleware. Options are validated with Schema; a bad value fails with `PolicyConfigError`, whose
 * issues name the option (`retry.base`, `timeout`); the breaker's own options are checked by `CircuitBreaker.make`.
 *
 * @example
 * ```ts
 * import { ResilientHttpClient } from "@effect-resilience/http"
 * import { Effect } from "effect"
 * import { FetchHttpClient, HttpClient } from "effect/http"
 *
 * const program = Effect.gen(function*() {
 *   const middleware = yield* ResilientHttpClient.make({ name: "catalog", retry: { times: 2 } })
 *   const client = (yield* HttpClient.HttpClient).pipe(middleware.apply, HttpClient.filterStatusOk)
 *   return yield* client.get("http://catalog.internal/products").pipe(
 *     Effect.flatMap((response) => response.json),
 *     Effect.catchTag("CircuitBreakerError", () => Effect.succeed([]))
 *   )
 * }).pipe(Effect.scoped, Effect.provide(FetchHttpClient.layer))
 * ```
 *
 * @since 0.2.0
 * @category constructors
 */
export const make: (options: Options) => Effect.Effect<Middleware, PolicyConfigError, Scope.Scope> = Effect
  .fnUntraced(function*(options: Options) {
    const name = options.name
    const context = { kind: "resilient http client", policy: String(name) }
    const retryOptions = options.retry === false ? false : {
      times: options.retry?.times ?? 3,
      base: options.retry?.base ?? "100 millis",
      cap: options.retry?.cap ?? "5 seconds",
      maxRetryAfter: options.retry?.maxRetryAfter ?? "30 seconds",
      methods: options.retry?.methods ?? internal.idempotentMethods,
      statuses: options.retry?.statuses ?? internal.retryStatuses,
      ...(options.retry?.maxElapsed === undefined ? {} : { maxElapsed: options.retry.maxElapsed })
    }
    const perAttempt = options.timeout ?? "10 seconds"
    yield* decode(OptionsSchema, {
      name,
      timeout: perAttempt,
      retry: retryOptions,
      ...(options.isFailureResponse === undefined ? {} : { isFailureResponse: options.isFailureResponse }),
      ...(options.key === undefined ? {} : { key: options.key })
    }, context)
    if (retryOptions !== false && millisOf(retryOptions.cap) < millisOf(retryOptions.base)) {
      return yield* Effect.fail(configError(context, "retry.cap", "Expected a cap of at least retry.base"))
    }

    const judge = options.isFailureResponse
    const circuitBreaker = yield* CircuitBreaker.make<HttpClientResponse.HttpClientResponse>({
      isFailure: defaultIsFailure,
      ...options.circuitBreaker,
      halfOpen: {
        ...options.circuitBreaker?.halfOpen,
        maxProbeTime: options.circuitBreaker?.halfOpen?.maxProbeTime ??
          Duration.millis(Math.max(defaultMaxProbeMillis, longestCall(millisOf(perAttempt), retryOptions)))
      },
      name,
      isFailureResult: judge === undefined ? defaultIsFailureResponse : (response) => {
        try {
          return judge(response)
        } catch (defect) {
          // The breaker gives the caller the defect, not the response: its connection is released here, rather than
          // held until the garbage collector gets to it.
          Effect.runFork(internal.discard(response))
          throw defect
        }
      }
    })
    const timeout = yield* Timeout.make({ name, duration: perAttempt })
    const retry = retryOptions === false ? undefined : yield* Retry.make({
      name,
      schedule: Retry.exponential({ base: retryOptions.base, cap: retryOptions.cap, times: retryOptions.times }).pipe(
        Retry.jittered
      ),
      while: isRetryableError,
      maxRetryAfter: retryOptions.maxRetryAfter,
      budget: options.retry === false ? undefined : options.retry?.budget ?? (yield* Retry.budget()),
      ...(retryOptions.maxElapsed === undefined ? {} : { maxElapsed: retryOptions.maxElapsed })
    })
    const stages: PolicyStages = retry === undefined ? { timeout } : { retry, timeout }
    const policy = yield* Policy.make<PolicyStages>({ name, ...stages })

    const methods: ReadonlySet<string> = new Set(retryOptions === false ? [] : retryOptions.methods)
    const statuses: ReadonlySet<number> = new Set(retryOptions === false ? [] : retryOptions.statuses)
    const keyOf = options.key ?? internal.hostKey

    // A retry status becomes an error while the retry decides, with the wait its `Retry-After` asks for.
    const classify = (
      response: HttpClientResponse.HttpClientResponse
    ): Effect.Effect<HttpClientResponse.HttpClientResponse, internal.RetryableResponse> => {
      if (!statuses.has(response.status)) return Effect.succeed(response)
      return Effect.flatMap(Clock.currentTimeMillis, (now) => {
        const wait = internal.retryAfterMillis(response.headers["retry-after"], now)
        return Effect.fail(
          new internal.RetryableResponse({
            response,
            retryAfter: wait === undefined ? undefined : Duration.millis(wait)
          })
        )
      })
    }

    // Every response an attempt gets is the caller's, or is discarded: its body is never read, and left alone it would
    // hold its connection until the garbage collector came round. The response of a retry status goes before the next
    // attempt; once the call is over, so does one the caller does not get: the call was interrupted (say while it
    // waits to retry), or the response came at its attempt's deadline, which the timeout fails all the same.
    const guarded = <E, R>(
      response: Effect.Effect<HttpClientResponse.HttpClientResponse, E, R>,
      retrying: boolean
    ) =>
      Effect.suspend(() => {
        let held: HttpClientResponse.HttpClientResponse | undefined
        const got = Effect.map(response, (value) => (held = value))
        const attempts = Effect.suspend(() => {
          const previous = held
          held = undefined
          const attempt = Effect.flatMap(got, classify)
          return previous === undefined ? attempt : Effect.andThen(internal.discard(previous), attempt)
        })
        return Effect.onExit(retrying ? unwrap(policy.protect(attempts)) : timeout.protect(got), (exit) => {
          const left = held
          held = undefined
          return left === undefined || (exit._tag === "Success" && exit.value === left)
            ? Effect.void
            : internal.discard(left)
        })
      })

    const apply = <E, R>(client: HttpClient.HttpClient.With<E, R>): HttpClient.HttpClient.With<E | Rejection, R> =>
      HttpClient.transform(client, (response, request) =>
        circuitBreaker.protectKey(
          guarded(response, retry !== undefined && internal.isReplayable(request, methods)),
          keyOf(request)
        ))

    return { name, apply, circuitBreaker, retry, timeout, policy }
  })

/**
 * Provides `ResilientHttpClient`: the `HttpClient` in context, wrapped by a middleware made with `options`.
 *
 * @example
 * ```ts
 * import { ResilientHttpClient } from "@effect-resilience/http"
 * import { Effect, Layer } from "effect"
 * import { FetchHttpClient } from "effect/http"
 *
 * const SearchClient = ResilientHttpClient.layer({ name: "search", timeout: "1 second" }).pipe(
 *   Layer.provide(FetchHttpClient.layer)
 * )
 *
 * const status = ResilientHttpClient.ResilientHttpClient.use((client) => client.get("http://search.internal/health"))
 *   .pipe(Effect.map((response) => response.status), Effect.provide(SearchClient))
 * ```
 *
 * @since 0.2.0
 * @category layers
 */
export const layer = (options: Options): Layer.Layer<ResilientHttpClient, PolicyConfigError, HttpClient.HttpClient> =>
  Layer.effect(
    ResilientHttpClient,
    Effect.gen(function*() {
      const middleware = yield* make(options)
      return middleware.apply(yield* HttpClient.HttpClient)
    })
  )
