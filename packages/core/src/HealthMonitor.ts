/**
 * Health monitoring as scheduled fibers: each registered check runs on its own `Schedule`, its status moves by
 * thresholds of consecutive failures, and every status change is published for alerting and recovery.
 *
 * **Details**
 *
 * - A check is any `Effect`: success is a passing run; a typed failure, a defect, or running for `timeout`
 *   (default 5 seconds) is a failing one. A run still going at its timeout is interrupted and fails with
 *   `"timed out after 5s"`; one that ends at exactly `timeout` has timed out too, whatever its outcome. A run that
 *   fails with `HealthCheck.Warning` (any error tagged `"Warning"`) is a warning, neither a success nor a failure.
 *   The services a check needs are taken from the caller of `register`, once, and serve every run.
 * - Every check starts `Unknown`. Failures count in a streak of consecutive failures: below `warningThreshold`
 *   (default 2) the status stays what it was, so one blip changes nothing (and a check whose first run fails is
 *   still `Unknown`); at `warningThreshold` it becomes `Degraded`, at `failureThreshold` (default 3) `Unhealthy`.
 *   One success makes it `Healthy` and ends the streak. A warning makes it `Degraded` at once, except that an
 *   `Unhealthy` check stays `Unhealthy`: only a success brings it back. A warning neither counts toward the
 *   thresholds nor ends the streak.
 * - Scheduling: the first run starts after a random delay in `[0, interval × jitter]` (so checks registered
 *   together stagger, and with `jitter: 0` the first run starts within `register`); after each run the check
 *   waits `interval × [1 − jitter, 1 + jitter]` (default jitter 0.1), drawn from `Random` and rounded to the
 *   millisecond, counted from the end of the run (`Schedule.spaced`). Each check has one fiber, in a `FiberMap`
 *   in the monitor's scope: closing the scope interrupts every check.
 * - Times are measured with `Clock`, in epoch milliseconds. A run's time is the instant it ended. The time to
 *   detection is from the start of the first failing run of the streak to the end of the run that made the
 *   check `Unhealthy`; the time to recovery, from then to the end of the run that made it `Healthy` again. Both
 *   keep their last measured value (`null` until the first).
 * - Overall status: `Unhealthy` if a critical check is `Unhealthy`; `Degraded` if any check is `Degraded` or a
 *   non-critical one is `Unhealthy`; `Healthy` if at least one check is `Healthy` (checks still `Unknown` do not
 *   count); `Unknown` when there is no check or every check is `Unknown`.
 * - Every status change is published on `changes` (a sliding `PubSub`: a subscriber that falls `eventBuffer`
 *   changes behind loses the oldest). Registering and re-registering publish nothing; unregistering a check that
 *   had a status publishes its change to `Unknown` (a recovery under way for it ends, and `Alerts` says `info`),
 *   unless asked to be `quiet`, as the checks of `RedisHealth` and `PgHealth` are when their layers are released.
 *
 * **Gotchas**
 *
 * - Re-registering a name replaces its check and options and restarts its fiber, but keeps the status, counters
 *   and times: it is the same service. Unregister first to start afresh.
 * - `changes` subscribes when the stream starts running, and a check with `jitter: 0` runs within `register`:
 *   fork the consumer with `{ startImmediately: true }` before registering to miss nothing.
 * - `runNow` runs the check at once, in the caller's fiber, besides its schedule: the schedule is not moved.
 * - A check that is uninterruptible past its timeout is waited for; the run still counts as timed out.
 *
 * **Example** (Watching a dependency)
 *
 * ```ts
 * import { HealthMonitor } from "@effect-resilience/core"
 * import { Effect, Stream } from "effect"
 *
 * const program = Effect.gen(function*() {
 *   const monitor = yield* HealthMonitor.HealthMonitor
 *   yield* monitor.changes.pipe(
 *     Stream.runForEach((change) => Effect.logWarning(`${change.service}: ${change.from} -> ${change.to}`)),
 *     Effect.forkScoped({ startImmediately: true })
 *   )
 *   yield* monitor.register({ name: "search", check: Effect.void, interval: "10 seconds" })
 *   return yield* monitor.report
 * }).pipe(Effect.scoped, Effect.provide(HealthMonitor.layer()))
 * ```
 *
 * @since 0.1.0
 */
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Exit from "effect/Exit"
import * as FiberMap from "effect/FiberMap"
import * as Layer from "effect/Layer"
import * as Predicate from "effect/Predicate"
import * as PubSub from "effect/PubSub"
import * as Random from "effect/Random"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as internal from "./internal/healthMonitor.ts"
import * as metrics from "./internal/metrics.ts"
import { show } from "./internal/show.ts"
import {
  decode,
  DurationInput,
  maxEventBuffer,
  millisOf,
  orDefault,
  type PolicyConfigError,
  PositiveInt,
  PositiveIntUpTo,
  Probability
} from "./PolicyConfig.ts"

