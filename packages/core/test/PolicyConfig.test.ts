import { NodeServices } from "@effect/platform-node"
import { assert, describe, it } from "@effect/vitest"
import { type Duration, Effect, Schema, Stream } from "effect"
import * as Alerts from "../src/Alerts.ts"
import * as Bulkhead from "../src/Bulkhead.ts"
import * as Chaos from "../src/Chaos.ts"
import * as CircuitBreaker from "../src/CircuitBreaker.ts"
import * as FallbackStore from "../src/FallbackStore.ts"
import * as Hedge from "../src/Hedge.ts"
import * as PolicyConfig from "../src/PolicyConfig.ts"
import * as RateLimiter from "../src/RateLimiter.ts"
import * as Retry from "../src/Retry.ts"

/** The issues of the `PolicyConfigError` that `effect` fails with (fails the test if it succeeds). */
const issuesOf = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  effect.pipe(
    Effect.flip,
    Effect.map((error) => {
      assert.instanceOf(error, PolicyConfig.PolicyConfigError)
      return (error as PolicyConfig.PolicyConfigError).issues
    })
  )

/** The one issue at `path`, asserting there is exactly one. */
const issueAt = (issues: ReadonlyArray<{ readonly path: string; readonly message: string }>, path: string) => {
  const at = issues.filter((issue) => issue.path === path)
  assert.strictEqual(at.length, 1, `one issue at ${path} in ${JSON.stringify(issues)}`)
  return at[0].message
}

const durationOf = (input: unknown) =>
  issuesOf(PolicyConfig.decode(Schema.Struct({ d: PolicyConfig.DurationInput({ positive: false }) }), { d: input }, {
    kind: "test",
    policy: "t"
  }))

// Retry's schedule constructors validate synchronously and throw the PolicyConfigError.
const thrown = (f: () => unknown) =>
  Effect.sync(() => {
    try {
      f()
    } catch (error) {
      assert.instanceOf(error, PolicyConfig.PolicyConfigError)
      return (error as PolicyConfig.PolicyConfigError).issues
    }
    assert.fail("expected a PolicyConfigError")
  })

// `null` where the types say `T | undefined`, as untyped config (JSON, JavaScript callers) gives it.
const nulled = <A>(value: A): A => value === undefined ? (null as A) : value
const NULL = nulled<number | undefined>(undefined)

const paths = (error: PolicyConfig.PolicyConfigError) => error.issues.map((issue) => issue.path)

