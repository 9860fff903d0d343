/**
 * Alerts from health status changes: each change of a check's status becomes an `Alert` with a severity, sent
 * to the `AlertSink` service (a log by default, a webhook, or several at once), with duplicates folded into a
 * count and services under maintenance silenced.
 *
 * **Details**
 *
 * - Severity: a change to `Unhealthy` is `critical`, to `Degraded` is `warning`, back to `Healthy` is `info`.
 *   A change to `Unknown` (a check removed or reset) is `info`. The first good check of a service (`Unknown`
 *   to `Healthy`) is no alert: nothing was ever wrong.
 * - Deduplication: alerts are the same when their service, `from`, `to` and `error` are. An alert delivered at
 *   `t` opens a window `[t, t + dedupWindow)`: the same alert inside it is folded (not sent, not in `history`,
 *   counted in `deduplicated`, listed in the snapshot's `unreported`). The first same alert after the window is
 *   sent with `count` = 1 + the occurrences folded since the last delivery, so every occurrence is reported
 *   exactly once. An alert whose delivery failed opens no window: its occurrences are carried into the `count`
 *   of the next one.
 * - Suppression: an alert whose time is inside a maintenance window of its service (`from <= at < until`) is
 *   not sent: it is recorded in `history` with `suppressed: true` and counted in `suppressed`. Suppressed alerts
 *   do not take part in deduplication, so the first alert after maintenance is always sent.
 * - Alert times are the changes' `at`, so a change that waited in a queue is judged by when it happened.
 * - A sink that fails (or dies) does not stop alerting: the failure is logged, counted in `failed`, and the
 *   next change is handled as usual.
 * - `raised` = `sent` + `failed` + `deduplicated` + `suppressed`.
 * - `make` subscribes to `changes` before it returns, so no change published afterwards is missed. `layer(options)`
 *   does the same on the `HealthMonitor` in context: one line wires alerting to a monitor.
 *
 * **Gotchas**
 *
 * - Alerts are sent one at a time, in order: a slow sink delays the next alert. The webhook sink bounds each
 *   request with a timeout and fails fast while its breaker is open.
 * - Folded occurrences are reported by the next delivery of the same alert; if none comes, they stay in the
 *   snapshot's `unreported`.
 *
 * **Example** (Alerting a chat channel, with a planned maintenance)
 *
 * ```ts
 * import { Alerts } from "@effect-resilience/core"
 * import type { HealthMonitor } from "@effect-resilience/core"
 * import { Effect, Layer, Stream } from "effect"
 *
 * const ChatSink = Layer.succeed(Alerts.AlertSink, {
 *   send: (alert) => Effect.log(`#ops ${alert.severity}: ${alert.service} is ${alert.to}`)
 * })
 *
 * const alerting = (changes: Stream.Stream<HealthMonitor.StatusChange>) =>
 *   Effect.gen(function*() {
 *     const alerts = yield* Alerts.make({ changes, dedupWindow: "10 minutes" })
 *     yield* alerts.suppress("search", "2 hours") // reindexing tonight
 *     return alerts
 *   }).pipe(Effect.provide(ChatSink))
 * ```
 *
 * @since 0.1.0
 */
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as HttpClient from "effect/http/HttpClient"
import type * as HttpClientError from "effect/http/HttpClientError"
import * as HttpClientRequest from "effect/http/HttpClientRequest"
import type * as HttpClientResponse from "effect/http/HttpClientResponse"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Random from "effect/Random"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as CircuitBreaker from "./CircuitBreaker.ts"
import { HealthMonitor, type Status, type StatusChange } from "./HealthMonitor.ts"
import * as internal from "./internal/alerts.ts"
import * as metrics from "./internal/metrics.ts"
import {
  decode,
  DurationInput,
  error as configError,
  millisOf,
  orDefault,
  type PolicyConfigError
} from "./PolicyConfig.ts"
import * as Retry from "./Retry.ts"

// -----------------------------------------------------------------------------
// models
// -----------------------------------------------------------------------------