// -----------------------------------------------------------------------------
// models
// -----------------------------------------------------------------------------

/**
 * A check's (or the overall) health. Every check starts `Unknown`.
 *
 * @example
 * ```ts
 * import type { HealthMonitor } from "@effect-resilience/core"
 *
 * const ok = (status: HealthMonitor.Status) => status === "Healthy"
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type Status = "Unknown" | "Healthy" | "Degraded" | "Unhealthy"

/**
 * A change of a check's status, as published on `changes`. Times are epoch milliseconds from `Clock`.
 *
 * @example
 * ```ts
 * import type { HealthMonitor } from "@effect-resilience/core"
 *
 * const worse = (change: HealthMonitor.StatusChange) => change.to === "Unhealthy"
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface StatusChange {
  readonly service: string
  readonly from: Status
  readonly to: Status
  readonly critical: boolean
  /** The failure that caused the change (`null` for a recovery). */
  readonly error: string | null
  readonly at: number
  readonly consecutiveFailures: number
}

/**
 * One check's health, as plain serializable data. Times are epoch milliseconds from `Clock`.
 *
 * @example
 * ```ts
 * import type { HealthMonitor } from "@effect-resilience/core"
 *
 * const line = (s: HealthMonitor.CheckState) =>
 *   `${s.service}: ${s.status} (${s.consecutiveFailures} failures in a row, last error ${s.lastError ?? "none"})`
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface CheckState {
  readonly service: string
  readonly status: Status
  readonly critical: boolean
  /** When the last run ended, or `null` before the first. */
  readonly lastCheckAt: number | null
  /** How long the last run took (up to the timeout), or `null` before the first. */
  readonly responseTimeMillis: number | null
  readonly consecutiveFailures: number
  readonly consecutiveSuccesses: number
  /** Runs so far, warnings included. */
  readonly totalChecks: number
  /** Failed runs so far (warnings are not failures). */
  readonly totalFailures: number
  /** The message of the last failure or warning, kept after a recovery; `null` if there was none. */
  readonly lastError: string | null
  /** Since when the check is `Unhealthy`, or `null`. */
  readonly unhealthySince: number | null
  /** The last measured time from the first failing run of a streak to `Unhealthy`, or `null`. */
  readonly detectionMillis: number | null
  /** The last measured time from `Unhealthy` back to `Healthy`, or `null`. */
  readonly recoveryMillis: number | null
}

