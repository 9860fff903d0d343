/**
 * Deadlines shared by many calls, watched by one timer fiber, and the per-attempt timeout built on them.
 *
 * Every call of a policy waits the same length of time, so deadlines arrive in order: a doubly linked FIFO holds
 * them with O(1) add and remove, and one timer fiber sleeps until the earliest. The timer runs only while some
 * deadline is pending: it is started by the first one and stopped when the last one goes, so an idle policy holds
 * no fiber and no pending timer.
 *
 * @internal
 */
import type * as Cause from "effect/Cause"
import type * as Clock from "effect/Clock"
import type * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import type { Admission, Admitted } from "./guard.ts"
import type { Retrier } from "./retry.ts"

/** A pending deadline; calls extend it with their own state. @internal */
export class Node {
  deadline = 0
  prev: Node | undefined = undefined
  next: Node | undefined = undefined
  queued = false
}

/** Milliseconds on the Clock's monotonic time, so that a wall clock that jumps moves no deadline. @internal */
export const monotonicMillis = (clock: Clock.Clock): number => Number(clock.monotonicTimeNanosUnsafe()) / 1_000_000

/**
 * A FIFO of deadlines and the timer that fires them: `onDue` is called for each node whose deadline has come
 * (`now >= deadline`), in order, after the node has left the queue (it may add it again).
 *
 * @internal
 */
export class Deadlines<N extends Node> {
  readonly clock: Clock.Clock
  readonly context: Context.Context<never>
  readonly onDue: (node: N, now: number) => void
  head: N | undefined = undefined
  tail: N | undefined = undefined
  timer: Fiber.Fiber<void> | undefined = undefined
  /** True from the start of the timer to its end: at most one timer at a time. */
  active = false
  /** True while the timer fires nodes: what they run may add and remove nodes meanwhile. */
  sweeping = false
  readonly loop: Effect.Effect<void>

  constructor(clock: Clock.Clock, context: Context.Context<never>, onDue: (node: N, now: number) => void) {
    this.clock = clock
    this.context = context
    this.onDue = onDue
    this.loop = Effect.suspend(() => this.step())
  }

  now(): number {
    return monotonicMillis(this.clock)
  }

  /** Appends `node`; `deadline` must not be earlier than any queued one. */
  add(node: N, deadline: number): void {
    node.deadline = deadline
    node.queued = true
    node.next = undefined
    node.prev = this.tail
    if (this.tail === undefined) this.head = node
    else this.tail.next = node
    this.tail = node
    if (!this.active) {
      this.active = true
      // The timer runs at once, up to its first sleep; if that already fired everything, it has ended.
      const timer = Effect.runForkWith(this.context)(this.loop)
      if (this.active) this.timer = timer
    }
  }

  remove(node: N): void {
    if (!node.queued) return
    node.queued = false
    const { next, prev } = node
    if (prev === undefined) this.head = next as N | undefined
    else prev.next = next
    if (next === undefined) this.tail = prev as N | undefined
    else next.prev = prev
    node.prev = node.next = undefined
    // The last deadline gone: stop the timer now rather than let it sleep on. While it sweeps, it ends by itself.
    if (this.head === undefined && this.active && !this.sweeping) {
      const timer = this.timer
      this.active = false
      this.timer = undefined
      timer?.interruptUnsafe()
    }
  }

  private step(): Effect.Effect<void> {
    const head = this.head
    if (head === undefined) {
      this.active = false
      this.timer = undefined
      return Effect.void
    }
    const now = this.now()
    if (now < head.deadline) {
      return Effect.flatMap(this.clock.sleep(Duration.millis(head.deadline - now)), () => this.loop)
    }
    this.sweeping = true
    let node: N | undefined = head
    while (node !== undefined && now >= node.deadline) {
      this.remove(node)
      this.onDue(node, now)
      node = this.head
    }
    this.sweeping = false
    return this.loop
  }
}

const RUNNING = 0
const TIMED_OUT = 1
const CANCELLED = 2
const DONE = 3

class Call extends Node {
  readonly fiber: Fiber.Fiber<unknown, unknown>
  readonly resume: (exit: Exit.Exit<unknown, unknown>) => void
  state = RUNNING
  constructor(fiber: Fiber.Fiber<unknown, unknown>, resume: (exit: Exit.Exit<unknown, unknown>) => void) {
    super()
    this.fiber = fiber
    this.resume = resume
  }
}

