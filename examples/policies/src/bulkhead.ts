import { Bulkhead } from "@effect-resilience/core"
import { Duration, Effect } from "effect"

// A report query that holds one of the database's connections for 300ms.
const runReport = (id: number) => Effect.sleep("300 millis").pipe(Effect.as(`report ${id}`))

export const program = Effect.gen(function*() {
  // Two connections; three more requests may wait for one, each at most half a second.
  const db = yield* Bulkhead.make({ name: "reports-db", maxConcurrent: 2, maxQueue: 3, maxWait: "500 millis" })
  const report = (id: number) =>
    runReport(id).pipe(
      db.protect,
      // Turned away: say why, and when it is worth trying again (about one call's time).
      Effect.catchTag("BulkheadFull", (e) => Effect.succeed(`${e.reason}, retry in ${Duration.format(e.retryAfter)}`))
    )
  // Six at once: 1 and 2 run, then 3 and 4; 5 gives up at 500ms, before another permit frees; 6 finds no room.
  return yield* Effect.all([1, 2, 3, 4, 5, 6].map(report), { concurrency: "unbounded" })
}).pipe(Effect.scoped)

// Effect.runPromise(program).then(console.log) // ["report 1", "report 2", "report 3", "report 4", "WaitTimeout, retry in 300ms", "QueueFull, retry in 0"]