/**
 * How many checks are in each status.
 *
 * @example
 * ```ts
 * import type { HealthMonitor } from "@effect-resilience/core"
 *
 * const allUp = (s: HealthMonitor.Summary) => s.total > 0 && s.healthy === s.total
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Summary {
  readonly total: number
  readonly healthy: number
  readonly degraded: number
  readonly unhealthy: number
  readonly unknown: number
}

/**
 * Everything the monitor knows, as plain serializable data (for a `/health` endpoint or a dashboard).
 *
 * @example
 * ```ts
 * import type { HealthMonitor } from "@effect-resilience/core"
 *
 * // A readiness probe: 503 only when a critical check is Unhealthy.
 * const httpStatus = (report: HealthMonitor.Report) => report.status === "Unhealthy" ? 503 : 200
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Report {
  /** When the report was made, epoch milliseconds. */
  readonly timestamp: number
  /** Whether checks are running: the monitor's scope is open and at least one check is registered. */
  readonly monitoring: boolean
  /** The overall status (see the module docs). */
  readonly status: Status
  /** Every registered check by name, in registration order. */
  readonly services: Readonly<Record<string, CheckState>>
  readonly summary: Summary
}

/**
 * A check to register. Only `name` and `check` are required.
 *
 * @example
 * ```ts
 * import type { HealthMonitor } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * const cache: HealthMonitor.CheckOptions<never, never> = {
 *   name: "cache",
 *   check: Effect.void,
 *   interval: "15 seconds",
 *   timeout: "2 seconds",
 *   critical: false
 * }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface CheckOptions<E, R> {
  /** Names the check in the report, in changes and in metrics (attribute `service`). */
  readonly name: string
  /** One run: success passes; a failure or a defect fails; `HealthCheck.Warning` is a warning. */
  readonly check: Effect.Effect<unknown, E, R>
  /** The wait between the end of a run and the start of the next. Default: 30 seconds. */
  readonly interval?: Duration.Input | undefined
  /** A run still going after this is interrupted and fails. Default: 5 seconds. */
  readonly timeout?: Duration.Input | undefined
  /** Consecutive failures that make the check `Degraded`. Default: 2. */
  readonly warningThreshold?: number | undefined
  /** Consecutive failures that make the check `Unhealthy`, at least `warningThreshold`. Default: 3. */
  readonly failureThreshold?: number | undefined
  /** Whether an `Unhealthy` check makes the overall status `Unhealthy` (or only `Degraded`). Default: true. */
  readonly critical?: boolean | undefined
  /** Spread of the waits, a fraction of `interval` in [0, 1]. Default: 0.1. */
  readonly jitter?: number | undefined
}

/**
 * Options for `make` and `layer`.
 *
 * @example
 * ```ts
 * import type { HealthMonitor } from "@effect-resilience/core"
 *
 * const options: HealthMonitor.Options = { eventBuffer: 256 }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /**
   * Subscribers of `changes` that fall further behind than this lose the oldest changes. Default: 1024; at most
   * 100,000.
   */
  readonly eventBuffer?: number | undefined
}

/**
 * A health monitor. See the module docs for the semantics.
 *
 * @example
 * ```ts
 * import { HealthMonitor } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * const ready = (monitor: HealthMonitor.HealthMonitor) =>
 *   Effect.map(monitor.status, (status) => status !== "Unhealthy")
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface HealthMonitor {
  /**
   * Validates `options` and starts the check on its schedule, with the services it needs taken from the caller.
   * A name already registered is replaced (its fiber restarts, its state is kept). On a closed monitor, does
   * nothing.
   */
  readonly register: <E, R>(options: CheckOptions<E, R>) => Effect.Effect<void, PolicyConfigError, R>
  /**
   * Stops a check and forgets it: it leaves the report and its metric series are removed. A check that had a status
   * publishes its change to `Unknown`, unless `quiet` (a check removed as its layer is released, at shutdown, is no
   * news). Unknown names: no-op.
   */
  readonly unregister: (service: string, options?: { readonly quiet?: boolean | undefined }) => Effect.Effect<void>
  /** Runs a check once now, outside its schedule, and returns its state after that run. */
  readonly runNow: (service: string) => Effect.Effect<CheckState, CheckNotFound>
  /** A check's current state. */
  readonly state: (service: string) => Effect.Effect<CheckState, CheckNotFound>
  /** Every check, the overall status and a summary. */
  readonly report: Effect.Effect<Report>
  /** The overall status. */
  readonly status: Effect.Effect<Status>
  /** Every status change of every check, from subscription on. */
  readonly changes: Stream.Stream<StatusChange>
}