/**
 * How urgent an alert is: `critical` (now `Unhealthy`), `warning` (now `Degraded`) or `info` (a recovery, or a
 * check gone `Unknown`).
 *
 * @example
 * ```ts
 * import type { Alerts } from "@effect-resilience/core"
 *
 * const pages = (severity: Alerts.Severity) => severity === "critical"
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type Severity = internal.Severity

/**
 * The severities, most urgent first.
 *
 * @example
 * ```ts
 * import { Alerts } from "@effect-resilience/core"
 *
 * Alerts.severities // ["critical", "warning", "info"]
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export const severities: ReadonlyArray<Severity> = ["critical", "warning", "info"]

/**
 * One alert, as plain serializable data (a webhook posts it as JSON). `at` is the change's time, in epoch
 * milliseconds.
 *
 * @example
 * ```ts
 * import type { Alerts } from "@effect-resilience/core"
 *
 * const line = (alert: Alerts.Alert) =>
 *   `${alert.service}: ${alert.from} -> ${alert.to}${alert.count > 1 ? ` (x${alert.count})` : ""}`
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Alert {
  readonly service: string
  readonly from: Status
  readonly to: Status
  readonly severity: Severity
  /** The failure behind the change (`null` for a recovery). */
  readonly error: string | null
  readonly at: number
  /** Occurrences this alert reports: itself, plus the same alerts folded since the last one was delivered. */
  readonly count: number
  /** True when a maintenance window kept the alert from the sinks. */
  readonly suppressed: boolean
}

/**
 * The severity of a status change, or `null` when the change is no alert (`Unknown` to `Healthy`, the first good
 * check).
 *
 * @example
 * ```ts
 * import { Alerts } from "@effect-resilience/core"
 *
 * Alerts.severityOf("Healthy", "Unhealthy") // "critical"
 * Alerts.severityOf("Unhealthy", "Healthy") // "info"
 * Alerts.severityOf("Unknown", "Healthy") // null
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export const severityOf: (from: Status, to: Status) => Severity | null = internal.severityOf

/**
 * A maintenance window for one service. A number is a time in epoch milliseconds; any other duration (a
 * `Duration`, or a string like `"2 hours"`) is relative to when `make` runs. `from` defaults to then.
 *
 * @example
 * ```ts
 * import type { Alerts } from "@effect-resilience/core"
 *
 * const tonight: Alerts.MaintenanceWindow = { service: "search", from: "6 hours", until: "8 hours" }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface MaintenanceWindow {
  readonly service: string
  readonly from?: number | Duration.Input | undefined
  readonly until: number | Duration.Input
}

/**
 * A maintenance window as the snapshot shows it: `[from, until)` in epoch milliseconds.
 *
 * @example
 * ```ts
 * import type { Alerts } from "@effect-resilience/core"
 *
 * const minutesLeft = (m: Alerts.Maintenance, now: number) => Math.ceil((m.until - now) / 60_000)
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Maintenance {
  readonly service: string
  readonly from: number
  readonly until: number
}

/**
 * Occurrences of one alert that were folded and no sink has heard of yet; the next delivery of that alert
 * reports them in its `count`. `windowEndsAt` is `null` when the last delivery failed (no window is open).
 *
 * @example
 * ```ts
 * import type { Alerts } from "@effect-resilience/core"
 *
 * const flapping = (u: Alerts.Unreported) => u.count >= 10
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Unreported {
  readonly service: string
  readonly from: Status
  readonly to: Status
  readonly error: string | null
  readonly count: number
  readonly windowEndsAt: number | null
}

/**
 * Counts since `make`, as plain serializable data.
 *
 * @example
 * ```ts
 * import type { Alerts } from "@effect-resilience/core"
 *
 * const deliveryRate = (s: Alerts.Snapshot) => s.sent / Math.max(1, s.sent + s.failed)
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Snapshot {
  readonly name: string
  /** Changes that were alerts: `sent + failed + deduplicated + suppressed`. */
  readonly raised: number
  /** Alerts every sink accepted. */
  readonly sent: number
  readonly sentBySeverity: Readonly<Record<Severity, number>>
  /** Alerts folded into the window of an earlier one. */
  readonly deduplicated: number
  /** Alerts kept from the sinks by maintenance. */
  readonly suppressed: number
  /** Alerts a sink failed to take. */
  readonly failed: number
  readonly unreported: ReadonlyArray<Unreported>
  /** Maintenance windows not over yet. */
  readonly maintenance: ReadonlyArray<Maintenance>
}

/**
 * A running alerter. See the module docs for the semantics.
 *
 * @example
 * ```ts
 * import type { Alerts } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * const criticalSoFar = (alerts: Alerts.Alerts) =>
 *   Effect.map(alerts.history, (history) => history.filter((a) => a.severity === "critical").length)
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Alerts {
  readonly name: string
  /** The last 100 alerts raised, oldest first: sent, failed and suppressed ones (not the folded ones). */
  readonly history: Effect.Effect<ReadonlyArray<Alert>>
  readonly snapshot: Effect.Effect<Snapshot>
  /** Silences a service from now for `duration` (an invalid duration is a defect). */
  readonly suppress: (service: string, duration: Duration.Input) => Effect.Effect<void>
  /** Ends every maintenance window of a service, current or planned. */
  readonly unsuppress: (service: string) => Effect.Effect<void>
}