/**
 * Gives attempts a deadline `millis` after they start. The counters are plain fields that metrics read.
 *
 * @internal
 */
export class Limiter {
  readonly millis: number
  readonly timeoutError: () => unknown
  readonly deadlines: Deadlines<Call>
  calls = 0
  timeouts = 0
  inFlight = 0

  constructor(
    clock: Clock.Clock,
    context: Context.Context<never>,
    millis: number,
    timeoutError: () => unknown
  ) {
    this.millis = millis
    this.timeoutError = timeoutError
    this.deadlines = new Deadlines<Call>(clock, context, (call) => {
      call.state = TIMED_OUT
      this.timeouts++
      // The caller hears of it once the attempt has stopped: see `onExit`.
      call.fiber.interruptUnsafe()
    })
  }

  /** Runs `self` with a deadline. */
  run<A, E, R, X>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E | X, R> {
    return Effect.callback<A, E | X, R>((resume) => {
      this.calls++
      const fiber = start(Fiber.getCurrent()!.context, self)
      const exit = fiber.pollUnsafe()
      return exit === undefined ? this.wait(fiber, resume) : resume(exit)
    })
  }

  /**
   * Runs `self` with a deadline as the first attempt of `retrier`'s policy, which retries a failure with `self` under
   * a deadline of its own each time: what `timeout(self).pipe(retry)` does, with the retry's counting and its handler
   * on this callback rather than on two effects of their own, which every call that succeeds at once pays for.
   */
  runRetried<A, E, R>(self: Effect.Effect<A, E, R>, retrier: Retrier): Effect.Effect<A, unknown, R> {
    return Effect.callback<A, unknown, R>((resume) => {
      const caller = Fiber.getCurrent()!
      const startedAt = retrier.begin(caller)
      this.calls++
      const fiber = start(caller.context, self)
      const exit = fiber.pollUnsafe()
      // The handler for a later exit is made only for an attempt that suspends.
      if (exit !== undefined) return this.retryFailed(exit, self, retrier, startedAt, resume)
      return this.wait(fiber, (later) => this.retryFailed(later, self, retrier, startedAt, resume))
    })
  }

  /** Resumes a `runRetried` caller with a success, or with the retries of a failed first attempt. */
  private retryFailed<A, E, R>(
    exit: Exit.Exit<A, unknown>,
    self: Effect.Effect<A, E, R>,
    retrier: Retrier,
    startedAt: number,
    resume: (effect: Effect.Effect<A, unknown, R>) => void
  ): void {
    resume(exit._tag === "Success" ? exit : retrier.afterFailure(this.run(self), exit.cause, startedAt))
  }

  /**
   * Waits for `fiber`, an attempt that did not finish at once, resuming the caller with its exit or with the timeout
   * error. Returns the caller's interruption handler.
   */
  wait<A, E, X>(fiber: Fiber.Fiber<A, E>, resume: (exit: Exit.Exit<A, E | X>) => void): Effect.Effect<void> {
    const call = this.track(fiber, resume)
    return Effect.suspend(() => this.cancel(call))
  }

  /** Starts the deadline of `fiber`, an attempt that did not finish at once: `resume` hears its exit or the timeout. */
  private track<A, E, X>(fiber: Fiber.Fiber<A, E>, resume: (exit: Exit.Exit<A, E | X>) => void): Call {
    const call = new Call(fiber, resume as Call["resume"])
    this.inFlight++
    fiber.addObserver((exit) => this.onExit(call, exit))
    this.deadlines.add(call, this.deadlines.now() + this.millis)
    return call
  }

  /**
   * What `breaker.protect(retry(timeout(self)))` does (`retrier` may be absent), in one callback for a call that
   * `admission` admits without an effect: admitting, attempting, retrying and settling with no effect step of the
   * breaker's. Any other call takes `guarded`, the composed path, with nothing admitted.
   *
   * The breaker settles before the caller resumes, so no interruption of the caller can come between a call's end
   * and its settlement; an interrupted caller settles as interrupted once the attempt or the retries have stopped.
   */
  runGuarded<A, E, R>(
    self: Effect.Effect<A, E, R>,
    retrier: Retrier | undefined,
    admission: Admission,
    guarded: (self: Effect.Effect<A, E, R>) => Effect.Effect<A, unknown, R>
  ): Effect.Effect<A, unknown, R> {
    return Effect.callback<A, unknown, R>((resume) =>
      this.startGuarded(Fiber.getCurrent()!, self, retrier, admission, guarded, resume as Resume)
    )
  }