/**
 * The `HealthMonitor` in context.
 *
 * @example
 * ```ts
 * import { HealthMonitor } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * const program = Effect.gen(function*() {
 *   const monitor = yield* HealthMonitor.HealthMonitor
 *   yield* monitor.register({ name: "db", check: Effect.void })
 *   return yield* monitor.status
 * }).pipe(Effect.provide(HealthMonitor.layer()))
 * ```
 *
 * @since 0.1.0
 * @category services
 */
export const HealthMonitor: Context.Service<HealthMonitor, HealthMonitor> = Context.Service<HealthMonitor>(
  "@effect-resilience/core/HealthMonitor"
)

// -----------------------------------------------------------------------------
// errors
// -----------------------------------------------------------------------------

/**
 * No check is registered under `service`; `known` lists the ones that are.
 *
 * @example
 * ```ts
 * import { HealthMonitor } from "@effect-resilience/core"
 *
 * const error = new HealthMonitor.CheckNotFound({ service: "dbb", known: ["db", "cache"] })
 * error.message // 'No health check "dbb" (registered: "db", "cache")'
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export class CheckNotFound extends Schema.TaggedError<CheckNotFound>()("CheckNotFound", {
  service: Schema.String,
  known: Schema.Array(Schema.String)
}) {
  override get message(): string {
    return `No health check "${this.service}" (registered: ${
      this.known.length === 0 ? "none" : this.known.map((name) => JSON.stringify(name)).join(", ")
    })`
  }
}

// -----------------------------------------------------------------------------
// validation
// -----------------------------------------------------------------------------

const CheckOptionsSchema = Schema.Struct({
  name: Schema.NonEmptyString,
  check: Schema.Unknown.check(Schema.makeFilter((u) => Effect.isEffect(u) ? undefined : "Expected an Effect")),
  interval: DurationInput({ positive: true }),
  timeout: DurationInput({ positive: true }),
  warningThreshold: PositiveInt,
  failureThreshold: PositiveInt,
  critical: Schema.Boolean,
  jitter: Probability
}).check(Schema.makeFilter((options) =>
  options.failureThreshold >= options.warningThreshold
    ? undefined
    : {
      path: ["failureThreshold"],
      issue: `Expected at least warningThreshold (${options.warningThreshold}), got ${options.failureThreshold}`
    }
))

const OptionsSchema = Schema.Struct({ eventBuffer: PositiveIntUpTo(maxEventBuffer) })

// -----------------------------------------------------------------------------
// constructors
// -----------------------------------------------------------------------------

/** A registered check: what runs, and how its outcomes are counted. */
interface Entry {
  readonly cell: internal.Cell
  readonly config: internal.Config
  /** One run, with its timeout and the caller's services. */
  readonly run: Effect.Effect<unknown, unknown>
  readonly intervalMillis: number
  readonly timeoutMillis: number
  readonly timedOut: string
  readonly jitter: number
}

const toState = (cell: internal.Cell): CheckState => ({
  service: cell.service,
  status: cell.status,
  critical: cell.critical,
  lastCheckAt: cell.lastCheckAt,
  responseTimeMillis: cell.responseTimeMillis,
  consecutiveFailures: cell.consecutiveFailures,
  consecutiveSuccesses: cell.consecutiveSuccesses,
  totalChecks: cell.totalChecks,
  totalFailures: cell.totalFailures,
  lastError: cell.lastError,
  unhealthySince: cell.unhealthySince,
  detectionMillis: cell.detectionMillis,
  recoveryMillis: cell.recoveryMillis
})

