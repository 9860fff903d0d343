/**
 * A PostgreSQL health check for `HealthMonitor`: runs `SELECT 1` through `@effect/sql-pg`'s client, measures the
 * latency, and turns every SQL failure into a typed `PgHealthCheckFailed`.
 *
 * **Details**
 *
 * - `check()` is a plain `Effect` that needs a `SqlClient` (`PgClient.layer` provides one): it succeeds with
 *   `{ latencyMillis }` when PostgreSQL answers the query, and fails with `PgHealthCheckFailed` (message, SQLSTATE or
 *   socket error `code`, latency, and the `SqlError` as `cause`) when it does not. The latency is measured with the
 *   monotonic `Clock`, from asking the pool for a connection to the answer, so it includes waiting for a connection
 *   and opening one.
 * - Recovery needs nothing: `@effect/sql-pg`'s pool retires a connection whose socket failed or closed, so once the
 *   server is back the next check opens a fresh connection and passes.
 * - `layer` registers the check on the `HealthMonitor` (name `"postgres"` by default) for the layer's lifetime.
 *
 * **Gotchas**
 *
 * - How long a failing check takes: a refused connection fails at once; opening a connection to a server that does
 *   not answer fails after the client's `connectTimeout` (5 seconds unless set); a query on an open connection to a
 *   hung server has no limit of its own. The monitor's `timeout` (5 seconds unless set) bounds every run: it
 *   interrupts the check, which returns at once, and counts the run as failed. Set `connectTimeout` below the
 *   monitor's `timeout`, so that an unreachable server is reported as `PgHealthCheckFailed` with its cause rather than
 *   as a bare timeout.
 * - An interrupted query is left to drain in the background: `@effect/sql-pg` cancels it and drops the connection if
 *   the server stays silent (within about 5 seconds). The check does not wait for that, so that a hung server costs
 *   the monitor no more than its `timeout`.
 * - The check borrows from the application's pool: when the pool is exhausted it waits in line, which is what the
 *   application sees too. Give it a client of its own (`PgClient.layer({ ..., maxConnections: 1 })`) to probe the
 *   server alone.
 *
 * **Example** (Watching PostgreSQL)
 *
 * ```ts
 * import { HealthMonitor } from "@effect-resilience/core"
 * import { PgHealth } from "@effect-resilience/health-pg"
 * import { PgClient } from "@effect/sql-pg"
 * import { Effect, Layer } from "effect"
 *
 * const Postgres = PgClient.layer({ host: "127.0.0.1", database: "app", connectTimeout: "2 seconds" })
 *
 * const program = Effect.gen(function*() {
 *   const monitor = yield* HealthMonitor.HealthMonitor
 *   return yield* monitor.runNow("postgres")
 * }).pipe(
 *   Effect.provide(PgHealth.layer({ interval: "10 seconds", timeout: "3 seconds" }).pipe(
 *     Layer.provideMerge(HealthMonitor.layer()),
 *     Layer.provide(Postgres)
 *   ))
 * )
 * ```
 *
 * @since 0.1.0
 */
import * as HealthMonitor from "@effect-resilience/core/HealthMonitor"
import { decode, type PolicyConfigError } from "@effect-resilience/core/PolicyConfig"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import * as SqlClient from "effect/sql/SqlClient"
import type * as SqlError from "effect/sql/SqlError"

// -----------------------------------------------------------------------------
// models
// -----------------------------------------------------------------------------

/**
 * Options for `check`.
 *
 * @example
 * ```ts
 * import type { PgHealth } from "@effect-resilience/health-pg"
 *
 * // Checks that the database answers and that the table the service needs is there.
 * const options: PgHealth.CheckOptions = { query: "SELECT 1 FROM orders LIMIT 1" }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface CheckOptions {
  /** The statement to run, sent as it is (one statement). Default: `"SELECT 1"`. */
  readonly query?: string | undefined
}

