/**
 * Automated recovery from health status changes: rules per service run a recovery action (restart, clear a
 * cache, reconnect, reload config, or escalate to a human) when the service fails, retry it with exponential
 * backoff while it stays down, escalate when the attempts are spent, and hold off with a cooldown afterwards.
 *
 * **Details**
 *
 * - Trigger: a rule without `after` triggers when its service becomes `Unhealthy`. With `after: n`, it
 *   triggers at the first change to `Degraded` or `Unhealthy` whose `consecutiveFailures` is at least n.
 * - Sequence: each attempt runs the action, then waits `backoff` (`base * factor^(k - 1)` after the k-th
 *   attempt, at most `max`) for the service to become `Healthy`. A change to `Healthy` ends the sequence as
 *   recovered; one to `Unknown` (the check was removed or reset) ends it as abandoned. When `maxAttempts`
 *   attempts have waited in vain, the sequence escalates: it logs an error, runs the rule's `escalation` once,
 *   and makes no more attempts until the service is `Healthy` (or `Unknown`) again. An `escalate` action
 *   escalates at once.
 * - Cooldown: when a sequence ends, no new one starts for that service until `cooldown` has passed. A trigger
 *   during the cooldown is deferred: the sequence starts when the cooldown ends, if the service has not been
 *   `Healthy` or `Unknown` since.
 * - Changes to a service while its sequence runs (say `Degraded` to `Unhealthy`) only matter if they end it.
 * - `make` subscribes to `changes` before it returns, so no change published afterwards is missed. `layer(options)`
 *   does the same on the `HealthMonitor` in context: one line wires recovery to a monitor.
 *
 * **Snapshot**
 *
 * - Every action run is an attempt, escalations included; `attemptsByAction` splits them by `_tag`.
 * - An attempt is a success when its action succeeded and the next thing that happened in its sequence was the
 *   service becoming `Healthy`: before another attempt started and before the wait after it ran out (after an
 *   escalation there is no limit, as a human is on it). `successRate` is `successes / attempts` (0 before any).
 * - A sequence is recovered when it ends with `Healthy`, whatever the last action did; its recovery time runs
 *   from the start of its first attempt to the `at` of that change. `averageRecoveryMillis` is the mean over
 *   recovered sequences; the `onRecovered` callbacks get each one.
 *
 * **Gotchas**
 *
 * - A health monitor publishes only status changes, so `after` can only act at the counts those changes carry:
 *   at or below the monitor's warning threshold it acts at `Degraded`; above its failure threshold, never.
 * - An action runs as it is: give it its own timeout, or a hung restart hook holds the sequence.
 * - When `changes` ends, the running sequences are interrupted.
 *
 * **Example** (Restart, then page someone)
 *
 * ```ts
 * import { Recovery } from "@effect-resilience/core"
 * import type { HealthMonitor } from "@effect-resilience/core"
 * import { Effect, Stream } from "effect"
 *
 * declare const restartWorker: Effect.Effect<void, Error>
 * declare const pageOnCall: Effect.Effect<void>
 *
 * const recovering = (changes: Stream.Stream<HealthMonitor.StatusChange>) =>
 *   Recovery.make({
 *     changes,
 *     rules: [{
 *       service: "worker",
 *       action: Recovery.restart(restartWorker),
 *       maxAttempts: 3,
 *       backoff: { base: "30 seconds", factor: 2, max: "5 minutes" },
 *       cooldown: "15 minutes",
 *       escalation: pageOnCall
 *     }]
 *   })
 * ```
 *
 * @since 0.1.0
 */
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as FiberSet from "effect/FiberSet"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { HealthMonitor, type StatusChange } from "./HealthMonitor.ts"
import * as metrics from "./internal/metrics.ts"
import * as internal from "./internal/recovery.ts"
import { show } from "./internal/show.ts"
import {
  decode,
  DurationInput,
  error as configError,
  millisOf,
  type PolicyConfigError,
  PositiveInt
} from "./PolicyConfig.ts"

// -----------------------------------------------------------------------------
// models
// -----------------------------------------------------------------------------