  /**
   * The body of `runGuarded`, for a callback of someone else's (a fallback chain's) to run in its own: starts the
   * call for `caller`, then `resume` hears what the caller resumes with, an exit for a call admitted at once, else
   * the composed path to run. Returns the caller's interruption handler, if the call is still running.
   */
  startGuarded<A, E, R>(
    caller: Fiber.Fiber<unknown, unknown>,
    self: Effect.Effect<A, E, R>,
    retrier: Retrier | undefined,
    admission: Admission,
    guarded: (self: Effect.Effect<A, E, R>) => Effect.Effect<A, unknown, R>,
    resume: Resume
  ): Effect.Effect<void> | undefined {
    const admitted = admission.admit(caller)
    if (admitted === undefined) {
      // Run by the caller, which provides `R`.
      resume(guarded(self) as Effect.Effect<A, unknown>)
      return undefined
    }
    const startedAt = retrier === undefined ? 0 : retrier.begin(caller)
    this.calls++
    const fiber = start(caller.context, self)
    const exit = fiber.pollUnsafe()
    if (exit !== undefined && (exit._tag === "Success" || retrier === undefined)) {
      settleThenResume(admitted, caller, exit, resume)
      return undefined
    }
    const call = new GuardedCall(admitted, caller, resume)
    if (exit !== undefined) this.retryGuarded(call, self, retrier!, exit.cause, startedAt)
    else {
      call.attempt = this.track(
        fiber,
        (later: Exit.Exit<unknown, unknown>) =>
          later._tag === "Success" || retrier === undefined
            ? call.finish(later)
            : this.retryGuarded(call, self, retrier, later.cause, startedAt)
      )
    }
    return call.phase === FINISHED ? undefined : Effect.suspend(() => this.cancelGuarded(call))
  }

  /** Hands a failed first attempt of a `runGuarded` call to the retries, on a fiber of their own. */
  private retryGuarded<A, E, R>(
    call: GuardedCall,
    self: Effect.Effect<A, E, R>,
    retrier: Retrier,
    cause: Cause.Cause<unknown>,
    startedAt: number
  ): void {
    call.phase = RETRYING
    // On a fiber of its own, not the caller's, so that the breaker settles when the retries end, before the caller
    // resumes: resuming the caller with the retries would leave a gap between them and the settlement.
    const retries = start(call.caller.context, retrier.afterFailure(this.run(self), cause, startedAt))
    // What the retries ran as they started (a schedule's effect) interrupted the caller: its handler waits for them.
    if (call.stopping !== undefined) return call.stopping(Fiber.interrupt(retries))
    const done = retries.pollUnsafe()
    if (done !== undefined) return call.finish(done)
    call.retries = retries
    retries.addObserver((exit) => {
      if (call.phase === RETRYING) call.finish(exit)
    })
  }

  /** The interruption of a `runGuarded` caller: stops the attempt or the retries, then settles as interrupted. */
  private cancelGuarded(call: GuardedCall): Effect.Effect<void> {
    const phase = call.phase
    if (phase === FINISHED) return Effect.void
    call.phase = FINISHED
    const stop = phase === ATTEMPT
      ? this.cancel(call.attempt!)
      : call.retries !== undefined
      ? Fiber.interrupt(call.retries)
      // Interrupted by what the retries ran as they started: `retryGuarded` hands over their fiber once it has it.
      : Effect.callback<void>((resume) => void (call.stopping = resume))
    return Effect.flatMap(stop, () => call.admitted.exit(call.caller, Exit.interrupt(call.caller.id)) ?? Effect.void)
  }

  private onExit(call: Call, exit: Exit.Exit<unknown, unknown>): void {
    if (call.state === CANCELLED) {
      // Its caller was interrupted: the attempt has stopped only now (its finalizers may have taken a while).
      this.inFlight--
      return
    }
    if (call.state === RUNNING) {
      this.deadlines.remove(call)
      // Finished at or past its deadline before the timer got to it: late all the same, whatever the outcome.
      if (this.deadlines.now() >= call.deadline) {
        call.state = TIMED_OUT
        this.timeouts++
      }
    }
    const timedOut = call.state === TIMED_OUT
    call.state = DONE
    this.inFlight--
    call.resume(timedOut ? Exit.fail(this.timeoutError()) : exit)
  }

