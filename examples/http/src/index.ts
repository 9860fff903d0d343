// The example's entry point: the service of surface.ts (shown in the README) with the HTTP surface on :8080.
import { NodeRuntime } from "@effect/platform-node"
import { Layer } from "effect"
import { Main } from "./surface.ts"

NodeRuntime.runMain(Layer.launch(Main))
