import { assert, describe, it } from "@effect/vitest"
import { Clock, Duration, Effect, Fiber, Layer } from "effect"
import { TestClock } from "effect/testing"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as Agent from "../examples/agent-service/src/Agent.ts"
import * as Upstreams from "../examples/agent-service/src/Upstreams.ts"

const dataDir = Effect.acquireRelease(
  Effect.sync(() => mkdtempSync(join(tmpdir(), "agent-in-process-"))),
  (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
)

// The simulated upstreams, but Firebase's first read never answers.
const firstReadHangs = (reads: Array<number>) =>
  Layer.effect(
    Upstreams.Upstreams,
    Effect.gen(function*() {
      const upstreams = yield* Upstreams.Upstreams
      return Upstreams.Upstreams.of({
        ...upstreams,
        firebaseGet: (key) =>
          Effect.flatMap(Clock.currentTimeMillis, (now) => {
            reads.push(now)
            return reads.length === 1 ? Effect.never : upstreams.firebaseGet(key)
          })
      })
    })
  ).pipe(Layer.provide(Upstreams.layer))

describe("agent service, in process", () => {
  // The seeds' stack (breaker outside, retry inside, timeout innermost): a hung attempt is one attempt, not the call.
  it.effect("a Firebase read that hangs times out after 1 second and is retried, and the session is read", () =>
    Effect.gen(function*() {
      const reads: Array<number> = []
      const agent = Agent.layerRunning(
        { dataDir: yield* dataDir, openDuration: Duration.seconds(2) },
        Agent.layerSearchCacheLocal,
        firstReadHangs(reads)
      )
      yield* Effect.gen(function*() {
        const chat = yield* Effect.forkChild(Agent.AgentService.use((a) => a.chat("ada", "hello")))
        yield* TestClock.adjust("2 seconds")
        const answer = yield* Fiber.join(chat)
        assert.strictEqual(reads.length, 2)
        assert.isAtLeast(reads[1] - reads[0], 1000)
        assert.deepStrictEqual(answer.session, { turns: 1, persisted: true })
        assert.isFalse(answer.degraded)
      }).pipe(Effect.provide(agent))
    }).pipe(Effect.scoped))

  it.effect("the search cache takes a provider's answer to a query once a period, another provider's at once", () =>
    Effect.gen(function*() {
      const fresh = yield* Agent.writeThrottle({ every: "1 minute" })
      assert.isTrue(fresh("effect", "exa_api"))
      assert.isFalse(fresh("effect", "exa_api"))
      // Another query, or another provider for the same query (Tavily once Exa fails), is written at once.
      assert.isTrue(fresh("other", "exa_api"))
      assert.isTrue(fresh("effect", "tavily_api"))
      assert.isFalse(fresh("effect", "tavily_api"))
      yield* TestClock.adjust("59 seconds")
      assert.isFalse(fresh("effect", "tavily_api"))
      yield* TestClock.adjust("1 second")
      assert.isTrue(fresh("effect", "tavily_api"))
      assert.isFalse(fresh("effect", "tavily_api"))
    }).pipe(Effect.scoped))

  it.effect("the search cache's throttle forgets what it saw once it holds maxEntries queries", () =>
    Effect.gen(function*() {
      const fresh = yield* Agent.writeThrottle({ maxEntries: 2 })
      assert.isTrue(fresh("a", "exa_api"))
      assert.isTrue(fresh("b", "exa_api"))
      assert.isFalse(fresh("a", "exa_api"))
      // A third query clears what it holds: "a" is written again, once.
      assert.isTrue(fresh("c", "exa_api"))
      assert.isTrue(fresh("a", "exa_api"))
      assert.isFalse(fresh("a", "exa_api"))
    }).pipe(Effect.scoped))
})
