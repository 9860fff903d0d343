/**
 * The pure parts of the resilient HttpClient: reading `Retry-After`, which requests may be sent again, and the key
 * of a request's circuit.
 *
 * @internal
 */
import * as Data from "effect/Data"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import type * as HttpBody from "effect/http/HttpBody"
import type * as HttpClientRequest from "effect/http/HttpClientRequest"
import type * as HttpClientResponse from "effect/http/HttpClientResponse"
import type * as HttpMethod from "effect/http/HttpMethod"
import * as Stream from "effect/Stream"

/** The methods RFC 9110 calls idempotent: sending one twice does what sending it once does. @internal */
export const idempotentMethods: ReadonlyArray<HttpMethod.HttpMethod> = [
  "GET",
  "HEAD",
  "OPTIONS",
  "PUT",
  "DELETE",
  "TRACE"
]

/** The statuses worth another attempt: overloaded, unavailable, or a gateway that could not reach it. @internal */
export const retryStatuses: ReadonlyArray<number> = [429, 502, 503, 504]

const DELTA_SECONDS = /^\s*(\d+)\s*$/
// asctime's HTTP-date, `Sun Dec  6 02:00:30 2026`: UTC, though it names no zone (`Date.parse` would read local time).
const ASCTIME = /^\s*[a-z]{3} +([a-z]{3}) +(\d{1,2}) +(\d{2}:\d{2}:\d{2}) +(\d{4})\s*$/i

/**
 * The wait a `Retry-After` header asks for, in milliseconds from `now`: delay-seconds (`120`) or an HTTP-date in
 * any of RFC 9110's three forms (`Wed, 21 Oct 2026 07:28:00 GMT`, `Wednesday, 21-Oct-26 07:28:00 GMT`,
 * `Wed Oct 21 07:28:00 2026`), a date in the past being no wait. `undefined` when absent or unreadable, so that the
 * backoff decides alone.
 *
 * @internal
 */
export const retryAfterMillis = (value: string | undefined, now: number): number | undefined => {
  if (value === undefined) return undefined
  const seconds = DELTA_SECONDS.exec(value)
  if (seconds !== null) return Number(seconds[1]) * 1000
  const asctime = ASCTIME.exec(value)
  // The other two forms name their weekday and zone: this keeps `Date.parse` from reading "12" or "soon" as a date.
  if (asctime === null && (!/[a-z]{3},/i.test(value) || !/GMT\s*$/i.test(value))) return undefined
  const at = Date.parse(asctime === null ? value : `${asctime[2]} ${asctime[1]} ${asctime[4]} ${asctime[3]} GMT`)
  return Number.isNaN(at) ? undefined : Math.max(0, at - now)
}

/**
 * Whether a request can be sent again: its method is one of `methods`, or it carries an `Idempotency-Key` (the
 * caller says the server deduplicates it), and its body is not a stream, which was consumed by the first attempt.
 *
 * @internal
 */
export const isReplayable = (
  request: HttpClientRequest.HttpClientRequest,
  methods: ReadonlySet<string>
): boolean =>
  !isStreamBody(request.body) && (methods.has(request.method) || request.headers["idempotency-key"] !== undefined)

// A body read as it is sent: an Effect stream, or a raw Web or Node stream (`HttpClientRequest.fromWeb` makes one).
const isStreamBody = (body: HttpBody.HttpBody): boolean => {
  if (body._tag === "Stream") return true
  if (body._tag !== "Raw" || typeof body.body !== "object" || body.body === null) return false
  const raw = body.body as { readonly pipe?: unknown }
  return (typeof ReadableStream !== "undefined" && raw instanceof ReadableStream) || Symbol.asyncIterator in raw ||
    typeof raw.pipe === "function"
}

/**
 * The circuit a request belongs to: its URL's host (with the port), or the whole URL when it has none.
 *
 * @internal
 */
export const hostKey = (request: HttpClientRequest.HttpClientRequest): string => {
  const url = URL.parse(request.url, baseUrl())
  return url === null || url.host === "" ? request.url : url.host
}

// What Effect resolves a relative URL against where there is a `location` (a browser): the page's.
const baseUrl = (): string | undefined => {
  const location = (globalThis as { readonly location?: { readonly origin?: string; readonly pathname?: string } })
    .location
  return location?.origin === undefined || location.pathname === undefined
    ? undefined
    : URL.parse(location.origin + location.pathname)?.href
}

/**
 * A response with a retry status, carried in the error channel while the retry policy decides: its `retryAfter`
 * is what the retry waits for at least. It never leaves the middleware: once the retries are over, the response is
 * the call's value again.
 *
 * @internal
 */
export class RetryableResponse extends Data.TaggedError("RetryableResponse")<{
  readonly response: HttpClientResponse.HttpClientResponse
  readonly retryAfter: Duration.Duration | undefined
}> {}

/**
 * Drops a response without reading its body: a read of the body that is interrupted as soon as it starts aborts
 * the request, which closes its connection (the client's own redirects do the same with a handle we cannot reach).
 * Started at once, so that the read has begun when the interruption comes.
 *
 * @internal
 */
export const discard = (response: HttpClientResponse.HttpClientResponse): Effect.Effect<void> =>
  Effect.flatMap(
    Effect.forkChild(Stream.runDrain(response.stream), { startImmediately: true }),
    (fiber) => Effect.asVoid(Fiber.interrupt(fiber))
  )
