import * as RedisServer from "@effect-resilience/testing/RedisServer"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { assertStory, type Run, runNode, runProcess } from "./starterProcess.ts"

// The published shape, as a user gets it: the packages packed (`prepack` builds them), the tarballs installed into a
// project of their own with effect and the peers from the registry, the starter program compiled to JavaScript there
// against the installed types, and run with plain `node` (no type stripping).

const root = join(import.meta.dirname, "..")
const publishable = ["core", "redis", "http", "health-pg"]

const succeeded = (step: string, run: Run) => assert.strictEqual(run.code, 0, `${step}:\n${run.stdout}\n${run.stderr}`)

const tempDir = Effect.acquireRelease(
  Effect.sync(() => mkdtempSync(join(tmpdir(), "pack-"))),
  (directory) => Effect.sync(() => rmSync(directory, { recursive: true, force: true }))
)

describe("the packed packages", () => {
  it.live("install from their tarballs and run the starter program with plain node", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const tarballs = join(dir, "tarballs")
      const packed = yield* runProcess({
        command: "pnpm",
        args: [
          ...publishable.flatMap((name) => ["--filter", `./packages/${name}`]),
          "pack",
          "--pack-destination",
          tarballs
        ],
        cwd: root,
        timeoutMillis: 120_000
      })
      succeeded("pnpm pack", packed)
      const files = readdirSync(tarballs).sort()
      assert.deepStrictEqual(files, publishable.map((name) => `effect-resilience-${name}-0.1.0.tgz`).sort())

      for (const file of files) {
        const listing = yield* runProcess({ command: "tar", args: ["tzf", file], cwd: tarballs, timeoutMillis: 30_000 })
        succeeded(`tar ${file}`, listing)
        for (const entry of ["README.md", "LICENSE", "package.json", "dist/index.js", "dist/index.d.ts"]) {
          assert.include(listing.stdout.split("\n"), `package/${entry}`, `${file} lacks ${entry}`)
        }
        const manifest = yield* runProcess({
          command: "tar",
          args: ["xzfO", file, "package/package.json"],
          cwd: tarballs,
          timeoutMillis: 30_000
        })
        const json: {
          readonly license: string
          readonly exports: Record<string, unknown>
          readonly peerDependencies: Record<string, string>
        } = JSON.parse(manifest.stdout)
        assert.strictEqual(json.license, "MIT")
        // publishConfig's exports: the built files, not the sources.
        assert.deepStrictEqual(json.exports["."], { types: "./dist/index.d.ts", default: "./dist/index.js" })
        assert.strictEqual(json.peerDependencies["effect"], "^4.1.5")
        for (const range of Object.values(json.peerDependencies)) assert.notInclude(range, "workspace:")
      }

      // A project of its own, outside the workspace: what `npm install` gives a user.
      const app = join(dir, "app")
      mkdirSync(join(app, "src"), { recursive: true })
      writeFileSync(join(app, "package.json"), JSON.stringify({ name: "starter", private: true, type: "module" }))
      const installed = yield* runProcess({
        command: "npm",
        args: [
          "install",
          "--no-audit",
          "--no-fund",
          "--loglevel=error",
          join(tarballs, "effect-resilience-core-0.1.0.tgz"),
          join(tarballs, "effect-resilience-redis-0.1.0.tgz"),
          "effect@^4.1.5",
          "@effect/platform-node@^4.1.5",
          "redis@^6.3.0"
        ],
        cwd: app,
        timeoutMillis: 120_000
      })
      succeeded("npm install", installed)

      copyFileSync(join(root, "examples", "starter", "src", "main.ts"), join(app, "src", "main.ts"))
      writeFileSync(
        join(app, "tsconfig.json"),
        JSON.stringify({
          compilerOptions: {
            target: "ES2022",
            lib: ["ES2022"],
            module: "NodeNext",
            strict: true,
            exactOptionalPropertyTypes: true,
            skipLibCheck: true,
            types: [],
            rootDir: "src",
            outDir: "dist"
          },
          include: ["src"]
        })
      )
      // Typechecks the program against the installed declarations, then emits it.
      const compiled = yield* runProcess({
        command: join(root, "node_modules", ".bin", "tsc"),
        args: ["-p", "tsconfig.json"],
        cwd: app,
        timeoutMillis: 60_000
      })
      succeeded("tsc", compiled)

      const server = yield* RedisServer.make()
      const run = yield* runNode({
        args: ["--no-experimental-strip-types", "dist/main.js"],
        cwd: app,
        env: { REDIS_URL: server.url, DATA_DIR: join(dir, "data") },
        timeoutMillis: 20_000
      })
      succeeded("node dist/main.js", run)
      assertStory(run.stdout)
      assert.include(run.stdout, "redis count 9")
      assert.include(run.stdout, "health: redis Healthy, overall Healthy")
    }).pipe(Effect.scoped), 240_000)
})