  private cancel(call: Call): Effect.Effect<void> {
    if (call.state === DONE) return Effect.void
    this.deadlines.remove(call)
    call.state = CANCELLED
    return Fiber.interrupt(call.fiber)
  }
}

const ATTEMPT = 0
const RETRYING = 1
const FINISHED = 2

/** A callback's `resume`, for any success type: what resumes it is the exit of the effect it ran. @internal */
export type Resume = (effect: Effect.Effect<unknown, unknown>) => void

/**
 * Whether `effect` is a success already, rather than a failure or an effect still to run: what a `Resume` is handed
 * for a call that succeeded at once, whose value can be served with no effect step. @internal
 */
export const isSucceeded = <A, E, R>(effect: Effect.Effect<A, E, R>): effect is Exit.Success<A, E> =>
  Exit.isExit(effect) && effect._tag === "Success"

/** A `runGuarded` call that did not end at once: where it is, and what interrupting its caller stops. */
class GuardedCall {
  readonly admitted: Admitted
  readonly caller: Fiber.Fiber<unknown, unknown>
  readonly resume: Resume
  phase = ATTEMPT
  /** The first attempt's deadline, while it runs. */
  attempt: Call | undefined = undefined
  /** The retries' fiber, once the first attempt failed. */
  retries: Fiber.Fiber<unknown, unknown> | undefined = undefined
  /** The handler of a caller interrupted while its retries started, waiting to stop them. */
  stopping: ((stop: Effect.Effect<void>) => void) | undefined = undefined
  constructor(admitted: Admitted, caller: Fiber.Fiber<unknown, unknown>, resume: Resume) {
    this.admitted = admitted
    this.caller = caller
    this.resume = resume
  }

  finish(exit: Exit.Exit<unknown, unknown>): void {
    this.phase = FINISHED
    settleThenResume(this.admitted, this.caller, exit, this.resume)
  }
}

/**
 * Settles `admitted` with `exit`, then resumes the caller with it. What the settlement publishes runs on a fiber of
 * its own, so that interrupting the caller cannot drop it; the caller resumes once it is done. A settlement that
 * fails (a predicate of the user's threw on the exit) adds its cause to the caller's, as a finalizer's does.
 */
const settleThenResume = (
  admitted: Admitted,
  caller: Fiber.Fiber<unknown, unknown>,
  exit: Exit.Exit<unknown, unknown>,
  resume: Resume
): void => {
  const after = admitted.exit(caller, exit)
  if (after === undefined) return resume(exit)
  const publishing = start(caller.context, after)
  const published = publishing.pollUnsafe()
  if (published === undefined) return resume(Effect.flatMap(Fiber.await(publishing), (done) => andAfter(exit, done)))
  resume(andAfter(exit, published))
}

/** A call's exit, then its settlement's, as a finalizer's: a failed settlement adds its cause to the call's. */
const andAfter = (
  exit: Exit.Exit<unknown, unknown>,
  settled: Exit.Exit<void>
): Effect.Effect<unknown, unknown> => settled._tag === "Success" ? exit : Effect.ensuring(exit, settled)

/**
 * Starts `self` on a fiber of its own that runs at once, in `context` (the current fiber's). Call it from an
 * `Effect.callback` registration: nothing can then interrupt the caller between the start of the attempt and the
 * handler that interrupts the attempt with it.
 *
 * @internal
 */
export const start = <A, E, R>(context: Context.Context<never>, self: Effect.Effect<A, E, R>): Fiber.Fiber<A, E> =>
  Effect.runForkWith(context as Context.Context<R>)(self)

/** The limiter of each timeout policy made by `Timeout.make`. @internal */
export const limiters = new WeakMap<object, Limiter>()

/**
 * Starts a call of a policy whose parts run in one callback (see `Limiter.startGuarded`) from a callback of the
 * caller's own: what `policy.protect(self)` does, with no effect step of its own. @internal
 */
export type Starter = <A, E, R>(
  self: Effect.Effect<A, E, R>,
  caller: Fiber.Fiber<unknown, unknown>,
  resume: Resume
) => Effect.Effect<void> | undefined

/** The starter of each policy made by `Policy.make` that has one. @internal */
export const starters = new WeakMap<object, Starter>()