/**
 * The kinds of recovery action.
 *
 * @example
 * ```ts
 * import type { Recovery } from "@effect-resilience/core"
 *
 * const automated = (tag: Recovery.ActionTag) => tag !== "Escalate"
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type ActionTag = internal.ActionTag

/**
 * The action kinds, for iteration (`attemptsByAction` has one entry each).
 *
 * @example
 * ```ts
 * import { Recovery } from "@effect-resilience/core"
 *
 * Recovery.actionTags.length // 5
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export const actionTags: ReadonlyArray<ActionTag> = internal.actionTags

/**
 * A recovery action: what kind it is, and the effect that does it. Its failures are recorded, never raised.
 *
 * @example
 * ```ts
 * import { Recovery } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * const action: Recovery.Action = Recovery.clearCache(Effect.log("cache cleared"))
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Action<R = never> {
  readonly _tag: ActionTag
  readonly run: Effect.Effect<void, unknown, R>
}

/**
 * Exponential backoff between attempts: `base * factor^(k - 1)` after the k-th attempt, at most `max`.
 *
 * @example
 * ```ts
 * import type { Recovery } from "@effect-resilience/core"
 *
 * // 10s, 20s, 40s, 60s, 60s...
 * const backoff: Recovery.Backoff = { base: "10 seconds", factor: 2, max: "1 minute" }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Backoff {
  readonly base: Duration.Input
  /** Default: 2. */
  readonly factor?: number | undefined
  /** Default: no limit. */
  readonly max?: Duration.Input | undefined
}

/**
 * What to do when one service fails. Only `service` and `action` are required.
 *
 * @example
 * ```ts
 * import { Recovery } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * const rule: Recovery.Rule = {
 *   service: "cache",
 *   after: 2,
 *   action: Recovery.reconnect(Effect.log("reconnecting")),
 *   maxAttempts: 5,
 *   backoff: { base: "5 seconds" },
 *   cooldown: "10 minutes"
 * }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Rule<R = never> {
  readonly service: string
  /** Acts at the first failing change with at least this many consecutive failures. Default: at `Unhealthy`. */
  readonly after?: number | undefined
  readonly action: Action<R>
  /** Attempts before escalating (an `escalate` action escalates at once). Default: 3. */
  readonly maxAttempts?: number | undefined
  /** Waits after each attempt. Default: 30 seconds, doubling. */
  readonly backoff?: Backoff | undefined
  /** No new sequence this long after one ends. Default: 5 minutes. */
  readonly cooldown?: Duration.Input | undefined
  /** Runs once when the attempts are spent (page someone). Default: only an error is logged. */
  readonly escalation?: Effect.Effect<void, unknown, R> | undefined
}

/**
 * The services that the actions of a rule need.
 *
 * @example
 * ```ts
 * import type { Recovery } from "@effect-resilience/core"
 *
 * type None = Recovery.RuleServices<Recovery.Rule> // never
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type RuleServices<A> = A extends Rule<infer R> ? R : never

/**
 * A recovery action run that failed, as `snapshot` keeps it (the last 50).
 *
 * @example
 * ```ts
 * import type { Recovery } from "@effect-resilience/core"
 *
 * const line = (f: Recovery.RecentFailure) => `${f.service} ${f.action}: ${f.error}`
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface RecentFailure {
  readonly service: string
  readonly action: ActionTag
  readonly error: string
  readonly at: number
}

/**
 * Where a service's recovery is: `Idle`, `Deferred` (a trigger waits for the cooldown to end), `Running`
 * (attempts under way) or `Escalated` (waiting for a human).
 *
 * @example
 * ```ts
 * import type { Recovery } from "@effect-resilience/core"
 *
 * const busy = (phase: Recovery.Phase) => phase === "Running" || phase === "Escalated"
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type Phase = "Idle" | "Deferred" | "Running" | "Escalated"

/**
 * One service with a rule, as `snapshot` shows it. `attempts` counts the current (or last) sequence's attempts.
 *
 * @example
 * ```ts
 * import type { Recovery } from "@effect-resilience/core"
 *
 * const coolingDown = (s: Recovery.ServiceSnapshot, now: number) => s.cooldownUntil !== null && s.cooldownUntil > now
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface ServiceSnapshot {
  readonly service: string
  readonly phase: Phase
  readonly attempts: number
  /** When the last sequence's cooldown ends (epoch milliseconds), or `null` before any sequence ended. */
  readonly cooldownUntil: number | null
}