/**
 * The `Alerts` in context.
 *
 * @example
 * ```ts
 * import { Alerts } from "@effect-resilience/core"
 *
 * const silenceDuringDeploy = Alerts.Alerts.use((alerts) => alerts.suppress("api", "15 minutes"))
 * ```
 *
 * @since 0.1.0
 * @category services
 */
export const Alerts: Context.Service<Alerts, Alerts> = Context.Service<Alerts>("@effect-resilience/core/Alerts")

/**
 * Options for `make`. Only `changes` is required.
 *
 * @example
 * ```ts
 * import type { Alerts, HealthMonitor } from "@effect-resilience/core"
 * import { Stream } from "effect"
 *
 * declare const changes: Stream.Stream<HealthMonitor.StatusChange>
 *
 * const options: Alerts.Options = {
 *   changes,
 *   dedupWindow: "10 minutes",
 *   maintenance: [{ service: "search", until: "2 hours" }]
 * }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** The status changes to alert on, e.g. a health monitor's `changes`. */
  readonly changes: Stream.Stream<StatusChange>
  /** Names the alerter in logs and metrics. Default: "alerts". */
  readonly name?: string | undefined
  /** The same alert within this long of a delivered one is folded. Default: 5 minutes; 0 turns it off. */
  readonly dedupWindow?: Duration.Input | undefined
  /** Maintenance windows known in advance. */
  readonly maintenance?: ReadonlyArray<MaintenanceWindow> | undefined
}

// -----------------------------------------------------------------------------
// sinks
// -----------------------------------------------------------------------------

/**
 * A sink could not take an alert. `sink` names it (several, comma-separated, when `many` collects failures).
 *
 * @example
 * ```ts
 * import { Alerts } from "@effect-resilience/core"
 *
 * const error = new Alerts.AlertSinkError({ sink: "alerts-webhook", reason: "HTTP 503" })
 * error.message // 'Alert sink "alerts-webhook" failed: HTTP 503'
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export class AlertSinkError extends Schema.TaggedError<AlertSinkError>()("AlertSinkError", {
  sink: Schema.String,
  reason: Schema.String
}) {
  override get message(): string {
    return `Alert sink "${this.sink}" failed: ${this.reason}`
  }
}

/**
 * What a sink does: take one alert.
 *
 * @example
 * ```ts
 * import type { Alerts } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * const console: Alerts.Sink = { send: (alert) => Effect.sync(() => globalThis.console.log(alert)) }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Sink {
  readonly send: (alert: Alert) => Effect.Effect<void, AlertSinkError>
}

/**
 * Where alerts go. `make` uses the one in context, and logs alerts when there is none.
 *
 * @example
 * ```ts
 * import { Alerts } from "@effect-resilience/core"
 * import { Effect, Layer } from "effect"
 *
 * const Quiet = Layer.succeed(Alerts.AlertSink, { send: () => Effect.void })
 * ```
 *
 * @since 0.1.0
 * @category services
 */
export class AlertSink extends Context.Service<AlertSink, Sink>()("@effect-resilience/core/AlertSink") {}

const describe = (alert: Alert): string =>
  `${alert.service}: ${alert.from} -> ${alert.to}${alert.error === null ? "" : ` (${alert.error})`}${
    alert.count > 1 ? `, ${alert.count} times` : ""
  }`

/**
 * Logs each alert: `logError` for critical, `logWarning` for warning, `logInfo` for info, with the alert's
 * fields as annotations. Never fails.
 *
 * @example
 * ```ts
 * import { Alerts } from "@effect-resilience/core"
 *
 * const sink: Alerts.Sink = Alerts.logSink
 * ```
 *
 * @since 0.1.0
 * @category sinks
 */
export const logSink: Sink = {
  send: (alert) => {
    const message = `Alert: ${describe(alert)}`
    const log = alert.severity === "critical"
      ? Effect.logError(message)
      : alert.severity === "warning"
      ? Effect.logWarning(message)
      : Effect.logInfo(message)
    return Effect.annotateLogs(log, { ...alert })
  }
}

// A sink that throws instead of returning an effect has failed to send, as one that dies has: a broken sink must not
// stop alerting, nor keep the other sinks of `many` from their alert.
const sendTo = (sink: Sink, alert: Alert): Effect.Effect<void, AlertSinkError> => Effect.suspend(() => sink.send(alert))