/**
 * What a passing check saw.
 *
 * @example
 * ```ts
 * import type { PgHealth } from "@effect-resilience/health-pg"
 *
 * const slow = (result: PgHealth.CheckResult) => result.latencyMillis > 100
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface CheckResult {
  /** From asking the pool for a connection to PostgreSQL's answer, in (fractional) milliseconds. */
  readonly latencyMillis: number
}

/**
 * Options for `layer`: the check's, its name, and the monitor's options for it.
 *
 * @example
 * ```ts
 * import type { PgHealth } from "@effect-resilience/health-pg"
 *
 * const options: PgHealth.LayerOptions = {
 *   name: "orders-db",
 *   interval: "10 seconds",
 *   timeout: "3 seconds",
 *   failureThreshold: 2
 * }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface LayerOptions extends CheckOptions, Omit<HealthMonitor.CheckOptions<unknown, never>, "name" | "check"> {
  /** The name of the check in the monitor. Default: `"postgres"`. */
  readonly name?: string | undefined
}

// -----------------------------------------------------------------------------
// errors
// -----------------------------------------------------------------------------

/**
 * PostgreSQL did not answer the check's query: the connection failed, the query failed, or the server refused it.
 * `code` is the SQLSTATE (`"42P01"`) or the socket error (`"ECONNREFUSED"`) when there is one; `cause` is the
 * `SqlError`.
 *
 * @example
 * ```ts
 * import { PgHealth } from "@effect-resilience/health-pg"
 *
 * const error = new PgHealth.PgHealthCheckFailed({
 *   message: "PostgreSQL health check (SELECT 1) failed: ConnectionError: connect ECONNREFUSED 127.0.0.1:5432",
 *   code: "ECONNREFUSED",
 *   latencyMillis: 1.2
 * })
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export class PgHealthCheckFailed extends Schema.TaggedError<PgHealthCheckFailed>()("PgHealthCheckFailed", {
  message: Schema.String,
  code: Schema.optional(Schema.String),
  latencyMillis: Schema.Finite,
  cause: Schema.optional(Schema.Defect())
}) {}

// -----------------------------------------------------------------------------
// checks
// -----------------------------------------------------------------------------

const defaultQuery = "SELECT 1"

const CheckOptionsSchema = Schema.Struct({
  query: Schema.String.check(
    Schema.makeFilter((query) => query.trim() === "" ? "Expected a non-empty SQL statement" : undefined)
  )
})

const decodeQuery = (policy: string, query: string | undefined): Effect.Effect<string, PolicyConfigError> =>
  Effect.map(
    decode(CheckOptionsSchema, { query: query ?? defaultQuery }, { kind: "PostgreSQL health check", policy }),
    (options) => options.query
  )

// The SqlError's own message is generic ("PgConnection: Query failed"); the driver's cause says what happened, and
// carries the SQLSTATE (server errors) or the errno code (socket errors).
const describeSqlError = (error: SqlError.SqlError): { readonly detail: string; readonly code: string | undefined } => {
  const reason = error.reason
  const cause = reason.cause as { readonly message?: unknown; readonly code?: unknown } | null | undefined
  const causeMessage = typeof cause === "object" && cause !== null ? cause.message : undefined
  const code = typeof cause === "object" && cause !== null && typeof cause.code === "string" ? cause.code : undefined
  const message = typeof causeMessage === "string" && causeMessage !== ""
    ? causeMessage
    : reason.message ?? reason._tag
  const detail = code === undefined || message.includes(code) ? message : `${message} (${code})`
  return { detail: `${reason._tag}: ${detail}`, code }
}

const nanosToMillis = (nanos: bigint): number => Number(nanos) / 1_000_000

// `@effect/sql-pg` drains an interrupted statement before it lets go (a cancel request, then up to 5 seconds on a
// silent server), so an interrupted query would hold the monitor's timeout by as long. The query runs in a detached
// fiber instead: an interrupted check tells it to stop and returns, and the query drains on its own.
const promptlyInterruptible = <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.uninterruptibleMask((restore) =>
    Effect.flatMap(Effect.forkDetach(self), (fiber) =>
      restore(Fiber.join(fiber)).pipe(
        Effect.onInterrupt(() => Effect.asVoid(Effect.forkDetach(Fiber.interrupt(fiber))))
      ))
  )

const make = (
  policy: string,
  options: CheckOptions | undefined
): Effect.Effect<CheckResult, PgHealthCheckFailed | PolicyConfigError, SqlClient.SqlClient> =>
  Effect.gen(function*() {
    const query = yield* decodeQuery(policy, options?.query)
    const label = `PostgreSQL health check (${query})`
    const sql = yield* SqlClient.SqlClient
    const startedAt = yield* Clock.monotonicTimeNanos
    const latency = Effect.map(Clock.monotonicTimeNanos, (now) => nanosToMillis(now - startedAt))
    yield* promptlyInterruptible(sql.unsafe(query)).pipe(
      Effect.catchTag("SqlError", (error) =>
        Effect.flatMap(latency, (latencyMillis) => {
          const { code, detail } = describeSqlError(error)
          return Effect.fail(
            new PgHealthCheckFailed({ message: `${label} failed: ${detail}`, code, latencyMillis, cause: error })
          )
        }))
    )
    return { latencyMillis: yield* latency }
  })

/**
 * Checks PostgreSQL: runs `query` (default `SELECT 1`) and passes with its latency, or fails with
 * `PgHealthCheckFailed`. An empty `query` fails every run with `PolicyConfigError`.
 *
 * @example
 * ```ts
 * import { HealthMonitor } from "@effect-resilience/core"
 * import { PgHealth } from "@effect-resilience/health-pg"
 * import { PgClient } from "@effect/sql-pg"
 * import { Effect } from "effect"
 *
 * const program = Effect.gen(function*() {
 *   const monitor = yield* HealthMonitor.HealthMonitor
 *   yield* monitor.register({ name: "postgres", check: PgHealth.check(), interval: "10 seconds", timeout: "3 seconds" })
 * }).pipe(Effect.provide([HealthMonitor.layer(), PgClient.layer({ host: "127.0.0.1", connectTimeout: "2 seconds" })]))
 * ```
 *
 * @since 0.1.0
 * @category checks
 */