/**
 * Counts since `make`, as plain serializable data. See the module docs for what counts as a success.
 *
 * @example
 * ```ts
 * import type { Recovery } from "@effect-resilience/core"
 *
 * const summary = (s: Recovery.Snapshot) =>
 *   `${s.attempts} attempts, ${Math.round(s.successRate * 100)}% successful, ` +
 *   `recovery in ${s.averageRecoveryMillis ?? "-"}ms on average`
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Snapshot {
  readonly name: string
  readonly attempts: number
  readonly successes: number
  readonly successRate: number
  readonly attemptsByAction: Readonly<Record<ActionTag, number>>
  /** Sequences started. */
  readonly sequences: number
  /** Sequences that ended with the service `Healthy`. */
  readonly recovered: number
  readonly escalations: number
  readonly averageRecoveryMillis: number | null
  readonly lastRecoveryMillis: number | null
  readonly recentFailures: ReadonlyArray<RecentFailure>
  readonly services: ReadonlyArray<ServiceSnapshot>
}

/**
 * Called when a service recovers, with its recovery time in milliseconds. Each call runs in a fiber of its own: one
 * that fails or never ends holds neither the other callbacks nor the service's recovery.
 *
 * @example
 * ```ts
 * import type { Recovery } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * const announce: Recovery.OnRecovered = (service, millis) => Effect.log(`${service} back after ${millis}ms`)
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type OnRecovered = (service: string, recoveryMillis: number) => Effect.Effect<void>

/**
 * A running recovery manager. See the module docs for the semantics.
 *
 * @example
 * ```ts
 * import type { Recovery } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * const rate = (recovery: Recovery.Recovery) => Effect.map(recovery.snapshot, (s) => s.successRate)
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Recovery {
  readonly name: string
  readonly snapshot: Effect.Effect<Snapshot>
  /** Calls `f` on each recovery for as long as the scope is open. */
  readonly onRecovered: (f: OnRecovered) => Effect.Effect<void, never, Scope.Scope>
}

/**
 * The `Recovery` in context.
 *
 * @example
 * ```ts
 * import { Recovery } from "@effect-resilience/core"
 *
 * const attempts = Recovery.Recovery.use((recovery) => recovery.snapshot)
 * ```
 *
 * @since 0.1.0
 * @category services
 */
export const Recovery: Context.Service<Recovery, Recovery> = Context.Service<Recovery>(
  "@effect-resilience/core/Recovery"
)

/**
 * Options for `make`.
 *
 * @example
 * ```ts
 * import { Recovery } from "@effect-resilience/core"
 * import type { HealthMonitor } from "@effect-resilience/core"
 * import { Effect, Stream } from "effect"
 *
 * declare const changes: Stream.Stream<HealthMonitor.StatusChange>
 *
 * const options: Recovery.Options<ReadonlyArray<Recovery.Rule>> = {
 *   changes,
 *   rules: [{ service: "db", action: Recovery.reconnect(Effect.log("reconnect")) }],
 *   onRecovered: (service, millis) => Effect.log(`${service} recovered in ${millis}ms`)
 * }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Options<Rules extends ReadonlyArray<Rule<unknown>>> {
  /** The status changes to act on, e.g. a health monitor's `changes`. */
  readonly changes: Stream.Stream<StatusChange>
  /** One rule per service. */
  readonly rules: Rules
  /** Names the manager in logs and metrics. Default: "recovery". */
  readonly name?: string | undefined
  readonly onRecovered?: OnRecovered | undefined
}

// -----------------------------------------------------------------------------
// actions
// -----------------------------------------------------------------------------

/**
 * An action that restarts the service (a restart hook).
 *
 * @example
 * ```ts
 * import { Recovery } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * const action = Recovery.restart(Effect.log("systemctl restart worker"))
 * ```
 *
 * @since 0.1.0
 * @category actions
 */
export const restart = <E, R>(run: Effect.Effect<void, E, R>): Action<R> => ({ _tag: "Restart", run })

/**
 * An action that clears a cache.
 *
 * @example
 * ```ts
 * import { Recovery } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * const action = Recovery.clearCache(Effect.log("FLUSHDB"))
 * ```
 *
 * @since 0.1.0
 * @category actions
 */
export const clearCache = <E, R>(run: Effect.Effect<void, E, R>): Action<R> => ({ _tag: "ClearCache", run })

