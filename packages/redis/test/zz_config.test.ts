import * as RedisServer from "@effect-resilience/testing/RedisServer"
import { assert, it } from "@effect/vitest"
import { ConfigProvider, Effect, Exit, Layer, Option } from "effect"
import * as RedisStore from "../src/RedisStore.ts"

// A URL whose path is not a database number (`redis://cache:6379/sessions`, a common slip for a prefix or a name)
// passes the option check, then node-redis' `createClient` throws `TypeError: Invalid pathname` while the layer
// builds: the layer dies with a defect that names neither the option nor what was expected, instead of failing with
// the documented `PolicyConfigError` ("invalid ones fail with one PolicyConfigError that names each option, what was
// expected and what was given").
const issuesOf = (exit: Exit.Exit<unknown, unknown>) => {
  const error = Exit.findErrorOption(exit)
  assert.isTrue(Option.isSome(error), `the layer died instead of failing: ${Exit.isFailure(exit) ? exit.cause : ""}`)
  const failure = Option.getOrThrow(error) as {
    readonly _tag: string
    readonly message: string
    readonly issues: ReadonlyArray<{ readonly path: string }>
  }
  assert.strictEqual(failure._tag, "PolicyConfigError")
  assert.notInclude(failure.message, "hunter2")
  return failure.issues.map((issue) => issue.path)
}

for (const lazy of [false, true]) {
  it.live(`a url whose path is not a database number fails with PolicyConfigError naming url${lazy ? " (lazy)" : ""}`, () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.make()
      const url = `redis://:hunter2@127.0.0.1:${server.port}/sessions`
      const exit = yield* Effect.exit(Layer.build(RedisStore.layer({ url, lazy })))
      assert.deepStrictEqual(issuesOf(exit), ["url"])
    }).pipe(Effect.scoped))
}

it.live("a REDIS_URL whose path is not a database number fails with PolicyConfigError naming REDIS_URL", () =>
  Effect.gen(function*() {
    const server = yield* RedisServer.make()
    const exit = yield* Effect.exit(Layer.build(
      RedisStore.layerConfig().pipe(
        Layer.provide(ConfigProvider.layer(ConfigProvider.fromUnknown({
          REDIS_URL: `redis://:hunter2@127.0.0.1:${server.port}/sessions`
        })))
      )
    ))
    assert.deepStrictEqual(issuesOf(exit), ["REDIS_URL (url)"])
  }).pipe(Effect.scoped))
