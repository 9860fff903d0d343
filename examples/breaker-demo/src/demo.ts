/**
 * A circuit breaker guarding a flaky inventory service. The service goes down, the breaker trips and callers get
 * a cached answer at once; the breaker probes, finds the service still down and waits longer; the service comes
 * back, two probes succeed and the breaker closes. Every transition is printed with its reason.
 *
 * The program reads time only through `Clock`, so a test runs it under `TestClock` in no time.
 */
import { CircuitBreaker } from "@effect-resilience/core"
import { Clock, Console, Data, Duration, Effect, Ref, Schedule, Stream } from "effect"

/** The inventory service's failure. */
export class InventoryDown extends Data.TaggedError("InventoryDown") {}

/** The demo: about six seconds of calls against an inventory service that fails and recovers. */
export const demo = Effect.gen(function*() {
  const healthy = yield* Ref.make(true)
  const breaker = yield* CircuitBreaker.make({
    name: "inventory",
    trip: CircuitBreaker.consecutive(3),
    // Each consecutive opening lasts longer: 1s, then 2s, then 4s.
    openDuration: Schedule.exponential("1 second"),
    halfOpen: { successThreshold: 2 }
  })

  const start = yield* Clock.currentTimeMillis
  const stamp = (at: number) => `+${((at - start) / 1000).toFixed(2)}s`
  const say = (line: string) => Effect.flatMap(Clock.currentTimeMillis, (now) => Console.log(`${stamp(now)}  ${line}`))

  yield* breaker.transitions.pipe(
    Stream.runForEach((t) =>
      Console.log(`${stamp(t.at)}  [${t.breaker}] ${t.from} -> ${t.to}: ${CircuitBreaker.describeReason(t.reason)}`)
    ),
    Effect.forkScoped({ startImmediately: true })
  )

  const checkStock = Effect.flatMap(
    Ref.get(healthy),
    (ok) => ok ? Effect.succeed(42) : Effect.fail(new InventoryDown())
  )
  const call = checkStock.pipe(
    breaker.protect,
    Effect.map((stock) => `call: ${stock} in stock`),
    Effect.catchReasons("CircuitBreakerError", {
      CircuitOpen: (open) =>
        Effect.succeed(`call: rejected at once, cached answer (retry in ${Duration.format(open.retryAfter)})`),
      CircuitHalfOpen: () => Effect.succeed("call: rejected, a probe is in flight")
    }),
    Effect.catchTags({
      InventoryDown: () => Effect.succeed("call: failed, inventory is down"),
      // Any other rejection (a forced-open breaker: not in this demo).
      CircuitBreakerError: (e) => Effect.succeed(`call: rejected (${e.reason._tag})`)
    }),
    Effect.flatMap(say)
  )
  const tick = Effect.sleep("250 millis")

  yield* say("inventory is up")
  yield* Effect.repeat(Effect.andThen(call, tick), { times: 1 })
  yield* say("inventory goes down")
  yield* Ref.set(healthy, false)
  yield* Effect.repeat(Effect.andThen(call, tick), { times: 4 })
  yield* Effect.sleep("500 millis")
  // The first opening (1s) is over: the probe finds the service still down, and the next opening lasts 2s.
  yield* call
  yield* tick
  yield* call
  yield* say("inventory comes back")
  yield* Ref.set(healthy, true)
  yield* Effect.sleep("2 seconds")
  // The second opening is over: two probes succeed and the breaker closes.
  yield* Effect.repeat(Effect.andThen(call, tick), { times: 2 })

  const snapshot = yield* breaker.snapshot
  yield* say(
    `final: ${snapshot.state}, ${snapshot.totalCalls} calls counted (${snapshot.failureCount} failed), ` +
      `${snapshot.rejectedCount} rejected, ${snapshot.stateChanges} transitions`
  )
})