/**
 * An action that reconnects (a pool, a client).
 *
 * @example
 * ```ts
 * import { Recovery } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * const action = Recovery.reconnect(Effect.log("pool reconnected"))
 * ```
 *
 * @since 0.1.0
 * @category actions
 */
export const reconnect = <E, R>(run: Effect.Effect<void, E, R>): Action<R> => ({ _tag: "Reconnect", run })

/**
 * An action that reloads configuration.
 *
 * @example
 * ```ts
 * import { Recovery } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * const action = Recovery.reloadConfig(Effect.log("config reloaded"))
 * ```
 *
 * @since 0.1.0
 * @category actions
 */
export const reloadConfig = <E, R>(run: Effect.Effect<void, E, R>): Action<R> => ({ _tag: "ReloadConfig", run })

/**
 * An action that hands over to a human: it logs an error, runs `run` once (page someone; nothing more by
 * default), and no automated attempt follows until the service recovers.
 *
 * @example
 * ```ts
 * import { Recovery } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * const action = Recovery.escalate(Effect.log("paging the on-call engineer"))
 * ```
 *
 * @since 0.1.0
 * @category actions
 */
export const escalate: {
  (): Action
  <E, R>(run: Effect.Effect<void, E, R>): Action<R>
} = (run?: Effect.Effect<void, unknown, unknown>): Action<never> => ({
  _tag: "Escalate",
  run: (run ?? Effect.void) as Effect.Effect<void, unknown, never>
})

/**
 * Calls `f` on each recovery of the `Recovery` in context, for as long as the scope is open.
 *
 * @example
 * ```ts
 * import { Recovery } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * const announce = Recovery.onRecovered((service, millis) => Effect.log(`${service} is back after ${millis}ms`))
 * ```
 *
 * @since 0.1.0
 * @category combinators
 */
export const onRecovered = (f: OnRecovered): Effect.Effect<void, never, Recovery | Scope.Scope> =>
  Recovery.use((recovery) => recovery.onRecovered(f))

// -----------------------------------------------------------------------------
// constructors
// -----------------------------------------------------------------------------

const EffectValue = Schema.Unknown.check(
  Schema.makeFilter((input) => Effect.isEffect(input) ? undefined : "Expected an Effect")
)

const RuleSchema = Schema.Struct({
  service: Schema.NonEmptyString,
  after: Schema.optional(PositiveInt),
  action: Schema.Struct({
    _tag: Schema.Literals(["Restart", "ClearCache", "Reconnect", "ReloadConfig", "Escalate"]),
    run: EffectValue
  }),
  maxAttempts: PositiveInt,
  backoff: Schema.Struct({
    base: DurationInput({ positive: false }),
    factor: Schema.Finite.check(Schema.isGreaterThanOrEqualTo(1)),
    max: Schema.optional(DurationInput({ positive: false }))
  }),
  cooldown: DurationInput({ positive: false }),
  escalation: Schema.optional(EffectValue)
})

const OptionsSchema = Schema.Struct({ name: Schema.NonEmptyString, rules: Schema.Array(RuleSchema) })

interface Resolved {
  readonly service: string
  readonly after: number | undefined
  readonly action: Action
  readonly escalation: Action
  readonly maxAttempts: number
  readonly baseMillis: number
  readonly factor: number
  readonly maxMillis: number
  readonly cooldownMillis: number
}

interface Cell {
  readonly service: string
  phase: Phase
  attempts: number
  cooldownUntil: number
}

const describeCause = (cause: Cause.Cause<unknown>): string => {
  const error = Cause.squash(cause)
  if (typeof error === "object" && error !== null) {
    const e = error as { readonly _tag?: unknown; readonly message?: unknown }
    const message = typeof e.message === "string" ? e.message : ""
    if (typeof e._tag === "string") return message === "" ? e._tag : `${e._tag}: ${message}`
    if (message !== "") return message
  }
  return show(error)
}

const recentFailuresKept = 50