// The message of whatever a check failed with: its `message`, else its tag, else the value itself.
const describe = (error: unknown): string => {
  if (typeof error === "object" && error !== null) {
    const e = error as { readonly _tag?: unknown; readonly name?: unknown; readonly message?: unknown }
    if (typeof e.message === "string" && e.message !== "") return e.message
    if (typeof e._tag === "string") return e._tag
    if (typeof e.name === "string") return e.name
  }
  return show(error)
}

const classify = (exit: Exit.Exit<unknown, unknown>): readonly [internal.Outcome, string | null] => {
  if (exit._tag === "Success") return ["Success", null]
  const reasons = exit.cause.reasons
  const failure = reasons.find(Cause.isFailReason)
  if (failure !== undefined) {
    return [Predicate.isTagged(failure.error, "Warning") ? "Warning" : "Failure", describe(failure.error)]
  }
  const defect = reasons.find(Cause.isDieReason)
  return ["Failure", defect === undefined ? "interrupted" : describe(defect.defect)]
}

const statusHelp = "Status of a check: 0 Unknown, 1 Healthy, 2 Degraded, 3 Unhealthy"
const detectionHelp = "Last measured time from the start of a check's first failing run to Unhealthy"
const recoveryHelp = "Last measured time from a check's Unhealthy to Healthy"