export const check = (
  options?: CheckOptions
): Effect.Effect<CheckResult, PgHealthCheckFailed | PolicyConfigError, SqlClient.SqlClient> =>
  make("PgHealth.check", options)

// -----------------------------------------------------------------------------
// layers
// -----------------------------------------------------------------------------

/**
 * Registers `check` on the `HealthMonitor` under `name` (default `"postgres"`) with the monitor's options given, and
 * unregisters it when the layer is released. Invalid options fail the layer with `PolicyConfigError`.
 *
 * @example
 * ```ts
 * import { HealthMonitor } from "@effect-resilience/core"
 * import { PgHealth } from "@effect-resilience/health-pg"
 * import { PgClient } from "@effect/sql-pg"
 * import { Layer } from "effect"
 *
 * const Monitoring = PgHealth.layer({ interval: "10 seconds", timeout: "3 seconds", failureThreshold: 2 }).pipe(
 *   Layer.provideMerge(HealthMonitor.layer()),
 *   Layer.provide(PgClient.layer({ host: "127.0.0.1", database: "app", connectTimeout: "2 seconds" }))
 * )
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  options: LayerOptions = {}
): Layer.Layer<never, PolicyConfigError, HealthMonitor.HealthMonitor | SqlClient.SqlClient> => {
  const { name = "postgres", query, ...monitorOptions } = options
  return Layer.effectDiscard(Effect.gen(function*() {
    yield* decodeQuery(name, query)
    const monitor = yield* HealthMonitor.HealthMonitor
    yield* Effect.acquireRelease(
      monitor.register({ ...monitorOptions, name, check: make(name, { query }) }),
      // Released at shutdown: the check going away is no news for alerts or recovery.
      () => monitor.unregister(name, { quiet: true })
    )
  }))
}
