import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Layer, Metric, Scope, Stream } from "effect"
import { TestClock } from "effect/testing"
import * as CircuitBreaker from "../src/CircuitBreaker.ts"
import * as CircuitBreakerRegistry from "../src/CircuitBreakerRegistry.ts"
import * as Degradation from "../src/Degradation.ts"
import { interruptedAfter, yieldTimes } from "./interruption.ts"

// The agent service of the seeds: its breakers, and its degradation table.
const breakers = ["claude_api", "telegram_api", "exa_api", "tavily_api", "firebase", "qdrant"] as const
type Breaker = typeof breakers[number]

const rules: ReadonlyArray<Degradation.Rule> = [
  { level: 1, breakers: ["exa_api", "tavily_api"], when: "all", description: "Search degraded" },
  { level: 2, breakers: ["qdrant"], description: "Memory degraded" },
  { level: 3, breakers: ["firebase"], description: "State degraded" },
  { level: 4, breakers: ["claude_api"], description: "Critical" }
]

// The table, read independently of the rules' evaluation: the worst condition wins.
const expectedLevel = (open: ReadonlySet<Breaker>): [number, string] =>
  open.has("claude_api")
    ? [4, "Critical"]
    : open.has("firebase")
    ? [3, "State degraded"]
    : open.has("qdrant")
    ? [2, "Memory degraded"]
    : open.has("exa_api") && open.has("tavily_api")
    ? [1, "Search degraded"]
    : [0, "Normal"]

const makeBreakers = Effect.forEach(breakers, (name) => CircuitBreaker.make({ name }))

/** The status the transitions have fed, without evaluating again: the head of `changes`. */
const fed = (degradation: Degradation.Degradation) =>
  Effect.flatMap(
    Stream.runHead(degradation.changes),
    (head) => Effect.succeed(head._tag === "Some" ? head.value : undefined)
  )

const settle = Effect.repeat(Effect.yieldNow, { times: 20 })

/** Lets the transitions' subscriber run until the status it fed satisfies `f` (or 1,000 turns went by). */
const fedWhen = (degradation: Degradation.Degradation, f: (status: Degradation.Status) => boolean) =>
  fed(degradation).pipe(
    Effect.tap(() => Effect.yieldNow),
    Effect.repeat({ until: (status) => status !== undefined && f(status), times: 1000 })
  )

const downIs = (...names: ReadonlyArray<string>) => (status: Degradation.Status) =>
  status.down.join(",") === names.join(",")

