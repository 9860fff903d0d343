/**
 * Live events: `GET /api/v1/resilience/events`, a Server-Sent Events stream of what the toolkit does, for dashboards
 * and operators.
 *
 * **Wire format** (one SSE frame per event; every `data` is one line of JSON, field names in snake_case, times
 * ISO-8601 UTC, states as in the monitoring API)
 *
 * - `id`: a decimal integer, one more for each event, and increasing across restarts too: a process numbers its
 *   events from its start time in milliseconds times 1000 (the first event of a process started at epoch
 *   1_700_000_000_000 is 1700000000000001). Heartbeats and the opening comment carry none, so a client's
 *   `Last-Event-ID` always names a real event.
 * - `event: transition`: a breaker changed state. Data: `{ "breaker": string, "key": string | null, "from": State,
 *   "to": State, "reason": string, "description": string, "shadow": boolean, "at": string }`. `State` is one of
 *   `closed`, `open`, `half_open`, `forced_open`, `disabled`, `metrics_only`; `key` is `null` for the default circuit;
 *   `reason` is the reason's tag (`ConsecutiveFailures`, `FailureRate`, `SlowCallRate`, `OpenElapsed`, `ProbeFailed`,
 *   `ProbesSucceeded`, `Manual`, `Quorum`, `Fleet`) and `description` says it in words ("5 consecutive failures");
 *   `shadow` is true for the machine of a `metrics_only` breaker, which callers do not see.
 * - `event: health` (with a `HealthMonitor`): a check changed status. Data: `{ "service": string, "from": Health,
 *   "to": Health, "critical": boolean, "error": string | null, "consecutive_failures": number, "at": string }`,
 *   `Health` one of `unknown`, `healthy`, `degraded`, `unhealthy`.
 * - `event: alert` (with `Alerts`): an alert was raised (sent, or suppressed by maintenance). Data: `{ "service":
 *   string, "from": Health, "to": Health, "severity": "critical" | "warning" | "info", "error": string | null,
 *   "count": number, "suppressed": boolean, "at": string }`. Alerts are read from the history, so they arrive within
 *   `alertPollInterval`.
 * - `event: degradation` (with `Degradation`): the level changed. Data: `{ "level": number, "description": string,
 *   "down": string[], "at": string }`.
 * - `event: admin`: an admin action through the HTTP API. Data: `{ "action": "reset" | "force_open" | "force_close"
 *   | "disable", "breaker": string, "key": string | null, "result": "applied" | "unauthorized" | "not_configured" | "not_found", "at": string }`
 *   (never the token).
 * - `event: reset`: the client asked to resume from an event the server no longer holds (older than the buffer, or
 *   from before a restart). Data: `{ "reason": "expired" | "unknown" | "invalid", "last_event_id": string }`. Its
 *   `id` is the latest event's, so the next reconnection resumes from here: reload the full state from the API,
 *   then follow the live events.
 * - `event: heartbeat`: as the stream opens and every `heartbeat` (default 15 s) after, with no `id`. Data:
 *   `{ "interval_ms": number }`, the time between heartbeats. It keeps proxies from closing an idle stream, and tells
 *   a client when to give up on a stream that went silent (a connection dead without a reset: the dashboard does
 *   after two missed heartbeats). `EventSource`'s `onmessage` does not see it (it has an event name).
 * - The stream opens with `retry: 3000` (browsers reconnect after three seconds) and a `: connected` comment.
 *
 * **Resume**: a client reconnecting with `Last-Event-ID: n` gets every buffered event after `n`, then the live ones.
 * A client that cannot set the header (a new `EventSource`) can ask `?last_event_id=n`; the header wins if both are
 * sent. The buffer holds the last `bufferSize` events (default 1000).
 *
 * **Slow clients**: each client has a queue of `clientBuffer` frames (default 256). A client whose queue is full (it
 * stopped reading, and the socket's own buffers are full) is disconnected, and can resume with `Last-Event-ID`: the
 * server's memory per client stays bounded whatever the client does.
 *
 * **Gotchas**
 *
 * - A stream stays open as long as its client does, so a Node server's graceful shutdown waits for its
 *   `gracefulShutdownTimeout` (`NodeHttpServer` options, default 20 seconds) before it interrupts the streams: give
 *   the server a short one when dashboards are connected.
 * - A client that resumes with an id from before a restart gets a `reset` (its id is older than the buffer).
 *
 * @since 0.2.0
 */
