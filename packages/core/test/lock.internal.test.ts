import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Scheduler } from "effect"
import { TestClock } from "effect/testing"
import { Lock } from "../src/internal/lock.ts"
import { yieldTimes } from "./interruption.ts"

/** Runs `body` under `lock`, masked as the lock's callers are. */
const locked = <A, E>(lock: Lock, body: () => Effect.Effect<A, E>) =>
  Effect.uninterruptibleMask((restore) => lock.withLock(restore, body))

/** A body that holds the lock across a few turns and records whether anyone else held it meanwhile. */
const tracker = () => {
  const state = { holders: 0, most: 0, entered: [] as Array<string>, exited: [] as Array<string> }
  const body = (name: string, hold: Effect.Effect<void> = yieldTimes(3)) => () =>
    Effect.andThen(
      Effect.sync(() => {
        state.holders++
        state.most = Math.max(state.most, state.holders)
        state.entered.push(name)
      }),
      Effect.ensuring(
        hold,
        Effect.sync(() => {
          state.holders--
          state.exited.push(name)
        })
      )
    )
  return { state, body }
}

describe("Lock", () => {
  it.effect("one holder at a time, in the order they asked", () =>
    Effect.gen(function*() {
      const lock = new Lock()
      const { body, state } = tracker()
      const fibers = yield* Effect.forEach(
        ["a", "b", "c", "d"],
        (name) => Effect.forkChild(locked(lock, body(name))),
        { concurrency: 1 }
      )
      yield* Fiber.joinAll(fibers)
      assert.deepStrictEqual(state.entered, ["a", "b", "c", "d"])
      assert.deepStrictEqual(state.exited, ["a", "b", "c", "d"])
      assert.strictEqual(state.most, 1)
      // Free again: taken at once.
      assert.strictEqual(yield* locked(lock, () => Effect.succeed("free")), "free")
    }))

  it.effect("is given back however the body ends: success, failure, defect, a body that throws, interruption", () =>
    Effect.gen(function*() {
      const lock = new Lock()
      assert.isTrue(Exit.isFailure(yield* Effect.exit(locked(lock, () => Effect.fail("no")))))
      assert.isTrue(Exit.hasDies(yield* Effect.exit(locked(lock, () => Effect.die("boom")))))
      assert.isTrue(
        Exit.hasDies(
          yield* Effect.exit(locked(lock, () => {
            throw new Error("thrown")
          }))
        )
      )
      // The body runs masked, as its callers' do: what it restores is interruptible.
      const holder = yield* Effect.forkChild(
        Effect.uninterruptibleMask((restore) => lock.withLock(restore, () => restore(Effect.never)))
      )
      yield* Effect.yieldNow
      yield* Fiber.interrupt(holder)
      assert.strictEqual(yield* locked(lock, () => Effect.succeed(1)), 1)
    }))

  it.effect("a waiter interrupted right as the lock is handed to it, before it resumes, gives it on", () =>
    Effect.gen(function*() {
      const lock = new Lock()
      const { body, state } = tracker()
      const waiter: { fiber?: Fiber.Fiber<unknown> } = {}
      // The holder interrupts the waiter right after its release handed the lock over, in the same run.
      const holder = yield* Effect.forkChild(
        locked(lock, body("holder", Effect.sleep("1 second"))).pipe(
          Effect.ensuring(Effect.suspend(() => Fiber.interrupt(waiter.fiber!)))
        )
      )
      yield* Effect.yieldNow
      waiter.fiber = yield* Effect.forkChild(locked(lock, body("waiter")))
      const third = yield* Effect.forkChild(locked(lock, body("third")))
      yield* yieldTimes(3)
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(holder)
      assert.isTrue(Exit.hasInterrupts(yield* Fiber.await(waiter.fiber)))
      yield* Fiber.join(third)
      assert.deepStrictEqual(state.entered, ["holder", "third"])
      assert.deepStrictEqual(state.exited, ["holder", "third"])
      assert.strictEqual(yield* locked(lock, () => Effect.succeed("free")), "free")
    }))

  it.effect("a waiter interrupted at any point of its wait leaves the lock as if it had never asked; one it was handed to runs whole", () =>
    Effect.gen(function*() {
      for (const releasedFirst of [false, true]) {
        for (let turns = 0; turns < 30; turns++) {
          const lock = new Lock()
          const { body, state } = tracker()
          const holder = yield* Effect.forkChild(locked(lock, body("holder", Effect.sleep("1 second"))))
          yield* Effect.yieldNow
          const waiter = yield* Effect.forkChild(
            locked(lock, body("waiter")).pipe(Effect.provideService(Scheduler.MaxOpsBeforeYield, 1))
          )
          // Long enough for the waiter to be queued and waiting.
          yield* yieldTimes(10)
          // The holder gives the lock up (to the waiter) before or during the turns the waiter is interrupted after.
          if (releasedFirst) yield* TestClock.adjust("1 second")
          yield* yieldTimes(turns)
          yield* Fiber.interrupt(waiter)
          if (!releasedFirst) yield* TestClock.adjust("1 second")
          yield* Fiber.join(holder)
          const next = yield* Effect.forkChild(locked(lock, body("next")))
          yield* yieldTimes(20)
          const where = `${releasedFirst ? "released first" : "interrupted first"}, after ${turns} turns`
          assert.isDefined(next.pollUnsafe(), `${where}: the lock was never given back`)
          assert.strictEqual(state.most, 1, `${where}: two holders at once`)
          assert.deepStrictEqual(state.entered, state.exited, `${where}: a body that entered never left`)
          assert.strictEqual(state.entered.at(-1), "next", where)
        }
      }
    }))
})