const build = (eventBuffer: number): Effect.Effect<HealthMonitor, never, Scope.Scope> =>
  Effect.gen(function*() {
    // The monitor's own context: metric series go to its MetricRegistry.
    const context = yield* Effect.context<never>()
    const hub = yield* PubSub.sliding<StatusChange>(eventBuffer)
    yield* Effect.addFinalizer(() => PubSub.shutdown(hub))
    // Closing the scope interrupts every check's fiber.
    const fibers = yield* FiberMap.make<string>()
    // Insertion order is registration order, which the report keeps.
    const entries = new Map<string, Entry>()
    const seriesRemovals = new Map<string, ReadonlyArray<() => void>>()
    let open = true
    // Added last, so it runs first: no check starts or records once closing has begun.
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        open = false
        for (const removals of seriesRemovals.values()) removals.forEach((remove) => remove())
        seriesRemovals.clear()
      })
    )

    const runOnce = (entry: Entry): Effect.Effect<CheckState> =>
      Effect.clockWith((clock) => {
        const startedAt = clock.currentTimeMillisUnsafe()
        // Recorded and published in one step: an interruption in between would leave a change no subscriber hears of.
        return Effect.flatMap(Effect.exit(entry.run), (exit) =>
          Effect.uninterruptible(Effect.suspend(() => {
            const now = clock.currentTimeMillisUnsafe()
            // A run of a check that was replaced or removed meanwhile says nothing about the current one.
            if (!open || entries.get(entry.cell.service) !== entry) return Effect.succeed(toState(entry.cell))
            const [outcome, error] = now - startedAt >= entry.timeoutMillis
              ? ["Failure", entry.timedOut] as const
              : classify(exit)
            const change = internal.record(entry.cell, entry.config, outcome, error, startedAt, now)
            const state = toState(entry.cell)
            // `publish`, not `publishUnsafe`: only `publish` makes room by dropping the oldest change.
            return change === undefined ? Effect.succeed(state) : Effect.as(PubSub.publish(hub, change), state)
          })))
      })

    const loop = (entry: Entry): Effect.Effect<unknown> => {
      const { intervalMillis, jitter } = entry
      const repeat = Effect.repeat(
        runOnce(entry),
        jitter === 0 ? Schedule.spaced(intervalMillis) : Schedule.spaced(intervalMillis).pipe(
          Schedule.modifyDelay(() =>
            Effect.map(Random.next, (u) => Duration.millis(Math.round(intervalMillis * (1 - jitter + 2 * jitter * u))))
          )
        )
      )
      return jitter === 0
        ? repeat
        : Effect.flatMap(Random.next, (u) =>
          Effect.andThen(Effect.sleep(Math.round(intervalMillis * jitter * u)), repeat))
    }

    const registerSeries = (cell: internal.Cell): ReadonlyArray<() => void> => {
      const by = { service: cell.service }
      const gauge = (name: string, help: string, get: () => number) =>
        metrics.gauge(name, help, by, get)
      const counter = (name: string, help: string, get: () => number) => metrics.counter(name, help, by, get)
      return [
        gauge("health_check_status", statusHelp, () => internal.statusCodes[cell.status]),
        counter("health_checks_total", "Runs of a check", () => cell.totalChecks),
        counter("health_check_failures_total", "Failed runs of a check", () => cell.totalFailures),
        gauge("health_check_response_time_seconds", "Duration of the last run", () =>
          (cell.responseTimeMillis ?? 0) / 1000),
        gauge("health_time_to_detection_seconds", detectionHelp, () =>
          (cell.detectionMillis ?? 0) / 1000),
        gauge("health_time_to_recovery_seconds", recoveryHelp, () =>
          (cell.recoveryMillis ?? 0) / 1000)
      ].map((series) =>
        metrics.registerUnsafe(context, series)
      )
    }

    const register = <E, R>(options: CheckOptions<E, R>): Effect.Effect<void, PolicyConfigError, R> =>
      Effect.gen(function*() {
        const raw = {
          name: options.name,
          check: options.check,
          interval: orDefault(options.interval, "30 seconds"),
          timeout: orDefault(options.timeout, "5 seconds"),
          warningThreshold: orDefault(options.warningThreshold, 2),
          failureThreshold: orDefault(options.failureThreshold, 3),
          critical: orDefault(options.critical, true),
          jitter: orDefault(options.jitter, 0.1)
        }
        yield* decode(CheckOptionsSchema, raw, { kind: "health check", policy: String(options.name) })
        if (!open) return
        const services = yield* Effect.context<R>()
        const name = raw.name
        const timeoutMillis = millisOf(raw.timeout)
        const previous = entries.get(name)
        const cell = previous?.cell ?? internal.makeCell(name, raw.critical)
        cell.critical = raw.critical
        const entry: Entry = {
          cell,
          config: { warningThreshold: raw.warningThreshold, failureThreshold: raw.failureThreshold },
          run: options.check.pipe(Effect.timeout(timeoutMillis), Effect.provideContext(services)),
          intervalMillis: millisOf(raw.interval),
          timeoutMillis,
          timedOut: `timed out after ${Duration.format(Duration.millis(timeoutMillis))}`,
          jitter: raw.jitter
        }
        // Listed and started in one step: an interruption in between would list a check that never runs. Replaces
        // (and interrupts) the fiber of a previous registration; the new fiber is interruptible.
        yield* Effect.uninterruptible(Effect.suspend(() => {
          entries.set(name, entry)
          if (!seriesRemovals.has(name)) seriesRemovals.set(name, registerSeries(cell))
          return FiberMap.run(fibers, name, loop(entry))
        }))
      })

    // Unlisted and stopped in one step: an interruption in between would leave an unlisted check running. A service
    // that had a status goes `Unknown`, published: a recovery under way for it ends (abandoned), and alerts say so.
    const unregister = (service: string, options?: { readonly quiet?: boolean | undefined }): Effect.Effect<void> =>
      Effect.uninterruptible(Effect.suspend(() => {
        const entry = entries.get(service)
        if (entry === undefined) return Effect.void
        entries.delete(service)
        seriesRemovals.get(service)?.forEach((remove) => remove())
        seriesRemovals.delete(service)
        const { cell } = entry
        const removed = FiberMap.remove(fibers, service)
        if (cell.status === "Unknown" || options?.quiet === true) return removed
        return Effect.andThen(
          removed,
          Effect.flatMap(Clock.currentTimeMillis, (at) =>
            PubSub.publish(hub, {
              service,
              from: cell.status,
              to: "Unknown",
              critical: cell.critical,
              error: null,
              at,
              consecutiveFailures: cell.consecutiveFailures
            }))
        )
      }))

    const entryOf = (service: string): Effect.Effect<Entry, CheckNotFound> =>
      Effect.suspend(() => {
        const entry = entries.get(service)
        return entry === undefined
          ? Effect.fail(new CheckNotFound({ service, known: Array.from(entries.keys()) }))
          : Effect.succeed(entry)
      })

    const cells = (): Iterable<internal.Cell> => Array.from(entries.values(), (entry) => entry.cell)

    return HealthMonitor.of({
      register,
      unregister,
      runNow: (service) => Effect.flatMap(entryOf(service), runOnce),
      state: (service) => Effect.map(entryOf(service), (entry) => toState(entry.cell)),
      report: Effect.map(Clock.currentTimeMillis, (timestamp): Report => {
        const all = cells()
        // `fromEntries`, not `services[name] = x`: a check named `__proto__` would set the prototype, unlisted.
        const services: Record<string, CheckState> = Object.fromEntries(
          Array.from(all, (cell) => [cell.service, toState(cell)] as const)
        )
        return {
          timestamp,
          monitoring: open && entries.size > 0,
          status: internal.overall(all),
          services,
          summary: internal.summarize(all)
        }
      }),
      status: Effect.sync(() => internal.overall(cells())),
      changes: Stream.fromPubSub(hub)
    })
  })

