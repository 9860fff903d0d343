/**
 * Admin actions as events: the admin routes publish one per action (with its result, never the token) and the live
 * event stream (`Events`) forwards them to its clients.
 *
 * @internal
 */
import * as Context from "effect/Context"
import * as Layer from "effect/Layer"
import * as PubSub from "effect/PubSub"

/** One admin action and what came of it. @internal */
export interface AdminEvent {
  readonly action: "reset" | "force_open" | "force_close" | "disable"
  readonly breaker: string
  /** The key the action applied to; `null` for the whole breaker. */
  readonly key: string | null
  /** `applied`, or why it did nothing: `unauthorized`, `not_configured`, `not_found` (see `Admin.AdminEvent`). */
  readonly result: "applied" | "unauthorized" | "not_configured" | "not_found"
  /** Epoch milliseconds, from `Clock`. */
  readonly at: number
}

/** Where admin actions are published. @internal */
export class AdminEvents extends Context.Service<AdminEvents, PubSub.PubSub<AdminEvent>>()(
  "@effect-resilience/http/AdminEvents"
) {}

/** A sliding hub: a publisher never waits, a subscriber that falls behind loses the oldest actions. @internal */
export const layer: Layer.Layer<AdminEvents> = Layer.effect(AdminEvents, PubSub.sliding<AdminEvent>(256))
