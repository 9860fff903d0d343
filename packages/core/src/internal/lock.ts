/**
 * A mutual-exclusion lock for code that runs with interruption masked: what `Semaphore.withPermit` of a one-permit
 * `Semaphore` does, for a body that is masked anyway, with no effect step of its own when the lock is free. A body
 * run through `withPermit` is made interruptible again, so a masked body pays for a second mask inside it: four
 * effect steps on every call, where this takes one.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import type * as Scheduler from "effect/Scheduler"

/** A caller waiting for the lock, first come first served. */
class Waiter {
  /** Set by `release`: the lock is this waiter's from then on, until it gives it back. */
  granted = false
  resume: ((effect: Effect.Effect<void>) => void) | undefined = undefined
  dispatcher: Scheduler.SchedulerDispatcher | undefined = undefined
}

// `body` is called once the lock is held: what it reads is read under the lock. A body that throws has died.
const suspended = <A, E, R>(body: () => Effect.Effect<A, E, R>): Effect.Effect<A, E, R> => {
  try {
    return body()
  } catch (defect) {
    return Effect.die(defect)
  }
}

/** What `Effect.uninterruptibleMask` hands its body: runs an effect interruptible again. @internal */
export type Restore = <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>

/** @internal */
export class Lock {
  private held = false
  private readonly waiters: Array<Waiter> = []
  /**
   * Gives the lock back, to the next waiter if any. One function for every release: the exit handler of every body
   * the lock runs, and what a holder that took the lock with `tryHold` calls once.
   */
  readonly release = (): undefined => {
    const next = this.waiters.shift()
    if (next === undefined) {
      this.held = false
      return undefined
    }
    // Handed over: the lock stays held, now by `next`. It resumes on its own dispatcher's next turn, not inside the
    // exit of the fiber that gave the lock up.
    next.granted = true
    const resume = next.resume
    if (resume !== undefined) {
      next.resume = undefined
      next.dispatcher!.scheduleTask(() => resume(Effect.void), 0)
    }
    return undefined
  }

  /**
   * Takes the lock if it is free, for a caller that gives it back itself (`release`), however what it runs ends: call
   * it with interruption masked, and install that release before anything can interrupt the caller.
   */
  tryHold(): boolean {
    if (this.held) return false
    this.held = true
    return true
  }

  /**
   * Runs the effect `body` returns holding the lock (`body` is called once the lock is held, so what it reads is
   * read under the lock), and gives it back when that effect ends, however it ends. Call it with interruption
   * masked (`restore` is the mask's) and run what it returns at once: a free lock is taken by the call. The wait for
   * the lock is interruptible, and a caller interrupted while it waits, or once the lock was handed to it but before
   * it ran, leaves the lock as if it had never asked.
   */
  withLock<A, E, R>(restore: Restore, body: () => Effect.Effect<A, E, R>): Effect.Effect<A, E, R> {
    if (!this.held) {
      this.held = true
      return Effect.onExitPrimitive(suspended(body), this.release, true)
    }
    const waiter = new Waiter()
    this.waiters.push(waiter)
    const wait = Effect.callback<void>((resume) => {
      if (waiter.granted) return resume(Effect.void)
      waiter.resume = resume
      waiter.dispatcher = Fiber.getCurrent()!.currentDispatcher
    })
    return Effect.flatMap(
      Effect.onExitPrimitive(restore(wait), (exit) => {
        if (exit._tag === "Success") return undefined
        waiter.resume = undefined
        if (waiter.granted) return this.release()
        const at = this.waiters.indexOf(waiter)
        if (at >= 0) this.waiters.splice(at, 1)
        return undefined
      }, true),
      () => Effect.onExitPrimitive(suspended(body), this.release, true)
    )
  }
}