import * as Alerts from "@effect-resilience/core/Alerts"
import * as CircuitBreaker from "@effect-resilience/core/CircuitBreaker"
import { CircuitBreakerRegistry } from "@effect-resilience/core/CircuitBreakerRegistry"
import * as Degradation from "@effect-resilience/core/Degradation"
import * as HealthMonitor from "@effect-resilience/core/HealthMonitor"
import {
  decode,
  DurationInput,
  millisOf,
  type PolicyConfigError,
  PositiveInt
} from "@effect-resilience/core/PolicyConfig"
import * as NodeHttpServerRequest from "@effect/platform-node/NodeHttpServerRequest"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Sse from "effect/encoding/Sse"
import * as HttpRouter from "effect/http/HttpRouter"
import type * as HttpServerRequest from "effect/http/HttpServerRequest"
import * as HttpServerResponse from "effect/http/HttpServerResponse"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { AdminEvents } from "./internal/adminEvents.ts"

/**
 * Options of the event stream.
 *
 * @example
 * ```ts
 * import type { Events } from "@effect-resilience/http"
 *
 * const options: Events.Options = { heartbeat: "20 seconds", bufferSize: 5000, clientBuffer: 512 }
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export interface Options {
  /** The route. Default: `/api/v1/resilience/events`. */
  readonly path?: HttpRouter.PathInput | undefined
  /** Events kept for `Last-Event-ID` resumes. Default: 1000. */
  readonly bufferSize?: number | undefined
  /** Frames queued for one client before it is disconnected as too slow. Default: 256. */
  readonly clientBuffer?: number | undefined
  /** Time between heartbeat comments. Default: 15 seconds. */
  readonly heartbeat?: Duration.Input | undefined
  /** How often the `Alerts` history is read for new alerts. Default: 1 second. */
  readonly alertPollInterval?: Duration.Input | undefined
}

/**
 * What the event hub holds now.
 *
 * @example
 * ```ts
 * import type { Events } from "@effect-resilience/http"
 *
 * const line = (stats: Events.Stats) => `${stats.clients} clients, last event ${stats.lastEventId}`
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export interface Stats {
  /** Clients connected now. */
  readonly clients: number
  /** The id of the latest event (before the first, the start time in milliseconds times 1000). */
  readonly lastEventId: number
  /** Events buffered for resumes. */
  readonly buffered: number
  /** Clients disconnected for falling behind, since start. */
  readonly slowDisconnects: number
}

/**
 * The hub behind the stream: it numbers, buffers and fans out the events.
 *
 * @example
 * ```ts
 * import { Events } from "@effect-resilience/http"
 * import { Effect } from "effect"
 *
 * const clients = Events.EventHub.use((hub) => Effect.map(hub.stats, (stats) => stats.clients))
 * ```
 *
 * @since 0.2.0
 * @category services
 */
export class EventHub extends Context.Service<EventHub, {
  /** Publishes an event: `data` is serialized as JSON. */
  readonly publish: (event: string, data: unknown) => Effect.Effect<void>
  readonly stats: Effect.Effect<Stats>
  /** The SSE response to a request (resuming after its `Last-Event-ID` header or `last_event_id` parameter, if any). */
  readonly respond: (
    request: HttpServerRequest.HttpServerRequest
  ) => Effect.Effect<HttpServerResponse.HttpServerResponse>
}>()("@effect-resilience/http/EventHub") {}

const OptionsSchema = Schema.Struct({
  bufferSize: PositiveInt,
  clientBuffer: PositiveInt,
  heartbeat: DurationInput({ positive: true }),
  alertPollInterval: DurationInput({ positive: true })
})

const encoder = new TextEncoder()
const connected = encoder.encode("retry: 3000\n: connected\n\n")

interface Frame {
  readonly id: number
  readonly bytes: Uint8Array
}

interface Client {
  readonly queue: Queue.Queue<Uint8Array>
  readonly request: HttpServerRequest.HttpServerRequest
}

