/**
 * The child process of the FallbackStore scenarios: `node writer.ts <directory> write <from> <keys>` opens a file
 * store on the directory and writes versions `from`, `from + 1`, ... (key `k<n mod keys>`, value `Data.value(n)`)
 * for ever, printing `ack <n>` once each `set` returned; `node writer.ts <directory> hold` opens the store, prints
 * `ready <pid>` and waits; either prints `locked <holder>` and exits 3 when the directory is locked.
 */
import { FallbackStore } from "@effect-resilience/core"
import { NodeRuntime, NodeServices } from "@effect/platform-node"
import { Effect } from "effect"
import * as Data from "./Data.ts"

const [directory = ".data", mode = "hold", fromArg = "0", keysArg = "64"] = process.argv.slice(2)

const say = (line: string) => Effect.sync(() => process.stdout.write(`${line}\n`))

const program = Effect.gen(function*() {
  const store = yield* FallbackStore.make({ directory })
  yield* say(`ready ${process.pid}`)
  if (mode === "hold") return yield* Effect.never
  const keys = Number(keysArg)
  for (let n = Number(fromArg);; n++) {
    yield* store.set(Data.key(n, keys), Data.value(n))
    yield* say(`ack ${n}`)
  }
}).pipe(
  Effect.catchTag("FallbackStoreError", (error) =>
    error.reason === "Locked"
      ? Effect.andThen(say(`locked ${error.holder}`), Effect.sync(() => process.exit(3)))
      : Effect.fail(error)),
  Effect.scoped,
  Effect.provide(NodeServices.layer)
)

NodeRuntime.runMain(program)
