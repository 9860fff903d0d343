/**
 * The hedged race: one call's attempts, started `delay` apart on a shared timer, settled by the first success or by
 * the failure of every attempt started.
 *
 * @internal
 */
import type * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import type * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import { isLocalRejection } from "./rejection.ts"
import { Deadlines, Node, start } from "./timeout.ts"

/**
 * True in a hedged attempt (not the primary): a rate limiter that waits for a token (`onExceeded: "delay"`) does not
 * in one, as a hedge is for a slow dependency, and a reservation for a later window is only load pushed onto it.
 *
 * @internal
 */
export const HedgedAttempt = Context.Reference<boolean>("@effect-resilience/core/HedgedAttempt", {
  defaultValue: () => false
})

const RUNNING = 0
const SETTLED = 1
const CANCELLED = 2

class Race extends Node {
  readonly effect: Effect.Effect<unknown, unknown, unknown>
  readonly context: Context.Context<never>
  /** The context of the hedged attempts: the caller's, marked `HedgedAttempt`. */
  hedgeContext: Context.Context<never> | undefined = undefined
  readonly resume: (effect: Effect.Effect<unknown, unknown>) => void
  readonly attempts: Array<Fiber.Fiber<unknown, unknown>>
  state = RUNNING
  /** Attempts started and not finished. */
  running = 1
  /** The winner's exit, or the last failure (the last of the dependency's, if any attempt reached it). */
  result: Exit.Exit<unknown, unknown> | undefined = undefined
  resumed = false
  constructor(
    effect: Effect.Effect<unknown, unknown, unknown>,
    context: Context.Context<never>,
    primary: Fiber.Fiber<unknown, unknown>,
    resume: (effect: Effect.Effect<unknown, unknown>) => void
  ) {
    super()
    this.effect = effect
    this.context = context
    this.attempts = [primary]
    this.resume = resume
  }
}

/**
 * Runs hedged calls. The counters are plain fields that metrics read.
 *
 * @internal
 */
export class Hedger {
  readonly delayMillis: number
  readonly maxHedges: number
  readonly deadlines: Deadlines<Race>
  calls = 0
  hedges = 0
  inFlight = 0
  /** Wins by attempt index, 0 being the primary. */
  readonly wins: Array<number>

  constructor(clock: Clock.Clock, context: Context.Context<never>, delayMillis: number, maxHedges: number) {
    this.delayMillis = delayMillis
    this.maxHedges = maxHedges
    this.wins = Array.from({ length: maxHedges + 1 }, () => 0)
    this.deadlines = new Deadlines<Race>(clock, context, (race, now) => this.hedge(race, now))
  }

  run<A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> {
    return Effect.callback<A, E, R>((resume) => {
      this.calls++
      const caller = Fiber.getCurrent()!
      const primary = start(caller.context, self)
      const exit = primary.pollUnsafe()
      if (exit !== undefined) {
        // Settled without suspending: no timer, no hedge.
        if (exit._tag === "Success") this.wins[0]++
        return resume(exit)
      }
      const race = new Race(
        self as Effect.Effect<unknown, unknown, unknown>,
        caller.context,
        primary,
        resume as Race["resume"]
      )
      this.inFlight++
      primary.addObserver((primaryExit) => this.onExit(race, 0, primaryExit))
      this.deadlines.add(race, this.deadlines.now() + this.delayMillis)
      return Effect.suspend(() => this.cancel(race))
    })
  }

  private hedge(race: Race, now: number): void {
    const index = race.attempts.length
    this.hedges++
    // Queued again before the attempt starts, so that an attempt that wins at once takes the race off the queue.
    if (index < this.maxHedges) this.deadlines.add(race, now + this.delayMillis)
    race.running++
    const context = race.hedgeContext ?? (race.hedgeContext = Context.add(race.context, HedgedAttempt, true))
    const attempt = start(context, race.effect)
    race.attempts.push(attempt)
    attempt.addObserver((exit) => this.onExit(race, index, exit))
    // What the attempt did as it started may have settled the race without it: it is a loser, then.
    if (race.state !== RUNNING && attempt.pollUnsafe() === undefined) attempt.interruptUnsafe()
  }

  private onExit(race: Race, index: number, exit: Exit.Exit<unknown, unknown>): void {
    race.running--
    if (race.state === CANCELLED) return
    if (race.state === SETTLED) {
      // A loser has stopped.
      if (race.running === 0) this.finish(race)
      return
    }
    if (exit._tag === "Success") {
      this.wins[index]++
      this.settle(race, exit)
    } else {
      // A failure ends the race only when no other attempt is left running. An attempt turned away before it
      // reached the dependency (a full bulkhead's queue timed out) says nothing of it: a failure of the dependency's
      // stays the call's, so that a breaker outside counts it, as it would have without the hedge.
      if (race.result === undefined || !rejectedLocally(exit) || rejectedLocally(race.result)) race.result = exit
      if (race.running === 0) this.settle(race, race.result)
    }
  }

  private settle(race: Race, exit: Exit.Exit<unknown, unknown>): void {
    race.state = SETTLED
    race.result = exit
    this.deadlines.remove(race)
    // Losers are interrupted; the caller resumes once they have stopped (at once, unless a finalizer suspends).
    for (const attempt of race.attempts) {
      if (attempt.pollUnsafe() === undefined) attempt.interruptUnsafe()
    }
    if (race.running === 0) this.finish(race)
  }

  private finish(race: Race): void {
    if (race.resumed) return
    race.resumed = true
    this.inFlight--
    race.resume(race.result!)
  }

  private cancel(race: Race): Effect.Effect<void> {
    if (race.resumed) return Effect.void
    race.state = CANCELLED
    race.resumed = true
    this.inFlight--
    this.deadlines.remove(race)
    return Fiber.interruptAll(race.attempts)
  }
}

/** Whether an attempt failed with a local rejection (see internal/rejection.ts), read as a breaker reads it. */
const rejectedLocally = (exit: Exit.Exit<unknown, unknown>): boolean => {
  if (exit._tag === "Success") return false
  for (const reason of exit.cause.reasons) {
    if (reason._tag === "Fail") return isLocalRejection(reason.error)
    if (reason._tag === "Die") return false
  }
  return false
}