// Numbering, buffering and fan-out in synchronous steps: fibers never interleave inside one, so a client registers
// and takes its replay atomically with respect to publishing, and misses or repeats nothing.
class Hub {
  lastId = 0
  slowDisconnects = 0
  readonly frames: Array<Frame> = []
  readonly clients = new Set<Client>()
  readonly bufferSize: number

  constructor(bufferSize: number, startMillis: number) {
    this.bufferSize = bufferSize
    // Ids go on increasing across restarts, so that an id from an earlier process reads as expired, never as one of
    // this process's events (up to 1000 events per millisecond of downtime).
    this.lastId = startMillis * 1000
  }

  push(event: string, data: unknown): void {
    const id = ++this.lastId
    const bytes = frame(event, id, data)
    this.frames.push({ id, bytes })
    if (this.frames.length > this.bufferSize) this.frames.shift()
    this.broadcast(bytes)
  }

  broadcast(bytes: Uint8Array): void {
    for (const client of this.clients) {
      if (!Queue.offerUnsafe(client.queue, bytes)) this.kick(client)
    }
  }

  // A client whose queue is full is dropped: its queued frames are freed, and its connection closed, since its
  // response may be stuck waiting for a socket that never drains.
  kick(client: Client): void {
    this.clients.delete(client)
    this.slowDisconnects++
    Queue.shutdownUnsafe(client.queue)
    // Node only (the platform this package serves on); another server's request has no socket here.
    const incoming = NodeHttpServerRequest.toIncomingMessage(client.request) as {
      readonly socket?: { readonly destroy?: (() => void) | undefined } | null | undefined
    } | undefined
    const socket = incoming?.socket
    if (socket != null && typeof socket.destroy === "function") socket.destroy()
  }

  // What a (re)connecting client gets before the live events.
  replay(lastEventId: string | undefined, now: number): ReadonlyArray<Uint8Array> {
    if (lastEventId === undefined) return []
    const requested = /^\d{1,16}$/.test(lastEventId.trim()) ? Number(lastEventId.trim()) : -1
    const oldest = this.frames.length === 0 ? this.lastId + 1 : this.frames[0].id
    const reason = requested < 0 ? "invalid" : requested > this.lastId ? "unknown" : requested < oldest - 1
      ? "expired"
      : undefined
    if (reason === undefined) return this.frames.filter((f) => f.id > requested).map((f) => f.bytes)
    return [
      frame("reset", this.lastId, { reason, last_event_id: lastEventId, at: iso(now) })
    ]
  }
}

const frame = (event: string, id: number, data: unknown): Uint8Array =>
  encoder.encode(
    Sse.encoder.write({ _tag: "Event", event, id: id === 0 ? undefined : String(id), data: JSON.stringify(data) })
  )

// A new EventSource cannot send `Last-Event-ID` (the dashboard's, opened after a non-200 answer closed the last one):
// the query parameter stands in for the header. URLSearchParams, since a request target need not parse as a URL.
const lastEventIdParameter = (url: string): string | undefined => {
  const query = url.indexOf("?")
  if (query === -1) return undefined
  return new URLSearchParams(url.slice(query + 1).split("#")[0]).get("last_event_id") ?? undefined
}

const iso = (millis: number): string => new Date(millis).toISOString()

const states: Record<CircuitBreaker.State, string> = {
  Closed: "closed",
  Open: "open",
  HalfOpen: "half_open",
  ForcedOpen: "forced_open",
  Disabled: "disabled",
  MetricsOnly: "metrics_only"
}

const health = (status: HealthMonitor.Status): string => status.toLowerCase()

const transitionData = (t: CircuitBreaker.Transition) => ({
  breaker: t.breaker,
  key: t.key === "default" ? null : t.key,
  from: states[t.from],
  to: states[t.to],
  reason: t.reason._tag,
  description: CircuitBreaker.describeReason(t.reason),
  shadow: t.shadow,
  at: iso(t.at)
})

const resolve = (options: Options | undefined) => {
  const raw = {
    bufferSize: options?.bufferSize ?? 1000,
    clientBuffer: options?.clientBuffer ?? 256,
    heartbeat: options?.heartbeat ?? "15 seconds",
    alertPollInterval: options?.alertPollInterval ?? "1 second"
  }
  return Effect.as(decode(OptionsSchema, raw, { kind: "event stream", policy: "events" }), raw)
}

