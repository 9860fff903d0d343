/**
 * `node examples/cache-resilience/src/main.ts`: runs the driver through a cache outage and prints the metrics.
 */
import { NodeRuntime } from "@effect/platform-node"
import { Console, Effect } from "effect"
import { program } from "./driver.ts"

NodeRuntime.runMain(Effect.gen(function*() {
  const { lines, metrics } = yield* program
  for (const line of lines) yield* Console.log(line)
  yield* Console.log(JSON.stringify(metrics, null, 2))
}))
