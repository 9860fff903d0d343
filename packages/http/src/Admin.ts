/**
 * Admin actions as events. Every admin request (applied or refused) is logged and published here with the breaker,
 * the key, the action and the result, never the token, so the live event stream (`Events`) and user code can
 * show who touched which breaker. `ResilienceHttp.layer` provides one `AdminEvents` to both the admin routes and
 * the event stream; subscribe with `Stream.fromPubSub`.
 *
 * **Example** (Logging admin actions elsewhere)
 *
 * ```ts
 * import { Admin } from "@effect-resilience/http"
 * import { Effect, Stream } from "effect"
 *
 * const audit = Effect.gen(function*() {
 *   const admin = yield* Admin.AdminEvents
 *   yield* Stream.fromPubSub(admin).pipe(
 *     Stream.runForEach((event) => Effect.log(`${event.action} ${event.breaker}: ${event.result}`)),
 *     Effect.forkScoped
 *   )
 * })
 * ```
 *
 * @since 0.2.0
 */
import type * as Context from "effect/Context"
import type * as Layer from "effect/Layer"
import type * as PubSub from "effect/PubSub"
import * as Schema from "effect/Schema"
import * as internal from "./internal/adminEvents.ts"

/**
 * One admin request: what was asked, of which breaker and key (`null`: every key), and what came of it.
 *
 * @example
 * ```ts
 * import { Admin } from "@effect-resilience/http"
 * import { Schema } from "effect"
 *
 * const toJson = Schema.encodeSync(Schema.fromJsonString(Admin.AdminEvent))
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export const AdminEvent = Schema.Struct({
  action: Schema.Literals(["reset", "force_open", "force_close", "disable"]),
  breaker: Schema.String,
  key: Schema.NullOr(Schema.String),
  result: Schema.Literals(["applied", "unauthorized", "not_configured", "not_found"]),
  /** Epoch millis, from `Clock`. */
  at: Schema.Number
})

/**
 * @example
 * ```ts
 * import type { Admin } from "@effect-resilience/http"
 *
 * const refused = (event: Admin.AdminEvent) => event.result !== "applied"
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export type AdminEvent = typeof AdminEvent.Type

/**
 * The admin event hub, a sliding `PubSub` (a subscriber that falls behind loses the oldest events; publishing never
 * waits).
 *
 * @example
 * ```ts
 * import { Admin } from "@effect-resilience/http"
 * import { Effect, PubSub } from "effect"
 *
 * const program = Effect.gen(function*() {
 *   const admin = yield* Admin.AdminEvents
 *   yield* PubSub.publish(admin, { action: "reset", breaker: "db", key: null, result: "applied", at: 0 })
 * }).pipe(Effect.provide(Admin.layer))
 * ```
 *
 * @since 0.2.0
 * @category services
 */
export const AdminEvents: Context.Service<internal.AdminEvents, PubSub.PubSub<internal.AdminEvent>> =
  internal.AdminEvents

/**
 * @example
 * ```ts
 * import type { Admin } from "@effect-resilience/http"
 * import type { Layer } from "effect"
 *
 * type NeedsAdminEvents = Layer.Layer<never, never, Admin.AdminEvents>
 * ```
 *
 * @since 0.2.0
 * @category services
 */
export type AdminEvents = internal.AdminEvents

/**
 * Provides an `AdminEvents` hub. `ResilienceHttp.layer` makes its own when none is in context: provide this one
 * outside `HttpRouter.serve` to subscribe too.
 *
 * @example
 * ```ts
 * import { Admin } from "@effect-resilience/http"
 * import { Effect, Stream } from "effect"
 *
 * const program = Effect.gen(function*() {
 *   const admin = yield* Admin.AdminEvents
 *   return Stream.fromPubSub(admin)
 * }).pipe(Effect.provide(Admin.layer))
 * ```
 *
 * @since 0.2.0
 * @category layers
 */
export const layer: Layer.Layer<internal.AdminEvents> = internal.layer
