/**
 * The README's walkthrough, run as a user would: `pnpm start` on a free port, wait for /health/ready, turn Exa bad,
 * see `served_by` move to Tavily, turn it good, see Exa serve again, stop with SIGTERM and check the clean exit.
 *
 *   node examples/agent-service/src/walkthrough.ts
 */
import { NodeRuntime } from "@effect/platform-node"
import { Console, Effect } from "effect"
import { dirname, join } from "node:path"
import * as AgentProcess from "./Process.ts"

const root = join(dirname(AgentProcess.entry), "..", "..", "..")

const step = (message: string) => Console.log(`walkthrough: ${message}`)

const program = Effect.gen(function*() {
  const port = yield* AgentProcess.freePort
  const token = "walkthrough-admin-token"
  yield* step(`pnpm start on port ${port}`)
  const agent = yield* AgentProcess.start({
    command: ["pnpm", "start"],
    cwd: root,
    env: {
      PORT: String(port),
      DATA_DIR: yield* AgentProcess.tempDir("agent-walkthrough-"),
      RESILIENCE_ADMIN_TOKEN: token
    }
  })
  const expect = (
    method: "GET" | "POST",
    path: string,
    what: string,
    ok: (status: number, body: AgentProcess.Json) => boolean,
    body?: unknown
  ) =>
    AgentProcess.eventually(
      Effect.flatMap(
        agent.request(method, path, { body, token }),
        (response) =>
          ok(response.status, response.body)
            ? Effect.as(step(`${method} ${path}: ${what}`), response.body)
            : Effect.fail(
              new AgentProcess.ProcessError({ message: `${method} ${path}: ${JSON.stringify(response.body)}` })
            )
      ),
      "15 seconds"
    )

  yield* expect("GET", "/health/ready", "ready", (status) => status === 200)
  yield* expect("GET", "/search?q=effect", "served by exa_api", (_, b) => b.served_by === "exa_api")
  yield* expect("POST", "/chaos/exa", "exa turned bad", (status) => status === 200, { failure_rate: 1 })
  yield* expect("GET", "/search?q=effect", "served by tavily_api", (_, b) => b.served_by === "tavily_api")
  yield* expect("GET", "/search?q=agents", "served by tavily_api", (_, b) => b.served_by === "tavily_api")
  yield* expect("GET", "/search?q=fibers", "served by tavily_api", (_, b) => b.served_by === "tavily_api")
  yield* expect("GET", "/health", "exa_api open (3 failures)", (_, b) => b.circuits?.exa_api?.state === "open")
  yield* expect("POST", "/chaos/exa", "exa turned good", (status) => status === 200, { failure_rate: 0 })
  const recovered = Date.now()
  yield* expect("GET", "/search?q=effect", "served by exa_api again", (_, b) => b.served_by === "exa_api")
  yield* step(`exa served again ${Date.now() - recovered} ms after it was turned good`)

  const code = yield* agent.stopService("SIGTERM")
  if (code !== 0) {
    return yield* Effect.fail(
      new AgentProcess.ProcessError({ message: `exit ${code} after SIGTERM:\n${agent.output()}` })
    )
  }
  yield* step("stopped with SIGTERM, exit 0")
}).pipe(
  Effect.scoped,
  Effect.timeout("2 minutes")
)

NodeRuntime.runMain(program)
