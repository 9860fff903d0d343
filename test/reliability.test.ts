import { assert, it } from "@effect/vitest"
import { Effect } from "effect"
import { spawnSync } from "node:child_process"
import { fileURLToPath } from "node:url"

const main = fileURLToPath(new URL("../packages/reliability/src/main.ts", import.meta.url))

// The README says `--only name`: a misspelt name is refused with the names there are, before anything runs.
it.effect("pnpm reliability --only with an unknown name lists the scenario names", () =>
  Effect.sync(() => {
    const run = spawnSync(process.execPath, [main, "--only", "fleet,nope"], { encoding: "utf8", timeout: 60_000 })
    const output = run.stdout + run.stderr // the error as Effect logs it
    assert.strictEqual(run.status, 1)
    assert.include(output, "--only: unknown scenario nope")
    for (const name of ["redis-kill", "fleet-quorum", "sentinel", "soak", "fuzz", "fallback-store-lock"]) {
      assert.include(output, name)
    }
  }))