/**
 * Makes the hub: it follows the registry's transitions and, when they are in context, the `HealthMonitor`'s changes,
 * the `Alerts` history, the `Degradation` level and the admin actions, until its scope closes.
 *
 * @example
 * ```ts
 * import { CircuitBreakerRegistry } from "@effect-resilience/core"
 * import { Events } from "@effect-resilience/http"
 * import { Effect } from "effect"
 *
 * const program = Effect.gen(function*() {
 *   const hub = yield* Events.make({ heartbeat: "30 seconds" })
 *   yield* hub.publish("deploy", { version: "1.2.3" })
 * }).pipe(Effect.scoped, Effect.provide(CircuitBreakerRegistry.layer))
 * ```
 *
 * @since 0.2.0
 * @category constructors
 */
export const make: (
  options?: Options | undefined
) => Effect.Effect<EventHub["Service"], PolicyConfigError, CircuitBreakerRegistry | Scope.Scope> = Effect.fnUntraced(
  function*(options?: Options | undefined) {
    const resolved = yield* resolve(options)
    // The same bytes for every heartbeat of the hub: its interval is all it says.
    const heartbeat = frame("heartbeat", 0, { interval_ms: millisOf(resolved.heartbeat) })
    const hub = new Hub(resolved.bufferSize, yield* Clock.currentTimeMillis)
    const clientBuffer = resolved.clientBuffer
    const context = yield* Effect.context<never>()
    const follow = <A>(stream: Stream.Stream<A>, event: string, data: (a: A) => unknown) =>
      Effect.forkScoped(
        Stream.runForEach(stream, (a) => Effect.sync(() => hub.push(event, data(a)))),
        { startImmediately: true }
      )

    const registry = yield* CircuitBreakerRegistry
    yield* follow(registry.transitions, "transition", transitionData)

    const monitor = Context.getOption(context, HealthMonitor.HealthMonitor)
    if (Option.isSome(monitor)) {
      yield* follow(monitor.value.changes, "health", (c: HealthMonitor.StatusChange) => ({
        service: c.service,
        from: health(c.from),
        to: health(c.to),
        critical: c.critical,
        error: c.error,
        consecutive_failures: c.consecutiveFailures,
        at: iso(c.at)
      }))
    }

    const degradation = Context.getOption(context, Degradation.Degradation)
    if (Option.isSome(degradation)) {
      // `changes` starts with the current status: the level a client sees first comes from the API.
      yield* follow(Stream.drop(degradation.value.changes, 1), "degradation", (s: Degradation.Status) => ({
        level: s.level,
        description: s.description,
        down: s.down,
        at: iso(s.since)
      }))
    }

    const admin = Context.getOption(context, AdminEvents)
    if (Option.isSome(admin)) {
      yield* follow(Stream.fromPubSub(admin.value), "admin", (a) => ({ ...a, at: iso(a.at) }))
    }

    // Alerts has no stream of its own: its bounded history is read on a schedule, and what follows the last alert
    // seen is new (the history keeps the same objects, oldest first).
    const alerts = Context.getOption(context, Alerts.Alerts)
    if (Option.isSome(alerts)) {
      let last: Alerts.Alert | undefined = (yield* alerts.value.history).at(-1)
      yield* alerts.value.history.pipe(
        Effect.map((history) => {
          const from = last === undefined ? 0 : history.lastIndexOf(last) + 1
          for (let i = from; i < history.length; i++) {
            const a = history[i]
            hub.push("alert", {
              service: a.service,
              from: health(a.from),
              to: health(a.to),
              severity: a.severity,
              error: a.error,
              count: a.count,
              suppressed: a.suppressed,
              at: iso(a.at)
            })
          }
          if (history.length > 0) last = history[history.length - 1]
        }),
        Effect.repeat(Schedule.spaced(millisOf(resolved.alertPollInterval))),
        Effect.forkScoped
      )
    }

    yield* Effect.sync(() => hub.broadcast(heartbeat)).pipe(
      Effect.delay(millisOf(resolved.heartbeat)),
      Effect.forever,
      Effect.forkScoped
    )
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        for (const client of hub.clients) Queue.shutdownUnsafe(client.queue)
        hub.clients.clear()
      })
    )

    const respond = (request: HttpServerRequest.HttpServerRequest) =>
      Effect.gen(function*() {
        // Answer after Node's parser is done with the segment the request came in. Otherwise the head and first
        // frame are written inside its `request` event, corked until the next tick, and bytes that follow the request
        // unframed (a GET body sent without Content-Length, as node:http does) make its default `clientError`
        // handler destroy the socket with them: no response at all. Deferred, Node answers those bytes with a 400.
        // (@effect/platform-node NodeHttpServer: `makeHandler` runs the app synchronously, `writeResponse`'s
        // "Stream" case writes without flushing.)
        yield* Effect.yieldNow
        const lastEventId = request.headers["last-event-id"] ?? lastEventIdParameter(request.url)
        const queue = yield* Queue.bounded<Uint8Array>(clientBuffer)
        const client: Client = { queue, request }
        // Registered when the server starts sending, so a response that never goes out (the connection closed
        // first) leaves no client behind. One synchronous step: the replay ends exactly where the live events begin.
        const body = Stream.unwrap(Effect.map(Clock.currentTimeMillis, (now) => {
          const replay = hub.replay(lastEventId, now)
          hub.clients.add(client)
          // A heartbeat at once: the client knows the interval from the start, to tell when the stream falls silent.
          return Stream.concat(Stream.fromIterable([connected, heartbeat, ...replay]), Stream.fromQueue(queue))
        })).pipe(
          Stream.ensuring(Effect.sync(() => {
            hub.clients.delete(client)
            Queue.shutdownUnsafe(queue)
          }))
        )
        return HttpServerResponse.stream(body, {
          contentType: "text/event-stream",
          headers: { "cache-control": "no-cache", "x-accel-buffering": "no" }
        })
      })

    return EventHub.of({
      publish: (event, data) => Effect.sync(() => hub.push(event, data)),
      stats: Effect.sync(() => ({
        clients: hub.clients.size,
        lastEventId: hub.lastId,
        buffered: hub.frames.length,
        slowDisconnects: hub.slowDisconnects
      })),
      respond
    })
  }
)

