import { assert, describe, it } from "@effect/vitest"
import { Context, Data, Duration, Effect, ExecutionPlan, Exit, Fiber, Layer, Metric, Ref } from "effect"
import { TestClock } from "effect/testing"
import * as CircuitBreaker from "../src/CircuitBreaker.ts"
import * as Fallback from "../src/Fallback.ts"
import * as Policy from "../src/Policy.ts"
import * as Retry from "../src/Retry.ts"
import * as Timeout from "../src/Timeout.ts"
import { interruptedAfter, yieldTimes } from "./interruption.ts"

class SearchError extends Data.TaggedError("SearchError")<{ readonly provider: string }> {}

/** A provider whose answers follow `script` (true: succeeds), counting its calls. */
const provider = (name: string, script: (call: number) => boolean) =>
  Effect.gen(function*() {
    const calls = yield* Ref.make(0)
    const call = (query: string) =>
      Effect.flatMap(Ref.updateAndGet(calls, (n) => n + 1), (n) =>
        script(n)
          ? Effect.succeed(`${name}: ${query} #${n}`)
          : Effect.fail(new SearchError({ provider: name })))
    return { call, calls: Ref.get(calls) }
  })

const metricCount = (id: string, attributes: Record<string, string>) =>
  Metric.snapshot.pipe(Effect.map((all) => {
    const found = all.find((m) => m.id === id && Object.entries(attributes).every(([k, v]) => m.attributes?.[k] === v))
    return (found?.state as { readonly count?: number } | undefined)?.count
  }))

/** The issues of the `PolicyConfigError` that `effect` fails with. */
const issues = <A, R>(effect: Effect.Effect<A, unknown, R>) =>
  Effect.map(Effect.flip(effect), (e) => {
    assert.strictEqual((e as { readonly _tag: string })._tag, "PolicyConfigError")
    return (e as { readonly issues: ReadonlyArray<{ readonly path: string; readonly message: string }> }).issues
  })

/**
 * A chain whose first step is guarded by a breaker, a retry and a timeout, which the chain starts from a callback of
 * its own: every path must be the one the effects take.
 */
const chainOf = (call: (query: string) => Effect.Effect<string, SearchError>) =>
  Effect.gen(function*() {
    const breaker = yield* CircuitBreaker.make({
      name: "exa_api",
      trip: CircuitBreaker.consecutive(2),
      openDuration: "30 seconds"
    })
    const policy = yield* Policy.make({
      name: "exa",
      circuitBreaker: breaker,
      retry: yield* Retry.make({ name: "exa", schedule: Retry.exponential({ base: "1 second", times: 1 }) }),
      timeout: yield* Timeout.make({ name: "exa", duration: "5 seconds" })
    })
    const tavily = yield* provider("tavily", () => true)
    const search = yield* Fallback.make({
      name: "search",
      steps: [
        Fallback.step("exa", call).pipe(Fallback.withPolicy(policy)),
        Fallback.step("tavily", tavily.call)
      ]
    })
    return { breaker, search, tavily }
  })

/** Exa's breaker forced open, Tavily guarded by a breaker, a retry and a timeout, then a cached answer. */
const degradedChain = (call: (query: string) => Effect.Effect<string, SearchError>) =>
  Effect.gen(function*() {
    const policyFor = Effect.fnUntraced(function*(name: string) {
      return yield* Policy.make({
        name,
        circuitBreaker: yield* CircuitBreaker.make({
          name,
          trip: CircuitBreaker.consecutive(2),
          openDuration: "30 seconds"
        }),
        retry: yield* Retry.make({ name, schedule: Retry.exponential({ base: "1 second", times: 1 }) }),
        timeout: yield* Timeout.make({ name, duration: "5 seconds" })
      })
    })
    const exaPolicy = yield* policyFor("exa_api")
    const tavilyPolicy = yield* policyFor("tavily_api")
    const exa = yield* provider("exa", () => true)
    const search = yield* Fallback.make({
      name: "search",
      steps: [
        Fallback.step("exa", exa.call).pipe(Fallback.withPolicy(exaPolicy)),
        Fallback.step("tavily", call).pipe(Fallback.withPolicy(tavilyPolicy)),
        Fallback.succeed("cache", "cached")
      ]
    })
    yield* CircuitBreaker.setState(exaPolicy.stages.circuitBreaker, "ForcedOpen")
    const counts = Effect.map(search.snapshot, (snapshot) =>
      snapshot.steps.map((step) => [step.served, step.failed, step.skipped]))
    return { exa, search, counts, tavilyBreaker: tavilyPolicy.stages.circuitBreaker }
  })