/**
 * Makes a health monitor with no checks, living in the current scope: closing it stops every check. Options (see
 * `Options`, all optional) are validated with Schema; a bad value fails with `PolicyConfigError`.
 *
 * **Metrics** (Effect `Metric`s, attribute `service`, read when exported; a check's series leave with it):
 * `health_check_status` (0 Unknown, 1 Healthy, 2 Degraded, 3 Unhealthy), `health_checks_total`,
 * `health_check_failures_total`, `health_check_response_time_seconds` (the last run), `health_time_to_detection_seconds` and
 * `health_time_to_recovery_seconds` (the last measured; 0 until the first).
 *
 * @example
 * ```ts
 * import { HealthMonitor } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * const program = Effect.gen(function*() {
 *   const monitor = yield* HealthMonitor.make({ eventBuffer: 64 })
 *   yield* monitor.register({ name: "db", check: Effect.void, jitter: 0 })
 *   return (yield* monitor.state("db")).status // "Healthy": with no jitter the first run is at once
 * }).pipe(Effect.scoped)
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: {
  (): Effect.Effect<HealthMonitor, never, Scope.Scope>
  (options: Options | undefined): Effect.Effect<HealthMonitor, PolicyConfigError, Scope.Scope>
} = (options?: Options | undefined): Effect.Effect<HealthMonitor, never, Scope.Scope> =>
  // The overloads are the truth: only options can be wrong.
  makeMonitor(options) as Effect.Effect<HealthMonitor, never, Scope.Scope>

const makeMonitor = (options: Options | undefined): Effect.Effect<HealthMonitor, PolicyConfigError, Scope.Scope> =>
  options?.eventBuffer === undefined
    ? build(1024)
    : decode(OptionsSchema, { eventBuffer: options.eventBuffer }, {
      kind: "health monitor",
      policy: "HealthMonitor"
    }).pipe(Effect.flatMap(({ eventBuffer }) => build(eventBuffer)))

/**
 * Provides a `HealthMonitor` made with `options` (see `make`); its checks stop when the layer is released.
 *
 * @example
 * ```ts
 * import { HealthMonitor } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * const program = HealthMonitor.HealthMonitor.use((monitor) => monitor.status).pipe(
 *   Effect.provide(HealthMonitor.layer({ eventBuffer: 256 }))
 * )
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer: {
  (): Layer.Layer<HealthMonitor>
  (options: Options | undefined): Layer.Layer<HealthMonitor, PolicyConfigError>
} = (options?: Options | undefined): Layer.Layer<HealthMonitor> =>
  Layer.effect(HealthMonitor, makeMonitor(options)) as Layer.Layer<HealthMonitor>