/**
 * The hub as a layer (see `make`), for programs that publish their own events or read its stats.
 *
 * @example
 * ```ts
 * import { CircuitBreakerRegistry } from "@effect-resilience/core"
 * import { Events } from "@effect-resilience/http"
 * import { Layer } from "effect"
 *
 * const Hub = Events.layerHub({ bufferSize: 2000 }).pipe(Layer.provide(CircuitBreakerRegistry.layer))
 * ```
 *
 * @since 0.2.0
 * @category layers
 */
export const layerHub = (
  options?: Options | undefined
): Layer.Layer<EventHub, PolicyConfigError, CircuitBreakerRegistry> => Layer.effect(EventHub, make(options))

/**
 * The route `GET /api/v1/resilience/events` (or `options.path`), with its hub (also provided, see `EventHub`).
 * The optional sources (`HealthMonitor`, `Alerts`, `Degradation`) are followed when the layer is built with them.
 *
 * @example
 * ```ts
 * import { CircuitBreakerRegistry } from "@effect-resilience/core"
 * import { Events } from "@effect-resilience/http"
 * import { NodeHttpServer } from "@effect/platform-node"
 * import { Layer } from "effect"
 * import { HttpRouter } from "effect/http"
 * import { createServer } from "node:http"
 *
 * const Server = HttpRouter.serve(Events.layer({ heartbeat: "20 seconds" })).pipe(
 *   Layer.provide(CircuitBreakerRegistry.layer),
 *   Layer.provide(NodeHttpServer.layer(createServer, { port: 8080 }))
 * )
 * ```
 *
 * @since 0.2.0
 * @category layers
 */
export const layer = (
  options?: Options | undefined
): Layer.Layer<EventHub, PolicyConfigError, HttpRouter.HttpRouter | CircuitBreakerRegistry> =>
  HttpRouter.use((router) =>
    Effect.flatMap(EventHub, (hub) =>
      router.add(
        "GET",
        options?.path ?? "/api/v1/resilience/events",
        hub.respond
      ))
  ).pipe(Layer.provideMerge(layerHub(options)))
