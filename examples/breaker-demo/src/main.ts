/**
 * Runs the breaker demo: `pnpm start` from the repository root.
 */
import { NodeRuntime } from "@effect/platform-node"
import { Effect } from "effect"
import { demo } from "./demo.ts"

NodeRuntime.runMain(Effect.scoped(demo))