// The next change that ends a wait (Healthy or Unknown), or undefined once `millis` have passed. Changes already
// queued are looked at first, so that one that came while the action ran counts even with a zero wait.
const waitForEnd = (queue: Queue.Queue<StatusChange>, millis: number): Effect.Effect<StatusChange | undefined> =>
  Effect.gen(function*() {
    const deadline = (yield* Clock.currentTimeMillis) + millis
    while (true) {
      let queued = yield* Queue.poll(queue)
      while (Option.isSome(queued)) {
        if (internal.ends(queued.value)) return queued.value
        queued = yield* Queue.poll(queue)
      }
      if (millis === Infinity) {
        const next = yield* Queue.take(queue)
        if (internal.ends(next)) return next
        continue
      }
      const left = deadline - (yield* Clock.currentTimeMillis)
      if (left <= 0) return undefined
      const next = yield* Effect.timeoutOption(Queue.take(queue), Duration.millis(left))
      if (Option.isNone(next)) return undefined
      if (internal.ends(next.value)) return next.value
    }
  })

/**
 * Starts recovery: a fiber, for as long as the scope is open, follows `changes` and runs each rule's sequences
 * as the module docs say. Options are validated with Schema (one rule per service); a bad value fails with
 * `PolicyConfigError`.
 *
 * **Metrics** (Effect `Metric`s, attribute `policy`, read when exported): `recovery_attempts_total` (by
 * `action`), `recovery_successes_total`, `recovery_escalations_total` and `recovery_time_seconds` (a gauge: the last
 * recovery time).
 *
 * @example
 * ```ts
 * import { Recovery } from "@effect-resilience/core"
 * import type { HealthMonitor } from "@effect-resilience/core"
 * import { Effect, Stream } from "effect"
 *
 * declare const reconnectPool: Effect.Effect<void>
 *
 * const recovering = (changes: Stream.Stream<HealthMonitor.StatusChange>) =>
 *   Effect.gen(function*() {
 *     const recovery = yield* Recovery.make({
 *       changes,
 *       rules: [{ service: "db", action: Recovery.reconnect(reconnectPool), backoff: { base: "5 seconds" } }],
 *       onRecovered: (service, millis) => Effect.log(`${service} recovered in ${millis}ms`)
 *     })
 *     return yield* recovery.snapshot
 *   }).pipe(Effect.scoped)
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = <const Rules extends ReadonlyArray<Rule<unknown>>>(
  options: Options<Rules>
): Effect.Effect<Recovery, PolicyConfigError, Scope.Scope | RuleServices<Rules[number]>> =>
  makeRecovery(options as unknown as Options<ReadonlyArray<Rule>>)

const makeRecovery = Effect.fnUntraced(function*(options: Options<ReadonlyArray<Rule>>) {
  const name = options.name ?? "recovery"
  const context = { kind: "recovery", policy: name }
  const raw = {
    name,
    rules: options.rules.map((rule) => ({
      service: rule.service,
      ...(rule.after === undefined ? {} : { after: rule.after }),
      action: rule.action,
      maxAttempts: rule.maxAttempts ?? 3,
      backoff: {
        base: rule.backoff?.base ?? "30 seconds",
        factor: rule.backoff?.factor ?? 2,
        ...(rule.backoff?.max === undefined ? {} : { max: rule.backoff.max })
      },
      cooldown: rule.cooldown ?? "5 minutes",
      ...(rule.escalation === undefined ? {} : { escalation: rule.escalation })
    }))
  }
  yield* decode(OptionsSchema, raw, context)
  const rules: Array<Resolved> = []
  const seen = new Map<string, number>()
  for (let i = 0; i < raw.rules.length; i++) {
    const rule = raw.rules[i]
    const first = seen.get(rule.service)
    if (first !== undefined) {
      return yield* Effect.fail(
        configError(
          context,
          `rules[${i}].service`,
          `Expected one rule per service, "${rule.service}" has rules[${first}]`
        )
      )
    }
    seen.set(rule.service, i)
    rules.push({
      service: rule.service,
      after: options.rules[i].after,
      action: rule.action,
      escalation: escalate(options.rules[i].escalation ?? Effect.void),
      maxAttempts: rule.maxAttempts,
      baseMillis: millisOf(rule.backoff.base),
      factor: rule.backoff.factor,
      maxMillis: rule.backoff.max === undefined ? Infinity : millisOf(rule.backoff.max),
      cooldownMillis: millisOf(rule.cooldown)
    })
  }

  const books = new internal.Books(recentFailuresKept)
  // Boxed, so that registering the same function twice calls it twice and removes one at a time.
  const callbacks = new Set<{ readonly f: OnRecovered }>()
  if (options.onRecovered !== undefined) callbacks.add({ f: options.onRecovered })
  const cells: Array<Cell> = []

  // Each callback runs in a fiber of its own, interrupted when recovery stops.
  const running = yield* FiberSet.make()
  const recovered = (service: string, millis: number): Effect.Effect<void> =>
    Effect.forEach(
      Array.from(callbacks),
      ({ f }) =>
        // One broken callback must not keep the others, or the next sequence, from running: not even one that throws
        // instead of returning an effect, or one that never ends (a webhook with no timeout).
        FiberSet.run(
          running,
          Effect.suspend(() => f(service, millis)).pipe(
            Effect.catchCause((cause) => Effect.logWarning(`onRecovered callback failed for "${service}"`, cause))
          )
        ),
      { discard: true }
    )

  // Follows a service through its cooldown; true if a trigger is still pending when it ends.
  const deferUntil = (rule: Resolved, queue: Queue.Queue<StatusChange>, until: number) =>
    Effect.gen(function*() {
      let pending = true
      while (true) {
        const left = until - (yield* Clock.currentTimeMillis)
        if (left <= 0) return pending
        const next = yield* Effect.timeoutOption(Queue.take(queue), Duration.millis(left))
        if (Option.isNone(next)) return pending
        if (internal.ends(next.value)) pending = false
        else if (internal.triggers(rule.after, next.value)) pending = true
      }
    })

  const sequence = (rule: Resolved, queue: Queue.Queue<StatusChange>, cell: Cell) =>
    Effect.gen(function*() {
      books.sequences++
      cell.phase = "Running"
      cell.attempts = 0
      const startedAt = yield* Clock.currentTimeMillis
      let action = rule.action
      while (true) {
        cell.attempts++
        const escalating = action._tag === "Escalate"
        if (escalating) {
          books.escalations++
          cell.phase = "Escalated"
          yield* Effect.logError(
            action === rule.escalation
              ? `Recovery of "${rule.service}" gave up after ${rule.maxAttempts} attempts: escalating`
              : `Recovery of "${rule.service}": escalating`
          ).pipe(Effect.annotateLogs({ recovery: name, service: rule.service }))
        }
        const exit = yield* Effect.exit(action.run)
        books.attempt(action._tag)
        if (Exit.isFailure(exit)) {
          books.fail({
            service: rule.service,
            action: action._tag,
            error: describeCause(exit.cause),
            at: yield* Clock.currentTimeMillis
          })
        }
        const end = yield* waitForEnd(
          queue,
          escalating ? Infinity : internal.backoffMillis(rule.baseMillis, rule.factor, rule.maxMillis, cell.attempts)
        )
        if (end !== undefined) {
          if (end.to === "Healthy") {
            if (Exit.isSuccess(exit)) books.successes++
            const millis = Math.max(0, end.at - startedAt)
            books.recover(millis)
            yield* recovered(rule.service, millis)
          }
          cell.cooldownUntil = (yield* Clock.currentTimeMillis) + rule.cooldownMillis
          return
        }
        if (cell.attempts >= rule.maxAttempts) action = rule.escalation
      }
    })

  const worker = (rule: Resolved, queue: Queue.Queue<StatusChange>, cell: Cell) =>
    Effect.gen(function*() {
      while (true) {
        cell.phase = "Idle"
        const change = yield* Queue.take(queue)
        if (!internal.triggers(rule.after, change)) continue
        if ((yield* Clock.currentTimeMillis) < cell.cooldownUntil) {
          cell.phase = "Deferred"
          if (!(yield* deferUntil(rule, queue, cell.cooldownUntil))) continue
        }
        yield* sequence(rule, queue, cell)
      }
    })

  const queues = new Map<string, Queue.Queue<StatusChange>>()
  const workers: Array<Fiber.Fiber<never>> = []
  for (const rule of rules) {
    const queue = yield* Queue.unbounded<StatusChange>()
    const cell: Cell = { service: rule.service, phase: "Idle", attempts: 0, cooldownUntil: -Infinity }
    cells.push(cell)
    queues.set(rule.service, queue)
    // Interrupted when `changes` ends or the scope closes: nothing is under way any more, whatever it was doing.
    const idle = Effect.sync(() => {
      cell.phase = "Idle"
    })
    workers.push(yield* Effect.forkScoped(Effect.onInterrupt(worker(rule, queue, cell), () => idle)))
  }
  yield* Stream.runForEach(options.changes, (change) => {
    const queue = queues.get(change.service)
    return queue === undefined ? Effect.void : Queue.offer(queue, change)
  }).pipe(
    // No more news about any service: a sequence could only guess from here.
    Effect.andThen(Fiber.interruptAll(workers)),
    // Started at once, so that it subscribes to `changes` before `make` returns: no change after it is missed.
    Effect.forkScoped({ startImmediately: true })
  )

  const by = { policy: name }
  yield* metrics.register([
    ...internal.actionTags.map((action) =>
      metrics.counter(
        "recovery_attempts_total",
        "Recovery actions run, by action",
        { ...by, action },
        () => books.byAction[action]
      )
    ),
    metrics.counter("recovery_successes_total", "Attempts followed by recovery", by, () => books.successes),
    metrics.counter("recovery_escalations_total", "Escalations to a human", by, () => books.escalations),
    metrics.gauge(
      "recovery_time_seconds",
      "The last recovery time, from the first attempt to Healthy",
      by,
      () => Math.max(0, books.lastRecoveryMillis) / 1000
    )
  ])

  const recovery: Recovery = {
    name,
    snapshot: Effect.sync((): Snapshot => ({
      name,
      attempts: books.attempts,
      successes: books.successes,
      successRate: books.attempts === 0 ? 0 : books.successes / books.attempts,
      attemptsByAction: { ...books.byAction },
      sequences: books.sequences,
      recovered: books.recovered,
      escalations: books.escalations,
      averageRecoveryMillis: books.recovered === 0 ? null : books.totalRecoveryMillis / books.recovered,
      lastRecoveryMillis: books.lastRecoveryMillis < 0 ? null : books.lastRecoveryMillis,
      recentFailures: books.failures.slice(),
      services: cells.map((cell) => ({
        service: cell.service,
        phase: cell.phase,
        attempts: cell.attempts,
        cooldownUntil: cell.cooldownUntil === -Infinity ? null : cell.cooldownUntil
      }))
    })),
    onRecovered: (f) =>
      Effect.suspend(() => {
        const registered = { f }
        callbacks.add(registered)
        return Effect.addFinalizer(() => Effect.sync(() => callbacks.delete(registered)))
      })
  }
  return recovery
})

/**
 * Options for `layer`: `make`'s, but for `changes`, which the layer takes from the `HealthMonitor` in context.
 *
 * @example
 * ```ts
 * import { Recovery } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * const options: Recovery.LayerOptions<ReadonlyArray<Recovery.Rule>> = {
 *   rules: [{ service: "db", action: Recovery.reconnect(Effect.log("reconnect")) }]
 * }
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export type LayerOptions<Rules extends ReadonlyArray<Rule<unknown>>> = Omit<Options<Rules>, "changes">

/**
 * Provides `Recovery` on the status changes of the `HealthMonitor` in context. Recovery starts when the layer is
 * built, and stops (interrupting the running sequences) when it is released.
 *
 * @example
 * ```ts
 * import { HealthMonitor, Recovery } from "@effect-resilience/core"
 * import { Effect, Layer } from "effect"
 *
 * declare const reconnectPool: Effect.Effect<void>
 *
 * // A monitor, and recovery on it: one line each.
 * const Monitoring = Recovery.layer({
 *   rules: [{ service: "db", action: Recovery.reconnect(reconnectPool), backoff: { base: "5 seconds" } }]
 * }).pipe(Layer.provideMerge(HealthMonitor.layer()))
 * ```
 *
 * @since 0.2.0
 * @category layers
 */
export const layer = <const Rules extends ReadonlyArray<Rule<unknown>>>(
  options: LayerOptions<Rules>
): Layer.Layer<Recovery, PolicyConfigError, HealthMonitor | RuleServices<Rules[number]>> =>
  Layer.effect(
    Recovery,
    Effect.gen(function*() {
      const monitor = yield* HealthMonitor
      return yield* make<Rules>({ ...options, changes: monitor.changes })
    })
  )