describe("Degradation", () => {
  it.effect("every combination of the agent service's breakers' states gives the table's level", () =>
    Effect.gen(function*() {
      const all = yield* makeBreakers
      const degradation = yield* Degradation.make({ rules })
      // Each breaker closed, open, forced open or half-open: 4^6 combinations. Only the first two kinds of open count.
      const states: ReadonlyArray<CircuitBreaker.State> = ["Closed", "Open", "ForcedOpen", "HalfOpen"]
      for (let combination = 0; combination < states.length ** breakers.length; combination++) {
        const stateOf = (i: number) => states[Math.floor(combination / states.length ** i) % states.length]
        yield* Effect.forEach(all, (breaker, i) => CircuitBreaker.setState(breaker, stateOf(i)))
        const open = new Set(breakers.filter((_, i) => stateOf(i) === "Open" || stateOf(i) === "ForcedOpen"))
        const [level, description] = expectedLevel(open)
        const status = yield* degradation.status
        const label = breakers.map((name, i) => `${name}: ${stateOf(i)}`).join(", ")
        assert.strictEqual(status.level, level, label)
        assert.strictEqual(status.description, description, label)
        assert.strictEqual(status.rule?.description ?? "Normal", description, label)
        // Every rule that holds is listed, not only the one that fired.
        assert.deepStrictEqual(
          status.active.map((rule) => rule.level),
          rules.filter((rule) => rule.breakers.every((name) => open.has(name as Breaker))).map((rule) => rule.level),
          label
        )
        assert.deepStrictEqual(
          [...status.down].sort(),
          [...open].filter((name) => name !== "telegram_api").sort(),
          label
        )
        // The transitions have fed the same status to subscribers.
        assert.strictEqual((yield* fedWhen(degradation, (fedStatus) => fedStatus.level === level))?.level, level, label)
      }
    }).pipe(Effect.scoped, Effect.provide(CircuitBreakerRegistry.layer)))

  it.effect("changes stream the current status, then each change with the rule that fired", () =>
    Effect.gen(function*() {
      const all = yield* makeBreakers
      const byName = (name: Breaker) => all.find((breaker) => breaker.name === name)!
      const degradation = yield* Degradation.make({ rules })
      const collected = yield* degradation.changes.pipe(
        Stream.map((status) => `${status.level} ${status.rule?.description ?? "-"} [${status.down.join(",")}]`),
        Stream.take(6),
        Stream.runCollect,
        Effect.forkChild({ startImmediately: true })
      )
      yield* byName("exa_api").forceOpen()
      yield* fedWhen(degradation, downIs("exa_api"))
      yield* byName("tavily_api").forceOpen()
      yield* fedWhen(degradation, downIs("exa_api", "tavily_api"))
      yield* byName("claude_api").forceOpen()
      yield* fedWhen(degradation, downIs("exa_api", "tavily_api", "claude_api"))
      yield* byName("telegram_api").forceOpen() // named by no rule: no change
      yield* settle
      yield* byName("claude_api").reset()
      yield* fedWhen(degradation, downIs("exa_api", "tavily_api"))
      yield* byName("exa_api").reset()
      assert.deepStrictEqual(yield* Fiber.join(collected), [
        "0 - []",
        "0 - [exa_api]",
        "1 Search degraded [exa_api,tavily_api]",
        "4 Critical [exa_api,tavily_api,claude_api]",
        "1 Search degraded [exa_api,tavily_api]",
        "0 - [tavily_api]"
      ])
    }).pipe(Effect.scoped, Effect.provide(CircuitBreakerRegistry.layer)))

  it.effect("the subscription is in place when make returns: a transition right after is not missed", () =>
    Effect.gen(function*() {
      const all = yield* makeBreakers
      const degradation = yield* Degradation.make({ rules })
      yield* all.find((breaker) => breaker.name === "qdrant")!.forceOpen()
      assert.strictEqual((yield* fedWhen(degradation, (status) => status.level === 2))?.level, 2)
    }).pipe(Effect.scoped, Effect.provide(CircuitBreakerRegistry.layer)))

  it.effect("`any` needs one breaker down; `states` can count half-open; a tie goes to the rule listed first", () =>
    Effect.gen(function*() {
      const [search, vector] = yield* Effect.all([
        CircuitBreaker.make({ name: "search" }),
        CircuitBreaker.make({ name: "vector" })
      ])
      const degradation = yield* Degradation.make({
        rules: [
          { level: 2, breakers: ["search", "vector"], when: "any", description: "One retrieval path down" },
          { level: 2, breakers: ["vector"], description: "Vector search down" },
          { level: 3, breakers: ["search"], states: ["HalfOpen"], description: "Search probing" }
        ],
        maxLevel: 3
      })
      yield* CircuitBreaker.setState(vector, "Open")
      const one = yield* degradation.status
      assert.deepStrictEqual([one.level, one.description, one.active.length], [2, "One retrieval path down", 2])
      yield* CircuitBreaker.setState(search, "HalfOpen")
      const probing = yield* degradation.status
      assert.deepStrictEqual([probing.level, probing.description], [3, "Search probing"])
    }).pipe(Effect.scoped, Effect.provide(CircuitBreakerRegistry.layer)))

  it.effect("a status read again with no change since is the same reading; a change or a breaker leaving shows at once", () =>
    Effect.gen(function*() {
      const all = yield* makeBreakers
      const degradation = yield* Degradation.make({ rules })
      const first = yield* degradation.status
      assert.strictEqual(yield* degradation.status, first)
      // Read before the transitions' subscriber had a turn: the change is seen by the read itself.
      const qdrant = all.find((breaker) => breaker.name === "qdrant")!
      yield* qdrant.forceOpen()
      assert.strictEqual((yield* degradation.status).level, 2)
      yield* CircuitBreaker.setState(qdrant, "Closed")
      assert.strictEqual((yield* degradation.status).level, 0)
      // A forced-open breaker whose scope closes leaves the registry, and reads as closed from then on.
      const scope = yield* Scope.make()
      yield* CircuitBreaker.make({ name: "firebase-2" }).pipe(Scope.provide(scope))
      const forced = yield* Degradation.make({
        rules: [{ level: 3, breakers: ["firebase-2"], description: "State degraded" }]
      })
      const breaker = (yield* CircuitBreakerRegistry.CircuitBreakerRegistry).breakers().find((b) =>
        b.name === "firebase-2"
      )!
      yield* breaker.forceOpen()
      assert.strictEqual((yield* forced.status).level, 3)
      assert.strictEqual((yield* forced.status).level, 3)
      yield* Scope.close(scope, Exit.void)
      assert.strictEqual((yield* forced.status).level, 0)
    }).pipe(Effect.scoped, Effect.provide(CircuitBreakerRegistry.layer)))

  it.effect("a forced-open breaker leaving the registry shows on changes and the gauge, with no status read", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const qdrant = yield* CircuitBreaker.make({ name: "qdrant" }).pipe(Scope.provide(scope))
      const degradation = yield* Degradation.make({
        rules: [{ level: 2, breakers: ["qdrant"], description: "Memory degraded" }]
      })
      const gauge = Effect.map(Metric.snapshot, (all) => {
        const level = all.find((m) => m.id === "degradation_level")
        return (level?.state as { readonly value?: number } | undefined)?.value
      })
      yield* qdrant.forceOpen()
      assert.strictEqual((yield* fedWhen(degradation, (status) => status.level === 2))?.level, 2)
      // Gone with its scope: it reads as closed, and nobody reads `status` for subscribers to hear of it.
      yield* Scope.close(scope, Exit.void)
      assert.strictEqual((yield* fedWhen(degradation, (status) => status.level === 0))?.level, 0)
      assert.strictEqual(yield* gauge, 0)
    }).pipe(Effect.scoped, Effect.provide(CircuitBreakerRegistry.layer)))

  it.effect("an open breaker whose time is up reads half-open when the status is read", () =>
    Effect.gen(function*() {
      const claude = yield* CircuitBreaker.make({ name: "claude_api", openDuration: "1 minute" })
      const degradation = yield* Degradation.make({
        rules: [{ level: 4, breakers: ["claude_api"], description: "Critical" }]
      })
      yield* CircuitBreaker.setState(claude, "Open", { openFor: "1 minute" })
      const open = yield* degradation.status
      assert.strictEqual(open.level, 4)
      // Read again while it stays open: the same reading.
      yield* TestClock.adjust("59 seconds")
      assert.strictEqual(yield* degradation.status, open)
      yield* TestClock.adjust("1 second")
      assert.strictEqual((yield* degradation.status).level, 0)
    }).pipe(Effect.scoped, Effect.provide(CircuitBreakerRegistry.layer)))

  it.effect("bad rules fail when made, each issue naming its field", () =>
    Effect.gen(function*() {
      yield* makeBreakers
      const error = yield* Effect.flip(Degradation.make({
        rules: [
          { level: 1, breakers: ["exa_api", "bing_api"], description: "Search degraded" },
          { level: 5, breakers: ["claude_api"], description: "Beyond critical" },
          { level: 0, breakers: [], description: "" }
        ]
      }))
      assert.strictEqual(error._tag, "PolicyConfigError")
      assert.deepStrictEqual(error.issues.map((issue) => issue.path), [
        "rules[0].breakers[1]",
        "rules[1].level",
        "rules[2].level",
        "rules[2].breakers",
        "rules[2].description"
      ])
      assert.match(error.issues[0].message, /Expected the name of a registered breaker .*got "bing_api"/)
      assert.strictEqual(error.issues[1].message, "Expected a level from 1 to 4, got 5")
    }).pipe(Effect.scoped, Effect.provide(CircuitBreakerRegistry.layer)))

  it.effect("the layer provides the service for /health, and the level is a metric", () =>
    Effect.gen(function*() {
      const degradation = yield* Degradation.Degradation
      yield* CircuitBreakerRegistry.forceOpen("firebase")
      assert.strictEqual((yield* degradation.status).description, "State degraded")
      const level = (yield* Metric.snapshot).find((m) => m.id === "degradation_level")
      assert.strictEqual((level?.state as { readonly value?: number } | undefined)?.value, 3)
    }).pipe(
      Effect.provide(
        Degradation.layer({ rules }).pipe(
          Layer.provideMerge(Layer.effectDiscard(makeBreakers)),
          Layer.provideMerge(CircuitBreakerRegistry.layer)
        )
      )
    ))

  it.effect("a status reader interrupted at any point never leaves the status and its changes behind the breakers", () =>
    Effect.gen(function*() {
      for (let turns = 0; turns < 60; turns++) {
        const scope = yield* Scope.make()
        const registry = yield* CircuitBreakerRegistry.make.pipe(Scope.provide(scope))
        const provide = Effect.provideService(CircuitBreakerRegistry.CircuitBreakerRegistry, registry)
        const breaker = yield* CircuitBreaker.make({ name: "a", openDuration: "1 second" }).pipe(
          Scope.provide(scope),
          provide
        )
        const degradation = yield* Degradation.make({ rules: [{ level: 2, breakers: ["a"], description: "a down" }] })
          .pipe(Scope.provide(scope), provide)
        yield* CircuitBreaker.setState(breaker, "Open", { openFor: "1 second" })
        yield* yieldTimes(30)
        assert.strictEqual((yield* degradation.status).level, 2)
        // Past its open time, "a" turns half-open when read: the reader's evaluation is the one that sees it.
        yield* TestClock.adjust("1 second")
        yield* interruptedAfter(degradation.status, turns)
        yield* yieldTimes(30)
        const status = yield* degradation.status
        yield* yieldTimes(30)
        const head = yield* Stream.runHead(degradation.changes)
        assert.strictEqual(yield* breaker.state, "HalfOpen")
        assert.deepStrictEqual(
          [status.level, head._tag === "Some" ? head.value.level : -1],
          [0, 0],
          `interrupted after ${turns} turns: the status, then the head of changes`
        )
        yield* Scope.close(scope, Exit.void)
      }
    }))
})
