import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"

/**
 * The current clock (the test clock, in `it.effect`), with a wall time that `step` moves on its own, as an NTP
 * correction moves `Date.now()`: its monotonic time and its sleeps run on untouched. `TestClock.setTime` moves the
 * monotonic time too when it moves forward, so a step forward needs this.
 */
export const steppable = Effect.map(Clock.clockWith(Effect.succeed), (clock) => {
  let offset = 0
  const wall = () => clock.currentTimeMillisUnsafe() + offset
  const stepped: Clock.Clock = {
    currentTimeMillisUnsafe: wall,
    currentTimeMillis: Effect.sync(wall),
    currentTimeNanosUnsafe: () => BigInt(wall()) * BigInt(1_000_000),
    currentTimeNanos: Effect.sync(() => BigInt(wall()) * BigInt(1_000_000)),
    monotonicTimeNanosUnsafe: () => clock.monotonicTimeNanosUnsafe(),
    monotonicTimeNanos: clock.monotonicTimeNanos,
    sleep: (duration) => clock.sleep(duration)
  }
  return { clock: stepped, step: (millis: number) => void (offset += millis) }
})
