import * as RedisServer from "@effect-resilience/testing/RedisServer"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { assertStory, runNode } from "./starterProcess.ts"

const starter = join(import.meta.dirname, "..", "examples", "starter")

const tempDir = Effect.acquireRelease(
  Effect.sync(() => mkdtempSync(join(tmpdir(), "starter-"))),
  (directory) => Effect.sync(() => rmSync(directory, { recursive: true, force: true }))
)

describe("the starter program", () => {
  it.live("runs in real time with Redis up and stops by itself", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.make()
      const run = yield* runNode({
        args: ["src/main.ts"],
        cwd: starter,
        env: { REDIS_URL: server.url, DATA_DIR: yield* tempDir },
        timeoutMillis: 20_000
      })
      assert.strictEqual(run.code, 0, run.stderr)
      assertStory(run.stdout)
      assert.include(run.stdout, "round 9: EFCT 101.40; shipped via eu, us: rejected (CircuitOpen); redis count 9")
      assert.include(run.stdout, "health: redis Healthy, overall Healthy")
      // Nine rounds of 250 ms, then it stops: not a server that runs until killed.
      assert.isAtLeast(run.millis, 2_000)
      assert.isBelow(run.millis, 15_000)
    }).pipe(Effect.scoped), 30_000)

  it.live("starts and runs while Redis is down, with one line about it", () =>
    Effect.gen(function*() {
      const port = yield* RedisServer.freePort
      const run = yield* runNode({
        args: ["src/main.ts"],
        cwd: starter,
        env: { REDIS_URL: `redis://127.0.0.1:${port}`, DATA_DIR: yield* tempDir },
        timeoutMillis: 20_000
      })
      assert.strictEqual(run.code, 0, run.stderr)
      assertStory(run.stdout)
      assert.include(run.stdout, "round 9: EFCT 101.40; shipped via eu, us: rejected (CircuitOpen); redis unavailable")
      assert.include(run.stdout, "health: redis Unhealthy, overall Unhealthy")
      const redisLines = (run.stdout + run.stderr).split("\n").filter((line) => line.includes(`127.0.0.1:${port}`))
      assert.strictEqual(redisLines.length, 1, redisLines.join("\n"))
      assert.include(redisLines[0]!, "RedisStore: cannot connect to")
    }).pipe(Effect.scoped), 30_000)
})