describe("PolicyConfig", () => {
  describe("withVariables", () => {
    it("names the variable of an option whatever follows it in the path: a field or an index", () => {
      const error = new PolicyConfig.PolicyConfigError({
        kind: "server",
        policy: "api",
        issues: [
          { path: "port", message: "bad port" },
          { path: "hosts[1]", message: "bad host" },
          { path: "tls.cert", message: "bad cert" },
          { path: "other", message: "left alone" }
        ]
      })
      const named = PolicyConfig.withVariables(error, { port: "PORT", hosts: "HOSTS", tls: "TLS" })
      assert.deepStrictEqual(named.issues.map((issue) => issue.path), [
        "PORT (port)",
        "HOSTS (hosts[1])",
        "TLS (tls.cert)",
        "other"
      ])
      assert.deepStrictEqual([named.kind, named.policy, named.issues[1].message], ["server", "api", "bad host"])
    })
  })

  describe("DurationInput", () => {
    it.effect("rejects NaN in every form a Duration.Input can take, naming NaN", () =>
      Effect.gen(function*() {
        for (const input of [NaN, [NaN, 0], [1, NaN], { seconds: NaN }, { millis: 5, minutes: NaN }]) {
          const message = issueAt(yield* durationOf(input), "d")
          assert.include(message, "NaN", JSON.stringify(input))
        }
      }))

    it.effect("rejects durations over a year and says the bound", () =>
      Effect.gen(function*() {
        for (const input of ["366 days", "53 weeks", 366 * 86_400_000, { days: 400 }]) {
          assert.include(issueAt(yield* durationOf(input), "d"), "at most 1 year", JSON.stringify(input))
        }
        // A year exactly is accepted.
        const ok = yield* PolicyConfig.decode(
          Schema.Struct({ d: PolicyConfig.DurationInput({ positive: true }) }),
          { d: "365 days" },
          { kind: "test", policy: "t" }
        )
        assert.strictEqual(PolicyConfig.millisOf(ok.d as Duration.Input), 365 * 86_400_000)
      }))

    it.effect("a typo is not a duration: the message shows the accepted forms", () =>
      Effect.gen(function*() {
        const message = issueAt(yield* durationOf("5 secnds"), "d")
        assert.include(message, "not a duration")
        assert.include(message, "\"5 secnds\"")
        assert.include(message, "seconds")
        assert.include(message, "minutes")
        assert.notInclude(message, "non-negative")
      }))

    it.effect("a negative duration still says non-negative", () =>
      Effect.gen(function*() {
        assert.include(issueAt(yield* durationOf(-5), "d"), "non-negative")
      }))
  })

  describe("Fraction", () => {
    it.effect("a threshold of 50 hints at a share, not a percent", () =>
      Effect.gen(function*() {
        const issues = yield* issuesOf(CircuitBreaker.make({
          name: "db",
          trip: CircuitBreaker.failureRate({ threshold: 50, window: CircuitBreaker.lastCalls(10) })
        }))
        const message = issueAt(issues, "trip[0].threshold")
        assert.include(message, "(0, 1]")
        assert.include(message, "0.5")
        assert.include(message, "percent")
      }))

    it.effect("NaN is not a share", () =>
      Effect.gen(function*() {
        const issues = yield* issuesOf(CircuitBreaker.make({
          name: "db",
          trip: CircuitBreaker.failureRate({ threshold: NaN, window: CircuitBreaker.lastCalls(10) })
        }))
        issueAt(issues, "trip[0].threshold")
      }))
  })

  describe("NaN durations the issue names fail with PolicyConfigError naming the field", () => {
    it.effect("CircuitBreaker openDuration", () =>
      Effect.gen(function*() {
        assert.include(
          issueAt(yield* issuesOf(CircuitBreaker.make({ name: "db", openDuration: NaN })), "openDuration"),
          "NaN"
        )
      }))

    it.effect("CircuitBreaker openDuration: a typo is reported as not a duration, not as a range", () =>
      Effect.gen(function*() {
        const message = issueAt(
          yield* issuesOf(CircuitBreaker.make({ name: "db", openDuration: "5 secnds" as Duration.Input })),
          "openDuration"
        )
        assert.include(message, "not a duration")
        assert.include(message, "Schedule")
      }))

    it.effect("CircuitBreaker slowCallRate slowerThan", () =>
      Effect.gen(function*() {
        const issues = yield* issuesOf(CircuitBreaker.make({
          name: "db",
          trip: CircuitBreaker.slowCallRate({
            threshold: 0.5,
            slowerThan: NaN,
            window: CircuitBreaker.lastCalls(10)
          })
        }))
        assert.include(issueAt(issues, "trip[0].slowerThan"), "NaN")
      }))

    it.effect("Retry.constant delay", () =>
      Effect.gen(function*() {
        const issues = yield* thrown(() => Retry.constant({ delay: NaN, times: 3 }))
        assert.include(issueAt(issues, "delay"), "NaN")
      }))

    it.effect("Retry maxRetryAfter", () =>
      Effect.gen(function*() {
        const issues = yield* issuesOf(
          Retry.make({ name: "r", schedule: Retry.constant({ delay: "1 second", times: 3 }), maxRetryAfter: NaN })
        )
        assert.include(issueAt(issues, "maxRetryAfter"), "NaN")
      }))

    it.effect("Chaos latency delay", () =>
      Effect.gen(function*() {
        const issues = yield* issuesOf(Chaos.make({ name: "c", latency: { rate: 1, delay: NaN } }))
        assert.include(issueAt(issues, "latency.delay"), "NaN")
      }))

    it.effect("CircuitBreaker openDuration over a year", () =>
      Effect.gen(function*() {
        const issues = yield* issuesOf(CircuitBreaker.make({ name: "db", openDuration: "1000 days" }))
        assert.include(issueAt(issues, "openDuration"), "at most 1 year")
      }))
  })

  describe("null is not \"default\": only undefined is", () => {
    it.effect("CircuitBreaker halfOpen.maxProbes", () =>
      Effect.gen(function*() {
        issueAt(
          yield* issuesOf(CircuitBreaker.make({ name: "db", halfOpen: { maxProbes: NULL } })),
          "halfOpen.maxProbes"
        )
      }))

    it.effect("CircuitBreaker keys.maxKeys", () =>
      Effect.gen(function*() {
        issueAt(yield* issuesOf(CircuitBreaker.make({ name: "db", keys: { maxKeys: NULL } })), "keys.maxKeys")
      }))

    it.effect("CircuitBreaker eventBuffer", () =>
      Effect.gen(function*() {
        issueAt(yield* issuesOf(CircuitBreaker.make({ name: "db", eventBuffer: NULL })), "eventBuffer")
      }))

    it.effect("FallbackStore directory", () =>
      Effect.gen(function*() {
        const directory = nulled<string | undefined>(undefined)
        const issues = yield* issuesOf(FallbackStore.make({ directory }).pipe(Effect.scoped))
        issueAt(issues, "directory")
      }).pipe(Effect.provide(NodeServices.layer)))

    it.effect("the other modules' defaults too: Bulkhead, RateLimiter, Hedge, Retry, Chaos", () =>
      Effect.gen(function*() {
        issueAt(yield* issuesOf(Bulkhead.make({ name: "b", maxConcurrent: 1, maxQueue: NULL })), "maxQueue")
        issueAt(
          yield* issuesOf(RateLimiter.make({ name: "r", limit: 1, window: "1 second", tokens: NULL })),
          "tokens"
        )
        issueAt(yield* issuesOf(Hedge.make({ name: "h", delay: "1 second", maxHedges: NULL })), "maxHedges")
        issueAt(
          yield* issuesOf(
            Retry.make({ name: "r", schedule: Retry.constant({ delay: "1 second", times: 1 }), eventBuffer: NULL })
          ),
          "eventBuffer"
        )
        issueAt(yield* issuesOf(Chaos.make({ name: "c", faultRate: NULL })), "faultRate")
      }).pipe(Effect.provide(RateLimiter.layerStoreMemory)))

    it("orDefault: only undefined takes the default", () => {
      assert.strictEqual(PolicyConfig.orDefault(undefined, 3), 3)
      assert.strictEqual(PolicyConfig.orDefault(null, 3), null)
      assert.strictEqual(PolicyConfig.orDefault(0, 3), 0)
    })
  })

  // `null` is no "use the default" (that is `undefined`): wherever an option has a default, it reaches the Schema.
  it.effect("an optional setting given as null is refused, naming it, not read as its default", () =>
    Effect.gen(function*() {
      const nil = null as unknown as undefined
      assert.deepStrictEqual(
        paths(
          yield* Effect.flip(Bulkhead.make({
            name: "pool",
            maxConcurrent: 2,
            adaptive: { min: 1, max: 4, latencyTarget: "1 second", increaseBy: nil, decreaseFactor: nil }
          }))
        ),
        ["adaptive.increaseBy", "adaptive.decreaseFactor"]
      )
      assert.deepStrictEqual(
        paths(
          yield* Effect.flip(CircuitBreaker.make({
            name: "db",
            trip: CircuitBreaker.failureRate({
              threshold: 0.5,
              window: CircuitBreaker.lastCalls(10),
              minimumCalls: nil
            })
          }))
        ),
        ["trip[0].minimumCalls"]
      )
      assert.deepStrictEqual(
        paths(yield* Effect.flip(Chaos.make({ name: "db", latency: { delay: "1 second", rate: nil } }))),
        ["latency.rate"]
      )
      assert.deepStrictEqual(paths(yield* Effect.flip(Alerts.make({ changes: Stream.empty, name: nil }))), ["name"])
    }).pipe(Effect.scoped))
})