/**
 * Sends each alert to every sink at once. One failing sink does not stop the others; when any fails, the result
 * fails with one `AlertSinkError` naming every failed sink and its reason.
 *
 * @example
 * ```ts
 * import { Alerts } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * const pager: Alerts.Sink = { send: () => Effect.void }
 * const both = Alerts.many([Alerts.logSink, pager])
 * ```
 *
 * @since 0.1.0
 * @category sinks
 */
export const many = (sinks: ReadonlyArray<Sink>): Sink => ({
  send: (alert) =>
    Effect.forEach(sinks, (sink) => Effect.exit(sendTo(sink, alert)), { concurrency: "unbounded" }).pipe(
      Effect.flatMap((exits) => {
        const failures: Array<{ readonly sink: string; readonly reason: string }> = []
        for (const exit of exits) {
          if (Exit.isSuccess(exit)) continue
          const error = Cause.findErrorOption(exit.cause)
          failures.push(
            Option.isSome(error)
              ? error.value
              : { sink: "unknown", reason: Cause.pretty(exit.cause) }
          )
        }
        return failures.length === 0 ? Effect.void : Effect.fail(
          new AlertSinkError({
            sink: failures.map((f) => f.sink).join(", "),
            reason: failures.map((f) => `${f.sink}: ${f.reason}`).join("; ")
          })
        )
      })
    )
})

/**
 * Options for the webhook sink. Only `url` is required.
 *
 * @example
 * ```ts
 * import { Alerts, CircuitBreaker, Retry } from "@effect-resilience/core"
 *
 * const options: Alerts.WebhookOptions = {
 *   url: "https://hooks.example.com/alerts",
 *   headers: { authorization: "Bearer s3cret" },
 *   breaker: { trip: CircuitBreaker.consecutive(3), openDuration: "1 minute" },
 *   retry: Retry.exponential({ base: "1 second", cap: "10 seconds", times: 3 })
 * }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface WebhookOptions {
  readonly url: string
  readonly headers?: Readonly<Record<string, string>> | undefined
  /**
   * The sink's own breaker, named `name`. Default: the breaker defaults (opens after 5 failed alerts, for 30s),
   * except `halfOpen.maxProbeTime`: at least the longest one alert can take (every attempt timing out, every retry
   * waiting its longest), so that a probe's outcome, after its retries, still counts.
   */
  readonly breaker?: Omit<CircuitBreaker.Options, "name"> | undefined
  /**
   * Delays between attempts of one alert. Transport errors, timeouts, 5xx, 408 and 429 are retried; other
   * statuses are not. Default: `Retry.exponential({ base: "500 millis", cap: "5 seconds", times: 3 })`.
   */
  readonly retry?: Schedule.Schedule<unknown, unknown> | undefined
  /** Each request's time limit. Default: 10 seconds. */
  readonly timeout?: Duration.Input | undefined
  /** Names the sink in errors, and its breaker and retry policy. Default: "alerts-webhook". */
  readonly name?: string | undefined
}

// Local to the sink: callers only ever see `AlertSinkError`.
class WebhookFailure extends Data.TaggedError("WebhookFailure")<{
  readonly reason: string
  readonly retryable: boolean
}> {}

const reasonWords: Record<HttpClientError.HttpClientError["reason"]["_tag"], string> = {
  TransportError: "Transport error",
  InvalidUrlError: "Invalid URL",
  EncodeError: "Encode error",
  StatusCodeError: "Status code error",
  DecodeError: "Decode error",
  EmptyBodyError: "Empty body"
}

