import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"

/**
 * Fails with `error()` where `self` ends interrupted on its own (a fiber of the client's interrupted elsewhere). Effect
 * runs no error handler of a caller being interrupted, so an interruption this handler sees is never the caller's:
 * an interrupted caller stays interrupted.
 *
 * @internal
 */
export const failIfInterrupted = <A, E, R, E2>(
  self: Effect.Effect<A, E, R>,
  error: () => E2
): Effect.Effect<A, E | E2, R> =>
  Effect.catchCause(
    self,
    (cause): Effect.Effect<never, E | E2> =>
      Cause.hasInterruptsOnly(cause) ? Effect.fail(error()) : Effect.failCause(cause)
  )
