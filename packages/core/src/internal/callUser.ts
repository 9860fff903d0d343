/**
 * Calls code of the user's that returns an effect (a cache backend, a sink) on a request path.
 *
 * @internal
 */
import * as Effect from "effect/Effect"

/**
 * What `f` returns, or a defect when it throws instead of returning an effect: what `Effect.suspend(f)` gives,
 * without the effect step, for a call that a part wraps in its own handling (a defect there is a failed call, not a
 * stuck slot, permit or queue). Off a request path, `Effect.suspend` says the same.
 *
 * @internal
 */
export const callUser = <A, E, R>(f: () => Effect.Effect<A, E, R>): Effect.Effect<A, E, R> => {
  try {
    return f()
  } catch (defect) {
    return Effect.die(defect)
  }
}