describe("Fallback", () => {
  describe("chains", () => {
    it.effect("the first step that works serves; the answer says which, and that it is live", () =>
      Effect.gen(function*() {
        const exa = yield* provider("exa", () => true)
        const tavily = yield* provider("tavily", () => true)
        const search = yield* Fallback.make({
          name: "search",
          steps: [Fallback.step("exa", exa.call), Fallback.step("tavily", tavily.call)]
        })
        const served = yield* search.run("effect")
        assert.deepStrictEqual(
          { ...served, age: Duration.toMillis(served.age) },
          { value: "exa: effect #1", servedBy: "exa", index: 0, degraded: false, age: 0, passed: [] }
        )
        assert.strictEqual(yield* tavily.calls, 0)
      }))

    it.effect("a failing step passes the request on, and the answer lists it with its error", () =>
      Effect.gen(function*() {
        const exa = yield* provider("exa", () => false)
        const tavily = yield* provider("tavily", () => true)
        const search = yield* Fallback.make({
          name: "search",
          steps: [Fallback.step("exa", exa.call), Fallback.step("tavily", tavily.call)]
        })
        const served = yield* search.run("effect")
        assert.strictEqual(served.value, "tavily: effect #1")
        assert.strictEqual(served.servedBy, "tavily")
        assert.strictEqual(served.index, 1)
        assert.deepStrictEqual(served.passed, [{
          step: "exa",
          reason: "Failed",
          error: new SearchError({ provider: "exa" })
        }])
      }))

    it.effect("when every step fails, the chain fails with the last step's error", () =>
      Effect.gen(function*() {
        class CacheMiss extends Data.TaggedError("CacheMiss") {}
        const exa = yield* provider("exa", () => false)
        const search = yield* Fallback.make({
          name: "search",
          steps: [Fallback.step("exa", exa.call), Fallback.step("cache", (_: string) => Effect.fail(new CacheMiss()))]
        })
        const error = yield* Effect.flip(search.run("effect"))
        assert.strictEqual(error._tag, "CacheMiss")
        const snapshot = yield* search.snapshot
        assert.strictEqual(snapshot.exhausted, 1)
        assert.deepStrictEqual(snapshot.steps.map((s) => s.failed), [1, 1])
      }))

    it.effect("a chain that ends in a total fallback answers whatever the steps before do", () =>
      Effect.gen(function*() {
        const exa = yield* provider("exa", () => false)
        const tavily = yield* provider("tavily", () => false)
        const search = yield* Fallback.make({
          name: "search",
          steps: [
            Fallback.step("exa", exa.call),
            Fallback.step("tavily", tavily.call),
            Fallback.succeed("unavailable", "Web search temporarily unavailable.")
          ]
        })
        const served = yield* search.run("effect")
        assert.strictEqual(served.value, "Web search temporarily unavailable.")
        assert.isTrue(served.degraded)
        assert.deepStrictEqual(served.passed.map((p) => `${p.step}:${p.reason}`), ["exa:Failed", "tavily:Failed"])
      }))

    it.effect("defects are not fallen back from", () =>
      Effect.gen(function*() {
        const search = yield* Fallback.make({
          name: "search",
          steps: [Fallback.step("exa", (_: string) => Effect.die("bug")), Fallback.succeed("canned", "x")]
        })
        const exit = yield* Effect.exit(search.run("q"))
        assert.isTrue(Exit.hasDies(exit))
      }))

    it.effect("a step's degraded mode marks its answers degraded", () =>
      Effect.gen(function*() {
        const memory = yield* Fallback.make({
          name: "memory",
          steps: [
            Fallback.step("qdrant", (_: string) => Effect.fail(new SearchError({ provider: "qdrant" }))),
            Fallback.degraded("keywords", (text: string) => Effect.succeed(text.split(" ").length))
          ]
        })
        const served = yield* memory.run("route this message")
        assert.deepStrictEqual([served.value, served.servedBy, served.degraded], [3, "keywords", true])
      }))
    it.effect("a value the step judges a failure passes the request on; the last step serves it, degraded", () =>
      Effect.gen(function*() {
        interface Reply {
          readonly status: number
          readonly body: string
        }
        const replies: Record<string, Reply> = {
          claude: { status: 529, body: "overloaded" },
          gpt: { status: 503, body: "" }
        }
        const llm = (name: string) =>
          Fallback.step(name, (_: string) => Effect.succeed(replies[name]), {
            isFailureResult: (reply) => reply.status >= 500
          })
        const chat = yield* Fallback.make({ name: "chat", steps: [llm("claude"), llm("gpt")] })
        const served = yield* chat.run("hello")
        assert.deepStrictEqual([served.value, served.servedBy, served.degraded], [replies.gpt, "gpt", true])
        assert.deepStrictEqual(served.passed, [{ step: "claude", reason: "FailureResult", error: replies.claude }])
        assert.deepStrictEqual((yield* chat.snapshot).steps.map((s) => [s.served, s.failed]), [[0, 1], [1, 0]])

        const withCanned = yield* Fallback.make({
          name: "chat-canned",
          steps: [llm("claude"), Fallback.succeed("canned", { status: 200, body: "Try again later." })]
        })
        assert.strictEqual((yield* withCanned.run("hello")).servedBy, "canned")
      }))

    it.effect("a value judged a failure is never kept as the last good one, and the stale value answers for it", () =>
      Effect.gen(function*() {
        let status = 200
        const prices = yield* Fallback.make({
          name: "prices",
          steps: [
            Fallback.step("live", (sku: string) => Effect.sync(() => ({ sku, status })), {
              isFailureResult: (reply) => reply.status >= 500
            }).pipe(Fallback.staleOnError({ maxAge: "1 hour" }))
          ]
        })
        yield* prices.run("sku-1")
        status = 503
        yield* TestClock.adjust("1 minute")
        const stale = yield* prices.run("sku-1")
        assert.deepStrictEqual([stale.value.status, stale.degraded, Duration.toMillis(stale.age)], [200, true, 60_000])
        // The 503 was not stored: an hour after the last 200, nothing is left to serve but the 503 itself.
        yield* TestClock.adjust("60 minutes")
        assert.strictEqual((yield* prices.run("sku-1")).value.status, 503)
      }))

    it.effect("a step's effect can run an ExecutionPlan of its own: the chain sees one step", () =>
      Effect.gen(function*() {
        class Region extends Context.Service<Region, {
          readonly search: (query: string) => Effect.Effect<string, SearchError>
        }>()("test/Region") {}
        // Two regions of one provider, each a layer: the plan tries the first, then the second.
        const plan = ExecutionPlan.make(
          { provide: Layer.succeed(Region, { search: () => Effect.fail(new SearchError({ provider: "eu" })) }) },
          { provide: Layer.succeed(Region, { search: (query) => Effect.succeed(`us: ${query}`) }) }
        )
        const search = yield* Fallback.make({
          name: "regions",
          steps: [
            Fallback.step(
              "exa",
              (query: string) => Region.use((region) => region.search(query)).pipe(Effect.withExecutionPlan(plan))
            ),
            Fallback.succeed("unavailable", "unavailable")
          ]
        })
        const served = yield* search.run("effect")
        assert.deepStrictEqual([served.value, served.servedBy, served.passed.length], ["us: effect", "exa", 0])
      }))
  })

  describe("breaker-aware skipping", () => {
    // `TestClock.setTime` moves the wall clock and not the monotonic one, as an NTP correction does to `Date.now()`.
    it.effect("a step's breaker tripped before the wall clock stepped back is tried again once its open time is up", () =>
      Effect.gen(function*() {
        yield* TestClock.setTime(3_600_000)
        const breaker = yield* CircuitBreaker.make({
          name: "exa",
          trip: CircuitBreaker.consecutive(1),
          openDuration: "30 seconds"
        })
        yield* Effect.ignore(breaker.protect(Effect.fail("down")))
        const search = yield* Fallback.make({
          name: "search",
          steps: [
            Fallback.step("exa", (q: string) => Effect.succeed(`exa: ${q}`)).pipe(Fallback.withBreaker(breaker)),
            Fallback.step("tavily", (q: string) => Effect.succeed(`tavily: ${q}`))
          ]
        })
        yield* TestClock.setTime(0)
        yield* TestClock.adjust("29 seconds")
        assert.strictEqual((yield* search.run("effect")).servedBy, "tavily")
        yield* TestClock.adjust("1 second")
        assert.strictEqual((yield* search.run("effect")).servedBy, "exa")
      }))

    it.effect("guards nest: the answer keeps the step's degraded flag, each guard sees every call, the outer's breaker skips", () =>
      Effect.gen(function*() {
        const keyword = yield* provider("keyword", (n) => n !== 2)
        const inner = yield* CircuitBreaker.make({ name: "inner", trip: CircuitBreaker.consecutive(5) })
        const outer = yield* CircuitBreaker.make({ name: "outer", trip: CircuitBreaker.consecutive(5) })
        const retry = yield* Retry.make({ name: "outer", schedule: Retry.exponential({ base: "1 millis", times: 1 }) })
        const policy = yield* Policy.make({ name: "outer", circuitBreaker: outer, retry })
        const memory = yield* Fallback.make({
          name: "memory",
          steps: [
            Fallback.degraded("keyword", keyword.call).pipe(Fallback.withBreaker(inner), Fallback.withPolicy(policy)),
            Fallback.succeed("none", "none")
          ]
        })
        const first = yield* memory.run("a")
        assert.deepStrictEqual([first.servedBy, first.value, first.degraded], ["keyword", "keyword: a #1", true])
        // The second call fails once and is retried by the outer policy, through the inner breaker each time.
        const second = yield* Effect.forkChild(memory.run("b"))
        yield* TestClock.adjust("1 millis")
        const retried = yield* Fiber.join(second)
        assert.deepStrictEqual([retried.value, retried.degraded], ["keyword: b #3", true])
        assert.deepStrictEqual([(yield* inner.snapshot).totalCalls, (yield* inner.snapshot).failureCount], [3, 1])
        assert.strictEqual((yield* outer.snapshot).totalCalls, 2)
        // The outer guard's breaker decides the skip.
        yield* outer.forceOpen()
        const skipped = yield* memory.run("c")
        assert.deepStrictEqual([skipped.servedBy, yield* keyword.calls], ["none", 3])
      }))

    it.effect("a step whose breaker is open is passed over without a call", () =>
      Effect.gen(function*() {
        const exa = yield* provider("exa", () => true)
        const tavily = yield* provider("tavily", () => true)
        const breaker = yield* CircuitBreaker.make({ name: "exa_api" })
        yield* CircuitBreaker.setState(breaker, "Open")
        const search = yield* Fallback.make({
          name: "search",
          steps: [
            Fallback.step("exa", exa.call).pipe(Fallback.withBreaker(breaker)),
            Fallback.step("tavily", tavily.call)
          ]
        })
        const served = yield* search.run("effect")
        assert.strictEqual(served.servedBy, "tavily")
        assert.deepStrictEqual(served.passed, [{ step: "exa", reason: "BreakerOpen", error: undefined }])
        assert.strictEqual(yield* exa.calls, 0)
        assert.deepStrictEqual((yield* search.snapshot).steps.map((s) => s.skipped), [1, 0])
        // The breaker was only looked at: no rejection recorded, no call.
        assert.strictEqual((yield* breaker.snapshot).totalCalls, 0)
      }))

    it.effect("skips on the breaker's state as a call would see it: forced open, or open with time left", () =>
      Effect.gen(function*() {
        const exa = yield* provider("exa", () => true)
        const breaker = yield* CircuitBreaker.make({ name: "exa_api" })
        const search = yield* Fallback.make({
          name: "search",
          steps: [
            Fallback.step("exa", exa.call).pipe(Fallback.withBreaker(breaker)),
            Fallback.succeed("unavailable", "unavailable")
          ]
        })
        const servedBy = Effect.map(search.run("effect"), (served) => served.servedBy)
        // Passed over without a call: no rejection error, none counted by the breaker.
        const skipped = Effect.map(search.run("effect"), (served) => {
          assert.deepStrictEqual(served.passed, [{ step: "exa", reason: "BreakerOpen", error: undefined }])
          return served.servedBy
        })
        yield* breaker.forceOpen()
        assert.strictEqual(yield* skipped, "unavailable")
        // metricsOnly admits every call whatever the machine says, an Open one included.
        const open = {
          phase: "Open",
          openedAt: 0,
          openUntil: 10_000,
          openings: 1,
          lastOpenMillis: 10_000,
          closedAt: 0
        } as const
        yield* breaker.restore({ ...open, mode: "MetricsOnly" })
        assert.strictEqual(yield* servedBy, "exa")
        yield* CircuitBreaker.setState(breaker, "Open", { openFor: "10 seconds" })
        const rejected = (yield* breaker.snapshot).rejectedCount
        assert.strictEqual(yield* skipped, "unavailable")
        assert.strictEqual((yield* breaker.snapshot).rejectedCount, rejected)
        // Its open time is up: the step is tried (a probe), and serves.
        yield* TestClock.adjust("10 seconds")
        assert.strictEqual(yield* servedBy, "exa")
        assert.strictEqual(yield* breaker.state, "Closed")
        assert.strictEqual(yield* exa.calls, 2)
      }))

    it.effect("a skipped step's function is not even called (it may do work before returning its effect)", () =>
      Effect.gen(function*() {
        let invoked = 0
        const breaker = yield* CircuitBreaker.make({ name: "exa_api" })
        yield* CircuitBreaker.setState(breaker, "Open")
        const search = yield* Fallback.make({
          name: "search",
          steps: [
            Fallback.step("exa", (query: string) => {
              invoked++
              return Effect.succeed(query)
            }).pipe(Fallback.withBreaker(breaker)),
            Fallback.succeed("unavailable", "unavailable")
          ]
        })
        yield* search.run("effect")
        assert.strictEqual(invoked, 0)
      }))

    it.effect("a step guarded by a policy with a breaker and a retry is skipped without waiting for the retry", () =>
      Effect.gen(function*() {
        const exa = yield* provider("exa", () => false)
        const breaker = yield* CircuitBreaker.make({ name: "exa_api", trip: CircuitBreaker.consecutive(1) })
        const policy = yield* Policy.make({
          name: "exa",
          circuitBreaker: breaker,
          retry: yield* Retry.make({ name: "exa", schedule: Retry.exponential({ base: "1 second", times: 3 }) })
        })
        const search = yield* Fallback.make({
          name: "search",
          steps: [
            Fallback.step("exa", exa.call).pipe(Fallback.withPolicy(policy)),
            Fallback.succeed("unavailable", "unavailable")
          ]
        })
        // The first call fails through the retries (1 + 2 + 4 seconds) and trips the breaker.
        const first = yield* Effect.forkChild(search.run("a"))
        yield* TestClock.adjust("7 seconds")
        assert.strictEqual((yield* Fiber.join(first)).servedBy, "unavailable")
        assert.strictEqual(yield* exa.calls, 4)
        assert.strictEqual(yield* breaker.state, "Open")
        // Now the chain answers at once: no call, no retry delay (the clock does not move).
        const served = yield* search.run("b")
        assert.strictEqual(served.servedBy, "unavailable")
        assert.strictEqual(served.passed[0].reason, "BreakerOpen")
        assert.strictEqual(yield* exa.calls, 4)
      }))

    it.effect("a rejection the step's call passed on from a breaker further down is the step's failure", () =>
      Effect.gen(function*() {
        // The step's own code goes through a breaker of its dependency's; nothing guards the step itself.
        const downstream = yield* CircuitBreaker.make({ name: "index" })
        yield* downstream.forceOpen()
        let called = 0
        const search = yield* Fallback.make({
          name: "search",
          steps: [
            Fallback.step(
              "exa",
              (q: string) => Effect.suspend(() => (called++, downstream.protect(Effect.succeed(q))))
            ),
            Fallback.succeed("unavailable", "unavailable")
          ]
        })
        const served = yield* search.run("a")
        assert.deepStrictEqual([served.servedBy, served.passed[0].reason, called], ["unavailable", "Failed", 1])
        const [exa] = (yield* search.snapshot).steps
        assert.deepStrictEqual([exa.failed, exa.skipped], [1, 0])
      }))

    it.effect("a step with a breaker of its own: a rejection its call passed on from further down is a failure", () =>
      Effect.gen(function*() {
        const own = yield* CircuitBreaker.make({ name: "exa" })
        const downstream = yield* CircuitBreaker.make({ name: "index" })
        yield* downstream.forceOpen()
        const search = yield* Fallback.make({
          name: "search",
          steps: [
            Fallback.step("exa", (q: string) => downstream.protect(Effect.succeed(q))).pipe(Fallback.withBreaker(own)),
            Fallback.succeed("unavailable", "unavailable")
          ]
        })
        const served = yield* search.run("a")
        assert.deepStrictEqual([served.servedBy, served.passed[0].reason], ["unavailable", "Failed"])
        const [exa] = (yield* search.snapshot).steps
        assert.deepStrictEqual([exa.failed, exa.skipped], [1, 0])
      }))

    it.effect("a rejection by any breaker guarding the step passes it over: an inner one, or one in a wrapper", () =>
      Effect.gen(function*() {
        const inner = yield* CircuitBreaker.make({ name: "inner" })
        const outer = yield* CircuitBreaker.make({ name: "outer" })
        const stale = yield* CircuitBreaker.make({ name: "stale" })
        const cached = yield* CircuitBreaker.make({ name: "cached" })
        yield* Effect.forEach([inner, stale, cached], (breaker) => breaker.forceOpen())
        const search = yield* Fallback.make({
          name: "search",
          steps: [
            Fallback.step("nested", (q: string) => Effect.succeed(q)).pipe(
              Fallback.withBreaker(inner),
              Fallback.withBreaker(outer)
            ),
            Fallback.step("stale", (q: string) => Effect.succeed(q)).pipe(
              Fallback.withBreaker(stale),
              Fallback.staleOnError({ maxAge: "1 hour" })
            ),
            Fallback.step("cached", (q: string) => Effect.succeed(q)).pipe(
              Fallback.withBreaker(cached),
              Fallback.cacheFirst({ ttl: "1 minute", maxStale: "1 hour" })
            ),
            Fallback.succeed("unavailable", "unavailable")
          ]
        })
        const served = yield* search.run("a")
        assert.deepStrictEqual(served.passed.map((p) => `${p.step} ${p.reason}`), [
          "nested BreakerOpen",
          "stale BreakerOpen",
          "cached BreakerOpen"
        ])
        assert.deepStrictEqual((yield* search.snapshot).steps.map((s) => [s.failed, s.skipped]), [
          [0, 1],
          [0, 1],
          [0, 1],
          [0, 0]
        ])
      }))

    it.effect("a rejection at call time (half-open, probe slot taken) also passes the request on", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({ name: "exa_api" })
        yield* CircuitBreaker.setState(breaker, "HalfOpen")
        const search = yield* Fallback.make({
          name: "search",
          steps: [
            Fallback.step("exa", (q: string) => Effect.as(Effect.sleep("1 second"), `exa: ${q}`)).pipe(
              Fallback.withBreaker(breaker)
            ),
            Fallback.succeed("unavailable", "unavailable")
          ]
        })
        const probe = yield* Effect.forkChild(search.run("probe"))
        yield* Effect.yieldNow
        const served = yield* search.run("other")
        assert.strictEqual(served.servedBy, "unavailable")
        assert.strictEqual(served.passed[0].reason, "BreakerOpen")
        assert.strictEqual((served.passed[0].error as CircuitBreaker.CircuitBreakerError)._tag, "CircuitBreakerError")
        yield* TestClock.adjust("1 second")
        assert.strictEqual((yield* Fiber.join(probe)).value, "exa: probe")
        assert.deepStrictEqual((yield* search.snapshot).steps.map((s) => [s.served, s.skipped]), [[1, 1], [1, 0]])
      }))

    it.effect("the last step runs even with its breaker open: the chain fails with the rejection", () =>
      Effect.gen(function*() {
        const tavily = yield* provider("tavily", () => true)
        const breaker = yield* CircuitBreaker.make({ name: "tavily_api" })
        yield* CircuitBreaker.setState(breaker, "Open")
        const search = yield* Fallback.make({
          name: "search",
          steps: [
            Fallback.step("exa", (_: string) => Effect.fail(new SearchError({ provider: "exa" }))),
            Fallback.step("tavily", tavily.call).pipe(Fallback.withBreaker(breaker))
          ]
        })
        const error = yield* Effect.flip(search.run("effect"))
        assert.strictEqual(error._tag, "CircuitBreakerError")
        assert.strictEqual(yield* tavily.calls, 0)
      }))
  })

  describe("a first step whose policy runs in one callback (breaker, retry, timeout)", () => {
    it.effect("serves a success as it comes, and falls back from a failure once the retries give up", () =>
      Effect.gen(function*() {
        const exa = yield* provider("exa", (n) => n === 1 || n === 4)
        const { breaker, search, tavily } = yield* chainOf(exa.call)
        const served = yield* search.run("a")
        assert.deepStrictEqual([served.servedBy, served.value, served.degraded, served.passed], [
          "exa",
          "exa: a #1",
          false,
          []
        ])
        // Fails, and fails again when retried a second later: Tavily answers, and the answer lists Exa's error.
        const fiber = yield* Effect.forkChild(search.run("b"))
        yield* TestClock.adjust("1 second")
        const fell = yield* Fiber.join(fiber)
        assert.deepStrictEqual([fell.servedBy, fell.index, fell.passed[0].reason], ["tavily", 1, "Failed"])
        assert.strictEqual((fell.passed[0].error as SearchError).provider, "exa")
        // A failure, then a success on the retry: served by Exa.
        const retried = yield* Effect.forkChild(search.run("c"))
        yield* TestClock.adjust("1 second")
        assert.strictEqual((yield* Fiber.join(retried)).value, "exa: c #4")
        assert.deepStrictEqual([yield* exa.calls, yield* tavily.calls], [4, 1])
        assert.deepStrictEqual((yield* search.snapshot).steps.map((s) => [s.served, s.failed, s.skipped]), [
          [2, 1, 0],
          [1, 0, 0]
        ])
        assert.deepStrictEqual([(yield* breaker.snapshot).totalCalls, (yield* breaker.snapshot).failureCount], [3, 1])
      }))

    it.effect("a timed-out attempt falls back; once the breaker opens the step is passed over without a call", () =>
      Effect.gen(function*() {
        const exa = yield* provider("exa", () => true)
        const { breaker, search } = yield* chainOf((query) => Effect.andThen(Effect.sleep("1 minute"), exa.call(query)))
        for (const query of ["a", "b"]) {
          const fiber = yield* Effect.forkChild(search.run(query))
          // 5 seconds, a second's wait, 5 seconds again.
          yield* TestClock.adjust("11 seconds")
          const served = yield* Fiber.join(fiber)
          assert.deepStrictEqual([served.servedBy, (served.passed[0].error as { _tag: string })._tag], [
            "tavily",
            "TimeoutError"
          ])
        }
        assert.strictEqual(yield* breaker.state, "Open")
        const skipped = yield* search.run("c")
        assert.deepStrictEqual([skipped.servedBy, skipped.passed[0].reason], ["tavily", "BreakerOpen"])
        assert.strictEqual(yield* exa.calls, 0)
      }))

    it.effect("a half-open breaker's probe closes it; a call its probe slot turns away is passed on", () =>
      Effect.gen(function*() {
        const exa = yield* provider("exa", () => true)
        const { breaker, search } = yield* chainOf((query) => Effect.andThen(Effect.sleep("1 second"), exa.call(query)))
        yield* CircuitBreaker.setState(breaker, "HalfOpen")
        const probe = yield* Effect.forkChild(search.run("probe"))
        yield* Effect.yieldNow
        const other = yield* search.run("other")
        assert.deepStrictEqual([other.servedBy, other.passed[0].reason], ["tavily", "BreakerOpen"])
        yield* TestClock.adjust("1 second")
        assert.strictEqual((yield* Fiber.join(probe)).servedBy, "exa")
        assert.strictEqual(yield* breaker.state, "Closed")
      }))

    it.effect("a defect is not fallen back from", () =>
      Effect.gen(function*() {
        const { search, tavily } = yield* chainOf(() => Effect.die("boom"))
        const exit = yield* Effect.exit(search.run("a"))
        assert.isTrue(Exit.hasDies(exit))
        assert.strictEqual(yield* tavily.calls, 0)
      }))

    it.effect("an interrupted caller stays interrupted: the attempt stops, no later step runs, nothing is counted", () =>
      Effect.gen(function*() {
        const exa = yield* provider("exa", () => true)
        const { breaker, search, tavily } = yield* chainOf((query) =>
          Effect.andThen(Effect.sleep("1 second"), exa.call(query))
        )
        const fiber = yield* Effect.forkChild(search.run("a"))
        yield* Effect.yieldNow
        yield* Fiber.interrupt(fiber)
        yield* TestClock.adjust("1 minute")
        assert.isTrue(Exit.hasInterrupts(yield* Fiber.await(fiber)))
        assert.deepStrictEqual([yield* exa.calls, yield* tavily.calls], [0, 0])
        assert.deepStrictEqual((yield* search.snapshot).steps.map((s) => [s.served, s.failed, s.skipped]), [
          [0, 0, 0],
          [0, 0, 0]
        ])
        assert.deepStrictEqual([(yield* breaker.snapshot).failureCount, yield* breaker.state], [0, "Closed"])
      }))
  })

  describe("a step after open ones, whose policy runs in one callback (a degraded chain's usual path)", () => {
    it.effect("serves the next step's success as it comes, the open step listed as passed over", () =>
      Effect.gen(function*() {
        const tavily = yield* provider("tavily", () => true)
        const { counts, exa, search, tavilyBreaker } = yield* degradedChain(tavily.call)
        const served = yield* search.run("a")
        assert.deepStrictEqual([served.servedBy, served.index, served.value, served.degraded], [
          "tavily",
          1,
          "tavily: a #1",
          false
        ])
        assert.deepStrictEqual(served.passed, [{ step: "exa", reason: "BreakerOpen", error: undefined }])
        assert.deepStrictEqual(yield* counts, [[0, 0, 1], [1, 0, 0], [0, 0, 0]])
        assert.deepStrictEqual([yield* exa.calls, (yield* tavilyBreaker.snapshot).totalCalls], [0, 1])
      }))

    it.effect("falls back from its failure once the retries give up, and a success on the retry is served", () =>
      Effect.gen(function*() {
        const tavily = yield* provider("tavily", (n) => n === 4)
        const { counts, search, tavilyBreaker } = yield* degradedChain(tavily.call)
        const failing = yield* Effect.forkChild(search.run("a"))
        yield* TestClock.adjust("1 second")
        const fell = yield* Fiber.join(failing)
        assert.deepStrictEqual(
          [fell.servedBy, fell.degraded, fell.passed.map((p) => [p.step, p.reason])],
          ["cache", true, [["exa", "BreakerOpen"], ["tavily", "Failed"]]]
        )
        assert.strictEqual((fell.passed[1].error as SearchError).provider, "tavily")
        const retried = yield* Effect.forkChild(search.run("b"))
        yield* TestClock.adjust("1 second")
        assert.strictEqual((yield* Fiber.join(retried)).value, "tavily: b #4")
        assert.deepStrictEqual(yield* counts, [[0, 0, 2], [1, 1, 0], [1, 0, 0]])
        assert.deepStrictEqual(
          [(yield* tavilyBreaker.snapshot).failureCount, (yield* tavilyBreaker.snapshot).totalCalls],
          [1, 2]
        )
      }))

    it.effect("a caller interrupted at any point leaves no attempt running and no failure counted", () =>
      Effect.gen(function*() {
        for (let turns = 0; turns < 12; turns++) {
          const tavily = yield* provider("tavily", () => true)
          const { search, tavilyBreaker } = yield* degradedChain((query) =>
            Effect.andThen(Effect.sleep("1 second"), tavily.call(query))
          )
          yield* interruptedAfter(search.run("a"), turns)
          yield* TestClock.adjust("1 minute")
          assert.strictEqual(yield* tavily.calls, 0, `interrupted after ${turns} turns: the attempt ran on`)
          const snapshot = yield* tavilyBreaker.snapshot
          assert.deepStrictEqual([snapshot.failureCount, snapshot.state], [0, "Closed"], `after ${turns} turns`)
        }
      }))
  })

  describe("staleOnError", () => {
    it.effect("serves the last good value for the input, degraded, with its age, up to maxAge", () =>
      Effect.gen(function*() {
        const prices = yield* provider("prices", (n) => n === 1)
        const chain = yield* Fallback.make({
          name: "prices",
          steps: [
            Fallback.step("live", prices.call).pipe(Fallback.staleOnError({ maxAge: "10 minutes" })),
            Fallback.succeed("unknown", "no price")
          ]
        })
        const fresh = yield* chain.run("sku-1")
        assert.deepStrictEqual([fresh.value, fresh.degraded, Duration.toMillis(fresh.age)], [
          "prices: sku-1 #1",
          false,
          0
        ])

        yield* TestClock.adjust("10 minutes")
        const stale = yield* chain.run("sku-1")
        assert.deepStrictEqual(
          [stale.value, stale.servedBy, stale.degraded, Duration.toMillis(stale.age)],
          ["prices: sku-1 #1", "live", true, 600_000]
        )
        // Another input has no good value to fall back on.
        assert.strictEqual((yield* chain.run("sku-2")).servedBy, "unknown")

        yield* TestClock.adjust("1 millis")
        assert.strictEqual((yield* chain.run("sku-1")).servedBy, "unknown")
      }))

    it.effect("inside it, an open breaker serves the stale value without a call", () =>
      Effect.gen(function*() {
        const prices = yield* provider("prices", () => true)
        const breaker = yield* CircuitBreaker.make({ name: "prices" })
        const chain = yield* Fallback.make({
          name: "prices",
          steps: [
            Fallback.step("live", prices.call).pipe(
              Fallback.withBreaker(breaker),
              Fallback.staleOnError({ maxAge: "1 hour" })
            ),
            Fallback.succeed("unknown", "no price")
          ]
        })
        yield* chain.run("sku-1")
        yield* CircuitBreaker.setState(breaker, "Open")
        yield* TestClock.adjust("5 minutes")
        const served = yield* chain.run("sku-1")
        assert.deepStrictEqual([served.servedBy, served.degraded, Duration.toMillis(served.age)], [
          "live",
          true,
          300_000
        ])
        assert.strictEqual(yield* prices.calls, 1)
      }))
  })

  describe("cacheFirst", () => {
    it.effect("fresh: cached, not degraded; stale: served degraded and refreshed once in the background", () =>
      Effect.gen(function*() {
        const profiles = yield* provider("profiles", () => true)
        const chain = yield* Fallback.make({
          name: "profiles",
          steps: [
            Fallback.step("profile", profiles.call).pipe(Fallback.cacheFirst({ ttl: "1 minute", maxStale: "1 hour" }))
          ]
        })
        const miss = yield* chain.run("ada")
        assert.deepStrictEqual([miss.value, miss.degraded, Duration.toMillis(miss.age)], ["profiles: ada #1", false, 0])

        yield* TestClock.adjust("59 seconds")
        const fresh = yield* chain.run("ada")
        assert.deepStrictEqual([fresh.value, fresh.degraded, Duration.toMillis(fresh.age)], [
          "profiles: ada #1",
          false,
          59_000
        ])
        assert.strictEqual(yield* profiles.calls, 1)

        yield* TestClock.adjust("1 second")
        const stale = yield* chain.run("ada")
        const again = yield* chain.run("ada")
        assert.deepStrictEqual([stale.value, stale.degraded, Duration.toMillis(stale.age)], [
          "profiles: ada #1",
          true,
          60_000
        ])
        assert.strictEqual(again.value, "profiles: ada #1")
        yield* Effect.yieldNow
        // One refresh for the two stale reads, and its value is served fresh from then on.
        assert.strictEqual(yield* profiles.calls, 2)
        const refreshed = yield* chain.run("ada")
        assert.deepStrictEqual([refreshed.value, refreshed.degraded], ["profiles: ada #2", false])
      }))

    it.effect("a caller interrupted at any point of a stale read never stops the key's later background refreshes", () =>
      Effect.gen(function*() {
        for (let turns = 0; turns < 40; turns++) {
          const refreshed = yield* Effect.scoped(Effect.gen(function*() {
            const profiles = yield* provider("profiles", () => true)
            const chain = yield* Fallback.make({
              name: "profiles",
              steps: [
                Fallback.step("profile", profiles.call).pipe(
                  Fallback.cacheFirst({ ttl: "1 minute", maxStale: "1 hour" })
                )
              ]
            })
            yield* chain.run("ada")
            yield* TestClock.adjust("2 minutes")
            yield* interruptedAfter(chain.run("ada"), turns)
            // A later stale read: its refresh (or the interrupted caller's) reaches the dependency.
            yield* TestClock.adjust("1 minute")
            yield* chain.run("ada")
            yield* yieldTimes(20)
            return yield* profiles.calls
          }))
          assert.isAbove(refreshed, 1, `interrupted after ${turns} turns: the key was never refreshed again`)
        }
      }))

    // `TestClock.setTime` steps the wall clock, as an NTP correction does to `Date.now()`.
    it.effect("a value stored before the wall clock stepped back has no negative age: stale, refreshed at once", () =>
      Effect.gen(function*() {
        yield* TestClock.setTime(7_200_000)
        const profiles = yield* provider("profiles", () => true)
        const prices = yield* provider("prices", (n) => n === 1)
        const cachedFirst = yield* Fallback.make({
          name: "profiles",
          steps: [
            Fallback.step("profile", profiles.call).pipe(Fallback.cacheFirst({ ttl: "1 minute", maxStale: "1 day" }))
          ]
        })
        const staleOnError = yield* Fallback.make({
          name: "prices",
          steps: [Fallback.step("price", prices.call).pipe(Fallback.staleOnError({ maxAge: "1 day" }))]
        })
        yield* cachedFirst.run("ada")
        yield* staleOnError.run("sku-1")
        yield* TestClock.setTime(3_600_000)
        // Not fresh for the hour of the step on top of its minute: served as stale, and refreshed.
        const stepped = yield* cachedFirst.run("ada")
        assert.deepStrictEqual([stepped.value, stepped.degraded, Duration.toMillis(stepped.age)], [
          "profiles: ada #1",
          true,
          0
        ])
        yield* Effect.yieldNow
        assert.strictEqual(yield* profiles.calls, 2)
        const refreshed = yield* cachedFirst.run("ada")
        assert.deepStrictEqual([refreshed.value, refreshed.degraded, Duration.toMillis(refreshed.age)], [
          "profiles: ada #2",
          false,
          0
        ])
        const stale = yield* staleOnError.run("sku-1")
        assert.deepStrictEqual([stale.value, stale.degraded, Duration.toMillis(stale.age)], [
          "prices: sku-1 #1",
          true,
          0
        ])
      }))

    it.effect("a value older than maxStale is not served: the step calls through, and fails on when that fails", () =>
      Effect.gen(function*() {
        const profiles = yield* provider("profiles", (n) => n === 1)
        const chain = yield* Fallback.make({
          name: "profiles",
          steps: [
            Fallback.step("profile", profiles.call).pipe(Fallback.cacheFirst({ ttl: "1 minute", maxStale: "1 hour" })),
            Fallback.succeed("anonymous", "anonymous")
          ]
        })
        yield* chain.run("ada")
        yield* TestClock.adjust("61 minutes")
        const served = yield* chain.run("ada")
        assert.strictEqual(served.servedBy, "anonymous")
        assert.strictEqual(yield* profiles.calls, 2)
      }))

    it.effect("a failed background refresh keeps the stale value until it is too old", () =>
      Effect.gen(function*() {
        const profiles = yield* provider("profiles", (n) => n === 1)
        const chain = yield* Fallback.make({
          name: "profiles",
          steps: [
            Fallback.step("profile", profiles.call).pipe(Fallback.cacheFirst({ ttl: "1 minute", maxStale: "1 hour" }))
          ]
        })
        yield* chain.run("ada")
        yield* TestClock.adjust("30 minutes")
        assert.strictEqual((yield* chain.run("ada")).value, "profiles: ada #1")
        yield* Effect.yieldNow
        assert.strictEqual(yield* profiles.calls, 2)
        const served = yield* chain.run("ada")
        assert.deepStrictEqual([served.value, served.degraded], ["profiles: ada #1", true])
      }))
  })

  describe("bad input", () => {
    it.effect("a chain with no steps fails when made", () =>
      Effect.gen(function*() {
        const found = yield* issues(Fallback.make({ name: "empty", steps: [] }))
        assert.deepStrictEqual(found, [{ path: "steps", message: "Expected at least one step, got none" }])
      }))

    it.effect("duplicate step names and bad strategy options are named by field", () =>
      Effect.gen(function*() {
        const found = yield* issues(Fallback.make({
          name: "search",
          steps: [
            Fallback.step("exa", (_: string) => Effect.succeed("a")).pipe(
              Fallback.cacheFirst({ ttl: "1 hour", maxStale: "1 minute" })
            ),
            Fallback.step("exa", (_: string) => Effect.succeed("b")).pipe(Fallback.staleOnError({ maxAge: -1 })),
            Fallback.succeed("", "c")
          ]
        }))
        assert.deepStrictEqual(found.map((issue) => issue.path).sort(), [
          "steps[0].cacheFirst.maxStale",
          "steps[1].staleOnError.maxAge",
          "steps[2].name"
        ])
        // The duplicate is reported once the steps are otherwise valid.
        const duplicate = yield* issues(Fallback.make({
          name: "search",
          steps: [Fallback.succeed("exa", "a"), Fallback.succeed("exa", "b")]
        }))
        assert.deepStrictEqual(duplicate, [{
          path: "steps[1].name",
          message: "Expected a step name not used before in the chain, got \"exa\""
        }])
      }))
  })

  describe("counts", () => {
    it.effect("every serve, failure and skip is counted by step, in the snapshot and the metrics", () =>
      Effect.gen(function*() {
        const exa = yield* provider("exa", (n) => n % 2 === 0)
        const breaker = yield* CircuitBreaker.make({ name: "tavily_api" })
        const tavily = yield* provider("tavily", (n) => n === 1)
        const search = yield* Fallback.make({
          name: "counted",
          steps: [
            Fallback.step("exa", exa.call),
            Fallback.step("tavily", tavily.call).pipe(Fallback.withBreaker(breaker)),
            Fallback.succeed("unavailable", "unavailable")
          ]
        })
        // exa: fail, ok, fail, ok, fail; tavily: ok, then open (skipped), then fails once closed again.
        const servedBy: Array<string> = []
        for (let i = 0; i < 5; i++) {
          if (i === 2) yield* CircuitBreaker.setState(breaker, "Open")
          if (i === 4) yield* CircuitBreaker.setState(breaker, "Closed")
          servedBy.push((yield* search.run(`q${i}`)).servedBy)
        }
        assert.deepStrictEqual(servedBy, ["tavily", "exa", "unavailable", "exa", "unavailable"])
        assert.deepStrictEqual(yield* search.snapshot, {
          name: "counted",
          calls: 5,
          degraded: 2,
          exhausted: 0,
          lastServedBy: "unavailable",
          steps: [
            { name: "exa", degraded: false, served: 2, failed: 3, skipped: 0 },
            { name: "tavily", degraded: false, served: 1, failed: 1, skipped: 1 },
            { name: "unavailable", degraded: true, served: 2, failed: 0, skipped: 0 }
          ]
        })
        const by = { fallback: "counted" }
        assert.strictEqual(yield* metricCount("fallback_calls_total", by), 5)
        assert.strictEqual(yield* metricCount("fallback_degraded_total", by), 2)
        assert.strictEqual(yield* metricCount("fallback_step_served_total", { ...by, step: "exa" }), 2)
        assert.strictEqual(yield* metricCount("fallback_step_failures_total", { ...by, step: "exa" }), 3)
        assert.strictEqual(yield* metricCount("fallback_step_skips_total", { ...by, step: "tavily" }), 1)
      }))

    it.effect("the manager lists every service's chain for a served-by page, one name each", () =>
      Effect.gen(function*() {
        const search = yield* Fallback.make({
          name: "search",
          steps: [
            Fallback.step("exa", (_: string) => Effect.fail(new SearchError({ provider: "exa" }))),
            Fallback.succeed("unavailable", "-")
          ]
        })
        const llm = yield* Fallback.make({ name: "llm", steps: [Fallback.succeed("claude", "hi")] })
        yield* search.run("a")
        yield* llm.run()
        yield* llm.run()
        const all = yield* Fallback.snapshots
        assert.deepStrictEqual(
          all.map((s) => [s.name, s.lastServedBy, s.steps.map((step) => step.served)]),
          [["search", "unavailable", [0, 1]], ["llm", "claude", [2]]]
        )
        const taken = yield* Effect.flip(Fallback.make({ name: "llm", steps: [Fallback.succeed("x", "x")] }))
        assert.strictEqual(taken.issues[0].path, "name")
      }).pipe(Effect.provide(Fallback.layerManager)))

    it.effect("a chain leaves the manager when its scope closes", () =>
      Effect.gen(function*() {
        yield* Effect.scoped(Fallback.make({ name: "short-lived", steps: [Fallback.succeed("x", "x")] }))
        assert.deepStrictEqual(yield* Fallback.snapshots, [])
      }).pipe(Effect.provide(Fallback.layerManager)))
  })
})