// Scheme and host, no userinfo: `https://user:pass@hooks.example.com/T0/s3cret` gives `https://hooks.example.com`.
const ORIGIN = /^(https?:\/\/)(?:[^/?#@]*@)?([^/?#]+)/i

// A webhook's URL often holds its secret (Slack's and Discord's in the path, others a token in the query), and sink
// errors are logged: they name the origin only, and the innermost cause (`connect ECONNREFUSED ...`), which says what
// went wrong where the client's own message says "Transport error (POST <the whole URL>)".
const describeHttpError = (error: HttpClientError.HttpClientError, url: string): string => {
  const scheme = ORIGIN.exec(url)
  const origin = scheme === null ? "the webhook" : scheme[1] + scheme[2]
  let detail = error.reason.description
  for (let cause: unknown = error.reason.cause; cause instanceof Error; cause = cause.cause) {
    const code = (cause as { readonly code?: unknown }).code
    if (cause.message !== "") detail = cause.message
    else if (typeof code === "string") detail = code
  }
  // Some causes quote the URL (fetch's refusal of one with credentials).
  if (detail !== undefined) detail = detail.replaceAll(url, origin)
  return `${reasonWords[error.reason._tag]}${detail === undefined ? "" : `: ${detail}`} (POST ${origin})`
}

const fromHttpError = (error: HttpClientError.HttpClientError, url: string): WebhookFailure => {
  const response = error.response
  if (response === undefined) {
    // No answer at all (refused, reset, bad URL): worth another try unless the request itself is wrong.
    return new WebhookFailure({
      reason: describeHttpError(error, url),
      retryable: error.reason._tag === "TransportError"
    })
  }
  const status = response.status
  return new WebhookFailure({
    reason: `HTTP ${status}`,
    retryable: status >= 500 || status === 408 || status === 429
  })
}

// A failed answer's body is of no use, and left unread it holds its connection (a body that stalls, for ever): a read
// of it interrupted as soon as it starts aborts the request, which closes the connection now.
const discard = (response: HttpClientResponse.HttpClientResponse): Effect.Effect<void> =>
  Effect.flatMap(
    Effect.forkChild(Stream.runDrain(response.stream), { startImmediately: true }),
    (fiber) => Effect.asVoid(Fiber.interrupt(fiber))
  )

// The breaker's own default.
const breakerMaxProbeMillis = 60_000

// Every jitter at its longest: each draw just under 1.
const topDraws: Random.Random = {
  nextIntUnsafe: () => Number.MAX_SAFE_INTEGER,
  nextDoubleUnsafe: () => 1 - Number.EPSILON / 2
}

// The longest one alert can take: every attempt timing out (and a second more, for it to stop), every delay of the
// schedule at its longest. A half-open probe must be given that long: one that outlives its `maxProbeTime` has its
// outcome dropped, and the breaker stays half-open behind a dead webhook, every alert a probe that runs to its last
// retry. A schedule that has not ended after 100 retries (or waits for ever) is taken to never end: its alerts to a
// dead webhook never end either. Stepping it here runs its effects (a `Schedule.tap`'s) once more.
const longestAlert = (schedule: Schedule.Schedule<unknown, unknown>, timeoutMillis: number): Effect.Effect<number> =>
  Effect.gen(function*() {
    const step = yield* Schedule.toStep(schedule)
    const failure = new WebhookFailure({ reason: "HTTP 503", retryable: true })
    const attempt = timeoutMillis + 1000
    let elapsed = attempt
    for (let retries = 0; retries < 100 && Number.isFinite(elapsed); retries++) {
      const decision = yield* Effect.exit(step(elapsed, failure))
      if (decision._tag === "Failure") return elapsed
      elapsed += Duration.toMillis(decision.value[1]) + attempt
    }
    return 0
  }).pipe(Effect.provideService(Random.Random, topDraws))

const WebhookSchema = Schema.Struct({
  url: Schema.String.check(Schema.isPattern(/^https?:\/\/[^\s/]+\S*$/, {
    message: "Expected an absolute http(s) URL"
  })),
  name: Schema.NonEmptyString,
  timeout: DurationInput({ positive: true })
})

/**
 * A sink that posts each alert as JSON to `url` through `HttpClient`. Each request is bounded by `timeout`,
 * retried by its own retry policy, and guarded by its own circuit breaker (outside the retries, so that it sees
 * one outcome per alert): while the breaker is open, alerts fail at once. Every failure is an `AlertSinkError`, which
 * names the webhook by its origin only: the URL's path and query, where webhooks keep their secrets, stay out of errors
 * and logs.
 *
 * @example
 * ```ts
 * import { Alerts } from "@effect-resilience/core"
 * import { Effect } from "effect"
 * import { FetchHttpClient } from "effect/http"
 *
 * const program = Effect.gen(function*() {
 *   const sink = yield* Alerts.webhook({ url: "https://hooks.example.com/alerts" })
 *   return sink
 * }).pipe(Effect.scoped, Effect.provide(FetchHttpClient.layer))
 * ```
 *
 * @since 0.1.0
 * @category sinks
 */
export const webhook: (
  options: WebhookOptions
) => Effect.Effect<Sink, PolicyConfigError, HttpClient.HttpClient | Scope.Scope> = Effect.fnUntraced(
  function*(options: WebhookOptions) {
    const name = orDefault(options.name, "alerts-webhook")
    const raw = { url: options.url, name, timeout: orDefault(options.timeout, "10 seconds") }
    yield* decode(WebhookSchema, raw, { kind: "alert sink", policy: String(name) })
    const timeout = Duration.millis(millisOf(raw.timeout))
    const client = HttpClient.filterStatusOk(yield* HttpClient.HttpClient)
    const schedule = options.retry ?? Retry.exponential({ base: "500 millis", cap: "5 seconds", times: 3 })
    const maxProbeTime = options.breaker?.halfOpen?.maxProbeTime ??
      Duration.millis(Math.max(breakerMaxProbeMillis, yield* longestAlert(schedule, millisOf(raw.timeout))))
    const breaker = yield* CircuitBreaker.make({
      ...options.breaker,
      halfOpen: { ...options.breaker?.halfOpen, maxProbeTime },
      name
    })
    const retry = yield* Retry.make({
      name,
      schedule,
      while: (error) => error instanceof WebhookFailure && error.retryable
    })
    const request = HttpClientRequest.post(options.url).pipe(
      HttpClientRequest.setHeaders(options.headers ?? {})
    )
    const post = (alert: Alert): Effect.Effect<void, WebhookFailure> =>
      client.execute(HttpClientRequest.bodyJsonUnsafe(request, alert)).pipe(
        // Read the body so that the connection is released.
        Effect.flatMap((response) => Effect.ignore(response.text)),
        Effect.catch((error) =>
          error.response === undefined
            ? Effect.fail(fromHttpError(error, options.url))
            : Effect.andThen(discard(error.response), Effect.fail(fromHttpError(error, options.url)))
        ),
        Effect.timeoutOrElse({
          duration: timeout,
          orElse: () =>
            Effect.fail(
              new WebhookFailure({ reason: `timed out after ${Duration.format(timeout)}`, retryable: true })
            )
        })
      )
    return {
      send: (alert) =>
        post(alert).pipe(
          retry.protect,
          breaker.protect,
          Effect.mapError((error) =>
            new AlertSinkError({ sink: name, reason: error._tag === "WebhookFailure" ? error.reason : error.message })
          )
        )
    } satisfies Sink
  }
)

/**
 * Provides the log sink.
 *
 * @example
 * ```ts
 * import { Alerts } from "@effect-resilience/core"
 * import type { HealthMonitor } from "@effect-resilience/core"
 * import { Effect, Stream } from "effect"
 *
 * const alerting = (changes: Stream.Stream<HealthMonitor.StatusChange>) =>
 *   Alerts.make({ changes }).pipe(Effect.provide(Alerts.layerLog))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerLog: Layer.Layer<AlertSink> = Layer.succeed(AlertSink, logSink)

/**
 * Provides the webhook sink (see `webhook`).
 *
 * @example
 * ```ts
 * import { Alerts } from "@effect-resilience/core"
 * import { Layer } from "effect"
 * import { FetchHttpClient } from "effect/http"
 *
 * const WebhookLive = Alerts.layerWebhook({ url: "https://hooks.example.com/alerts" }).pipe(
 *   Layer.provide(FetchHttpClient.layer)
 * )
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerWebhook = (
  options: WebhookOptions
): Layer.Layer<AlertSink, PolicyConfigError, HttpClient.HttpClient> => Layer.effect(AlertSink, webhook(options))

/**
 * Provides a sink that sends to the sinks of every layer at once (see `many`). Each layer is built on its own.
 *
 * @example
 * ```ts
 * import { Alerts } from "@effect-resilience/core"
 * import { Layer } from "effect"
 * import { FetchHttpClient } from "effect/http"
 *
 * const Everywhere = Alerts.layerMany([
 *   Alerts.layerLog,
 *   Alerts.layerWebhook({ url: "https://hooks.example.com/alerts" })
 * ]).pipe(Layer.provide(FetchHttpClient.layer))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerMany = <const Layers extends ReadonlyArray<Layer.Layer<AlertSink, unknown, unknown>>>(
  layers: Layers
): Layer.Layer<
  AlertSink,
  Layers[number] extends Layer.Layer<AlertSink, infer E, infer _R> ? E : never,
  Layers[number] extends Layer.Layer<AlertSink, infer _E, infer R> ? R : never
> =>
  // Each layer is built on its own: merged, they would all provide the same `AlertSink` and only one would remain.
  Layer.effect(
    AlertSink,
    Effect.map(
      Effect.forEach(layers, (layer) => Effect.map(Layer.build(layer), (context) => Context.get(context, AlertSink))),
      many
    )
  ) as never

// -----------------------------------------------------------------------------
// constructors
// -----------------------------------------------------------------------------

const MomentSchema = Schema.Unknown.check(Schema.makeFilter((input) =>
  typeof input === "number"
    ? Number.isFinite(input) ? undefined : `Expected a finite epoch time in milliseconds, got ${input}`
    : Schema.decodeUnknownExit(DurationInput({ positive: false }))(input)._tag === "Success"
    ? undefined
    : "Expected an epoch time in milliseconds, or a duration from now (a Duration or a string like \"2 hours\")"
))

const OptionsSchema = Schema.Struct({
  name: Schema.NonEmptyString,
  dedupWindow: DurationInput({ positive: false }),
  maintenance: Schema.Array(Schema.Struct({
    service: Schema.NonEmptyString,
    from: MomentSchema,
    until: MomentSchema
  }))
})

const SuppressSchema = Schema.Struct({ service: Schema.NonEmptyString, duration: DurationInput({ positive: false }) })

const momentAt = (input: number | Duration.Input, now: number): number =>
  typeof input === "number" ? input : now + millisOf(input)

// Enough to remember every alert kind a real system has, and bounded against errors that embed ids or times.
const maxDedupEntries = 1_000
const historySize = 100

/**
 * Starts alerting: a fiber, for as long as the scope is open, turns each change of `changes` into an alert and
 * sends it to the `AlertSink` in context (the log sink when there is none), deduplicated and suppressed as the
 * module docs say. Options are validated with Schema; a bad value fails with `PolicyConfigError`.
 *
 * **Metrics** (Effect `Metric`s, attribute `policy`, read when exported): `alerts_sent_total` (by `severity`),
 * `alerts_deduplicated_total`, `alerts_suppressed_total` and `alerts_sink_failures_total`.
 *
 * @example
 * ```ts
 * import { Alerts } from "@effect-resilience/core"
 * import type { HealthMonitor } from "@effect-resilience/core"
 * import { Effect, Stream } from "effect"
 *
 * const alerting = (changes: Stream.Stream<HealthMonitor.StatusChange>) =>
 *   Effect.gen(function*() {
 *     const alerts = yield* Alerts.make({
 *       changes,
 *       dedupWindow: "10 minutes",
 *       maintenance: [{ service: "search", from: "6 hours", until: "8 hours" }]
 *     })
 *     return yield* alerts.snapshot
 *   }).pipe(Effect.scoped)
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: (options: Options) => Effect.Effect<Alerts, PolicyConfigError, Scope.Scope> = Effect.fnUntraced(
  function*(options: Options) {
    const name = orDefault(options.name, "alerts")
    const context = { kind: "alerts", policy: String(name) }
    const raw = {
      name,
      dedupWindow: orDefault(options.dedupWindow, "5 minutes"),
      maintenance: (options.maintenance ?? []).map((window) => ({
        service: window.service,
        from: orDefault(window.from, 0),
        until: window.until
      }))
    }
    yield* decode(OptionsSchema, raw, context)
    const startedAt = yield* Clock.currentTimeMillis
    let windows: Array<internal.Window> = []
    for (let i = 0; i < raw.maintenance.length; i++) {
      const window = raw.maintenance[i]
      const from = options.maintenance?.[i].from === undefined ? startedAt : momentAt(window.from, startedAt)
      const until = momentAt(window.until, startedAt)
      if (until <= from) {
        return yield* Effect.fail(
          configError(context, `maintenance[${i}].until`, `Expected a time after from (${from}), got ${until}`)
        )
      }
      windows.push({ service: window.service, from, until })
    }

    const sink = Option.getOrElse(yield* Effect.serviceOption(AlertSink), () => logSink)
    const dedup = new internal.Dedup(millisOf(raw.dedupWindow), maxDedupEntries)
    const history = new internal.Ring<Alert>(historySize)
    const totals = { raised: 0, sent: 0, deduplicated: 0, suppressed: 0, failed: 0 }
    const sentBySeverity: Record<Severity, number> = { critical: 0, warning: 0, info: 0 }

    // Alerting stopped (its scope closing) while the sink sends: a failed send, carried like any other, so that
    // every occurrence raised is still counted once.
    const deliver = (alert: Alert, key: string): Effect.Effect<void> => {
      let settled = false
      const sent = Effect.flatMap(Effect.exit(sendTo(sink, alert)), (exit) => {
        settled = true
        if (Exit.isSuccess(exit)) {
          dedup.delivered(key, alert, alert.at)
          totals.sent++
          sentBySeverity[alert.severity]++
          return Effect.void
        }
        dedup.failed(key, alert, alert.count)
        totals.failed++
        // A broken sink must not stop alerting: say so, and go on with the next change.
        return Effect.logWarning(`Alert not delivered: ${describe(alert)}`, exit.cause).pipe(
          Effect.annotateLogs({ alerts: name })
        )
      })
      return Effect.onInterrupt(sent, () =>
        Effect.sync(() => {
          if (settled) return
          dedup.failed(key, alert, alert.count)
          totals.failed++
        }))
    }

    const handle = (change: StatusChange): Effect.Effect<void> => {
      const severity = internal.severityOf(change.from, change.to)
      if (severity === null) return Effect.void
      totals.raised++
      const base = {
        service: change.service,
        from: change.from,
        to: change.to,
        severity,
        error: change.error,
        at: change.at
      }
      // Windows are dropped by the time of the changes handled (they come in order), never by a read's: a change
      // that waited behind a slow sink is judged by when it happened, even once its window is over.
      if (windows.some((window) => window.until <= change.at)) {
        windows = windows.filter((window) => window.until > change.at)
      }
      if (internal.suppresses(windows, change.service, change.at)) {
        totals.suppressed++
        history.push({ ...base, count: 1, suppressed: true })
        return Effect.void
      }
      const key = internal.keyOf(change)
      const count = dedup.admit(key, change.at)
      if (count === 0) {
        totals.deduplicated++
        return Effect.void
      }
      const alert: Alert = { ...base, count, suppressed: false }
      history.push(alert)
      return deliver(alert, key)
    }

    // Started at once, so that it subscribes to `changes` before `make` returns: no change after it is missed.
    yield* Stream.runForEach(options.changes, handle).pipe(Effect.forkScoped({ startImmediately: true }))

    const by = { policy: name }
    yield* metrics.register([
      ...severities.map((severity) =>
        metrics.counter(
          "alerts_sent_total",
          "Alerts delivered, by severity",
          { ...by, severity },
          () => sentBySeverity[severity]
        )
      ),
      metrics.counter(
        "alerts_deduplicated_total",
        "Alerts folded into an earlier one",
        by,
        () => totals.deduplicated
      ),
      metrics.counter("alerts_suppressed_total", "Alerts silenced by maintenance", by, () => totals.suppressed),
      metrics.counter("alerts_sink_failures_total", "Alerts a sink failed to take", by, () => totals.failed)
    ])

    const alerts: Alerts = {
      name,
      history: Effect.sync(() => history.toArray()),
      snapshot: Effect.map(Clock.currentTimeMillis, (now): Snapshot => ({
        name,
        ...totals,
        sentBySeverity: { ...sentBySeverity },
        unreported: dedup.pending().map((entry) => ({
          service: entry.service,
          from: entry.from,
          to: entry.to,
          error: entry.error,
          count: entry.unreported,
          windowEndsAt: entry.openedAt < 0 ? null : entry.openedAt + dedup.windowMillis
        })),
        maintenance: windows.filter((window) => window.until > now).map((window) => ({ ...window }))
      })),
      suppress: (service, duration) =>
        decode(SuppressSchema, { service, duration }, context).pipe(
          Effect.orDie,
          Effect.andThen(Clock.currentTimeMillis),
          Effect.map((now) => {
            windows = [...windows, { service, from: now, until: now + millisOf(duration) }]
          })
        ),
      unsuppress: (service) =>
        Effect.sync(() => {
          windows = windows.filter((window) => window.service !== service)
        })
    }
    return alerts
  }
)

/**
 * Options for `layer`: `make`'s, but for `changes`, which the layer takes from the `HealthMonitor` in context.
 *
 * @example
 * ```ts
 * import type { Alerts } from "@effect-resilience/core"
 *
 * const options: Alerts.LayerOptions = { dedupWindow: "10 minutes" }
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export type LayerOptions = Omit<Options, "changes">

/**
 * Provides `Alerts` on the status changes of the `HealthMonitor` in context, sent to the `AlertSink` in context (the
 * log sink when there is none). Alerting starts when the layer is built, and stops when it is released.
 *
 * @example
 * ```ts
 * import { Alerts, HealthMonitor } from "@effect-resilience/core"
 * import { Layer } from "effect"
 *
 * // A monitor, and alerts on it to the log: one line each.
 * const Monitoring = Alerts.layer({ dedupWindow: "10 minutes" }).pipe(
 *   Layer.provideMerge(HealthMonitor.layer()),
 *   Layer.provide(Alerts.layerLog)
 * )
 * ```
 *
 * @since 0.2.0
 * @category layers
 */
export const layer = (options?: LayerOptions | undefined): Layer.Layer<Alerts, PolicyConfigError, HealthMonitor> =>
  Layer.effect(
    Alerts,
    Effect.gen(function*() {
      const monitor = yield* HealthMonitor
      return yield* make({ ...options, changes: monitor.changes })
    })
  )
