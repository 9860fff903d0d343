import * as AgentProcess from "@effect-resilience/example-agent-service/process"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import { readFileSync } from "node:fs"
import { createServer } from "node:net"

const token = "test-admin-token"

// The IPv4 addresses listening on `port`, read from /proc/net/tcp (little-endian hex, state 0A: LISTEN).
const listening = (port: number): ReadonlyArray<string> =>
  readFileSync("/proc/net/tcp", "utf8").split("\n").slice(1).flatMap((line) => {
    const [, local, , state] = line.trim().split(/\s+/)
    const [address, hexPort] = (local ?? "").split(":")
    if (state !== "0A" || address === undefined || parseInt(hexPort ?? "", 16) !== port) return []
    return [[6, 4, 2, 0].map((at) => parseInt(address.slice(at, at + 2), 16)).join(".")]
  })

// One service on a free port and a fresh DATA_DIR (or the one given), with a short open duration.
const service = (env: Record<string, string> = {}) =>
  AgentProcess.startFresh(token, { BREAKER_OPEN_DURATION: "1 second", ...env })

const chaos = (instance: AgentProcess.Instance, name: string, body: unknown) =>
  Effect.flatMap(instance.request("POST", `/chaos/${name}`, { body, token }), (response) => {
    assert.strictEqual(response.status, 200, JSON.stringify(response.body))
    return Effect.void
  })

const expectBody = <A>(
  instance: AgentProcess.Instance,
  method: "GET" | "POST",
  path: string,
  predicate: (body: AgentProcess.Json) => boolean,
  body?: unknown
) =>
  AgentProcess.eventually(
    Effect.flatMap(
      instance.request(method, path, body === undefined ? undefined : { body }),
      (response) =>
        predicate(response.body)
          ? Effect.succeed(response.body as A)
          : Effect.fail(new AgentProcess.ProcessError({ message: JSON.stringify(response.body) }))
    )
  )

const chatAs = (user: string) => (agent: AgentProcess.Instance, message: string) =>
  agent.request("POST", "/chat", { body: { user_id: user, message } })

const level = (instance: AgentProcess.Instance) =>
  Effect.map(instance.request("GET", "/health"), (response) => response.body.degradation_level as number)

describe("agent service", { timeout: 120_000 }, () => {
  it.live("search falls back exa -> tavily -> cache -> unavailable, and serves from exa again once it recovers", () =>
    Effect.gen(function*() {
      const agent = yield* service()
      const healthy = yield* agent.request("GET", "/search?q=effect")
      assert.strictEqual(healthy.status, 200)
      assert.strictEqual(healthy.body.served_by, "exa_api")
      assert.strictEqual(healthy.body.degraded, false)
      assert.strictEqual(healthy.body.results.length, 3)

      yield* chaos(agent, "exa", { failure_rate: 1 })
      const tavily = yield* agent.request("GET", "/search?q=effect")
      assert.strictEqual(tavily.body.served_by, "tavily_api")
      assert.strictEqual(tavily.body.degraded, true)
      assert.match(tavily.body.results[0].url, /tavily/)

      yield* chaos(agent, "tavily", { failure_rate: 1 })
      const cached = yield* agent.request("GET", "/search?q=effect")
      assert.strictEqual(cached.body.served_by, "cache")
      assert.strictEqual(cached.body.degraded, true)
      assert.match(cached.body.results[0].url, /tavily/) // the last good answer
      const unavailable = yield* agent.request("GET", "/search?q=never-asked")
      assert.strictEqual(unavailable.body.served_by, "unavailable")
      assert.deepStrictEqual(unavailable.body.results, [])
      assert.match(unavailable.body.message, /unavailable/)

      // Both search breakers open after 3 failures each: level 1.
      yield* expectBody(agent, "GET", "/search?q=x", (b) => b.served_by === "unavailable")
      for (let i = 0; i < 3; i++) yield* agent.request("GET", `/search?q=trip-${i}`)
      assert.strictEqual(yield* level(agent), 1)
      const health = yield* agent.request("GET", "/health")
      assert.strictEqual(health.body.status, "degraded")
      assert.strictEqual(health.body.circuits.exa_api.state, "open")
      assert.strictEqual(health.body.circuits.tavily_api.state, "open")
      assert.strictEqual(health.body.circuits.claude_api.state, "closed")

      // Exa turned good: it serves again within the recovery target of 5 seconds.
      yield* chaos(agent, "exa", { failure_rate: 0 })
      const started = Date.now()
      yield* expectBody(agent, "GET", "/search?q=effect", (b) => b.served_by === "exa_api")
      assert.isBelow(Date.now() - started, 5_000)
      yield* Effect.ignore(agent.stop("SIGTERM"))
    }).pipe(Effect.scoped))

  it.live("mounts the HTTP package's surface: probes, the monitoring API with the six breakers, metrics, dashboard, docs", () =>
    Effect.gen(function*() {
      const agent = yield* service()
      // On loopback only, unless HOST says otherwise: the chaos and admin controls are not offered to the network.
      assert.deepStrictEqual(listening(agent.port), ["127.0.0.1"])
      assert.strictEqual((yield* agent.request("GET", "/health/live")).status, 200)
      const ready = yield* agent.request("GET", "/health/ready")
      assert.strictEqual(ready.status, 200)
      assert.strictEqual(ready.body.ready, true)
      const breakers = yield* agent.request("GET", "/api/v1/resilience/circuit-breakers")
      assert.deepStrictEqual(
        Object.keys(breakers.body).sort(),
        ["claude_api", "exa_api", "firebase", "qdrant", "tavily_api", "telegram_api"]
      )
      const health = yield* expectBody<AgentProcess.Json>(
        agent,
        "GET",
        "/health",
        (b) => b.services?.disk?.status === "healthy"
      )
      assert.strictEqual(health.status, "healthy")
      assert.strictEqual(health.degradation_level, 0)
      assert.includeMembers(Object.keys(health.services), ["claude_api", "exa_api", "store", "disk"])
      const metrics = yield* agent.request("GET", "/metrics")
      assert.strictEqual(metrics.status, 200)
      assert.match(metrics.body, /deferred_delivery_depth\{policy="telegram"\} 0/)
      assert.strictEqual((yield* agent.request("GET", "/dashboard")).status, 200)
      assert.strictEqual((yield* agent.request("GET", "/api/v1/resilience/docs")).status, 200)

      // Claude forced open through the admin API: level 4, the instance leaves the rotation, chat apologises.
      const forced = yield* agent.request("POST", "/api/v1/resilience/circuit-breakers/claude_api/force-open", {
        token
      })
      assert.strictEqual(forced.status, 200)
      const critical = yield* agent.request("GET", "/health/ready")
      assert.strictEqual(critical.status, 503)
      const chat = yield* agent.request("POST", "/chat", { body: { user_id: "eve", message: "hi" } })
      assert.strictEqual(chat.body.degradation_level, 4)
      assert.strictEqual(chat.body.claude, "queued")
      yield* Effect.ignore(agent.stop("SIGTERM"))
    }).pipe(Effect.scoped))

  it.live("chaos controls need the admin token, name the bad field, and know their services", () =>
    Effect.gen(function*() {
      const agent = yield* service()
      const anonymous = yield* agent.request("GET", "/chaos")
      assert.strictEqual(anonymous.status, 401)
      assert.strictEqual(anonymous.headers.get("www-authenticate"), "Bearer realm=\"effect-resilience\"")
      assert.strictEqual(
        (yield* agent.request("POST", "/chaos/exa", { body: { failure_rate: 1 }, token: "wrong-token" })).status,
        401
      )
      // The scheme in any case, as the HTTP package's admin routes take it; or the token in X-Admin-Token.
      for (
        const headers of [{ authorization: `bearer ${token}` }, { authorization: `BEARER  ${token}` }, {
          "x-admin-token": token
        }]
      ) {
        assert.strictEqual((yield* agent.request("GET", "/chaos", { headers })).status, 200, JSON.stringify(headers))
      }
      for (const headers of [{ authorization: token }, { authorization: `Basic ${token}` }, { "x-admin-token": "" }]) {
        assert.strictEqual((yield* agent.request("GET", "/chaos", { headers })).status, 401, JSON.stringify(headers))
      }
      const unknown = yield* agent.request("POST", "/chaos/bing", { body: { failure_rate: 1 }, token })
      assert.strictEqual(unknown.status, 404)
      const cases: ReadonlyArray<[unknown, string]> = [
        [{ failure_rate: 1.5 }, "failure_rate"],
        [{ failure_rate: -0.1 }, "failure_rate"],
        [{ failure_rate: "high" }, "failure_rate"],
        [{ latency_ms: 60_001 }, "latency_ms"],
        [{ latency_ms: 1.5 }, "latency_ms"],
        [{ failure_rate: 0.5, latency: 10 }, "latency"],
        [[1, 2], "body"]
      ]
      for (const [body, field] of cases) {
        const response = yield* agent.request("POST", "/chaos/claude", { body, token })
        assert.strictEqual(response.status, 400, JSON.stringify(body))
        assert.strictEqual(response.body.field, field, JSON.stringify(body))
      }
      const notJson = yield* agent.request("POST", "/chaos/claude", { raw: "{nope", token })
      assert.strictEqual(notJson.status, 400)
      const set = yield* agent.request("POST", "/chaos/qdrant", {
        body: { failure_rate: 0.25, latency_ms: 60_000 },
        token
      })
      assert.deepStrictEqual(set.body, { service: "qdrant", failure_rate: 0.25, latency_ms: 60_000 })
      const all = yield* agent.request("GET", "/chaos", { token })
      assert.deepStrictEqual(all.body.qdrant, { failure_rate: 0.25, latency_ms: 60_000 })
      assert.deepStrictEqual(all.body.exa, { failure_rate: 0, latency_ms: 0 })
      yield* Effect.ignore(agent.stop("SIGTERM"))
    }).pipe(Effect.scoped))

  it.live("chat names a bad field: a missing, misspelt or unknown one", () =>
    Effect.gen(function*() {
      const agent = yield* service()
      const cases: ReadonlyArray<[unknown, string, string]> = [
        [{ user_id: "ada" }, "message", "Expected a string of 1 to 10000 characters"],
        [{ user_id: "ada", mesage: "hi" }, "mesage", "Unknown field: expected user_id or message"],
        [{ user_id: "ada", message: "hi", extra: true }, "extra", "Unknown field: expected user_id or message"],
        ["hi", "body", "Expected a JSON object"]
      ]
      for (const [body, field, message] of cases) {
        const response = yield* agent.request("POST", "/chat", { body })
        assert.strictEqual(response.status, 400, JSON.stringify(body))
        assert.deepStrictEqual(response.body, { error: "BadRequest", field, message }, JSON.stringify(body))
      }
      yield* Effect.ignore(agent.stop("SIGTERM"))
    }).pipe(Effect.scoped))

  it.live("chat and chaos read at most 64 KiB of body: a larger one, declared or streamed, is a 413 naming the limit", () =>
    Effect.gen(function*() {
      const agent = yield* service()
      const limit = { error: "PayloadTooLarge", field: "body", message: "Expected a body of at most 65536 bytes" }
      // The largest valid chat, every character escaped in its JSON (6 bytes each): about 61 KB.
      const largest = yield* agent.request("POST", "/chat", {
        body: { user_id: "\u0001".repeat(200), message: "\u0001".repeat(10_000) }
      })
      assert.strictEqual(largest.status, 200, JSON.stringify(largest.body).slice(0, 200))
      const declared = yield* agent.request("POST", "/chat", {
        body: { user_id: "mallory", message: "hi", padding: "x".repeat(8 * 1024 * 1024) }
      })
      assert.strictEqual(declared.status, 413, JSON.stringify(declared.body).slice(0, 200))
      assert.deepStrictEqual(declared.body, limit)
      const control = yield* agent.request("POST", "/chaos/exa", {
        body: { failure_rate: 1, padding: "x".repeat(20 * 1024 * 1024) },
        token
      })
      assert.strictEqual(control.status, 413, JSON.stringify(control.body).slice(0, 200))
      assert.deepStrictEqual(control.body, limit)
      // Chunked, no length declared: refused once past the limit, whatever follows.
      const chunks = [`{"user_id":"mallory","message":"`, ...Array.from({ length: 8 }, () => "x".repeat(16_384)), `"}`]
      const streamed = yield* Effect.promise(async () => {
        const response = await fetch(`${agent.base}/chat`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: ReadableStream.from(chunks.map((chunk) => new TextEncoder().encode(chunk))),
          duplex: "half"
        })
        return { status: response.status, body: await response.json() }
      })
      assert.strictEqual(streamed.status, 413, JSON.stringify(streamed.body).slice(0, 200))
      assert.deepStrictEqual(streamed.body, limit)
      assert.strictEqual((yield* chatAs("ada")(agent, "still here?")).status, 200)
      yield* Effect.ignore(agent.stop("SIGTERM"))
    }).pipe(Effect.scoped))

  it.live("chat degrades level by level: keyword memory, L1-only state, then an apology with the message queued", () =>
    Effect.gen(function*() {
      const agent = yield* service()
      const chat = (message: string) => agent.request("POST", "/chat", { body: { user_id: "ada", message } })
      const first = yield* chat("I like the Effect library")
      assert.strictEqual(first.status, 200)
      assert.strictEqual(first.body.degraded, false)
      assert.strictEqual(first.body.degradation_level, 0)
      assert.strictEqual(first.body.delivery, "Delivered")
      assert.strictEqual(first.body.session.turns, 1)
      assert.strictEqual((yield* chat("")).body.field, "message")
      const longId = yield* agent.request("POST", "/chat", { body: { user_id: "x".repeat(201), message: "hi" } })
      assert.strictEqual(longId.status, 400)
      assert.strictEqual(longId.body.field, "user_id")

      // Qdrant down: keyword match from what this process saw; its breaker opens after 5 failures (level 2).
      yield* chaos(agent, "qdrant", { failure_rate: 1 })
      const keyword = yield* chat("tell me about Effect")
      assert.strictEqual(keyword.body.memory.mode, "keyword")
      assert.include(keyword.body.memory.matches, "I like the Effect library")
      assert.strictEqual(keyword.body.degraded, true)
      yield* expectBody(agent, "POST", "/chat", (b) => b.degradation_level === 2, { user_id: "ada", message: "again" })

      // Firebase down: the session lives in the L1 only (turns still count), level 3 once its breaker opens.
      yield* chaos(agent, "firebase", { failure_rate: 1 })
      const l1 = yield* chat("still there?")
      assert.strictEqual(l1.body.session.persisted, false)
      assert.isAbove(l1.body.session.turns, 3)
      yield* expectBody(agent, "POST", "/chat", (b) => b.degradation_level === 3, { user_id: "ada", message: "hm" })

      // Claude down: an apology, the message queued for retry; level 4 once its breaker opens (3 failures).
      yield* chaos(agent, "claude", { failure_rate: 1 })
      const apology = yield* chat("what is a fiber?")
      assert.strictEqual(apology.status, 200)
      assert.strictEqual(apology.body.claude, "queued")
      assert.match(apology.body.reply, /^Sorry/)
      yield* expectBody(agent, "POST", "/chat", (b) => b.degradation_level === 4, { user_id: "ada", message: "hello?" })

      // Claude back: the queued messages are answered and delivered through Telegram.
      yield* chaos(agent, "claude", { failure_rate: 0 })
      yield* expectBody(
        agent,
        "GET",
        "/telegram/outbox",
        (b) => b.sent.some((m: AgentProcess.Json) => m.text.includes("what is a fiber?")) && b.claude_retry.depth === 0
      )
      yield* Effect.ignore(agent.stop("SIGTERM"))
    }).pipe(Effect.scoped))

  it.live("every message Claude could not answer is answered: the same text in a later outage, texts alike in digest", () =>
    Effect.gen(function*() {
      const agent = yield* service()
      // The replies to `message` (a reply may quote earlier messages too, as memories).
      const replies = (message: string) =>
        Effect.map(
          agent.request("GET", "/telegram/outbox"),
          (r) =>
            r.body.sent.filter((m: AgentProcess.Json) => m.text.startsWith(`You said: "${message}"`)).length as number
        )
      const outage = (messages: ReadonlyArray<string>) =>
        Effect.gen(function*() {
          yield* chaos(agent, "claude", { failure_rate: 1 })
          for (const message of messages) {
            assert.strictEqual((yield* chatAs("cat")(agent, message)).body.claude, "queued")
          }
          yield* chaos(agent, "claude", { failure_rate: 0 })
          yield* expectBody(
            agent,
            "GET",
            "/telegram/outbox",
            (b) => b.claude_retry.depth === 0 && b.telegram.depth === 0
          )
        })
      // Two texts whose 32-bit FNV-1a digests (the queue key's, once) are the same: two messages, two replies.
      yield* outage(["question number 004pwu", "question number 00f5fa"])
      assert.deepStrictEqual([yield* replies("question number 004pwu"), yield* replies("question number 00f5fa")], [
        1,
        1
      ])
      // The same text in a second outage is a second message: its reply is not taken for a repeat of the first's.
      yield* outage(["tell me about fibers"])
      yield* outage(["tell me about fibers"])
      yield* expectBody(agent, "GET", "/telegram/outbox", (b) => b.claude_retry.delivered === 4)
      assert.strictEqual(yield* replies("tell me about fibers"), 2)
      yield* Effect.ignore(agent.stop("SIGTERM"))
    }).pipe(Effect.scoped))

  it.live("telegram replies are queued durably while it is down: delivered on recovery, and after a SIGKILL", () =>
    Effect.gen(function*() {
      const dataDir = yield* AgentProcess.tempDir("agent-service-")
      const chat = chatAs("bob")
      const first = yield* service({ DATA_DIR: dataDir })
      yield* chaos(first, "telegram", { failure_rate: 1 })
      const queued = yield* chat(first, "first while down")
      assert.strictEqual(queued.body.delivery, "Queued")
      assert.strictEqual(queued.body.degraded, true)
      // Recovery: delivered once the telegram breaker lets the drainer through.
      yield* chaos(first, "telegram", { failure_rate: 0 })
      yield* expectBody(
        first,
        "GET",
        "/telegram/outbox",
        (b) => b.telegram.depth === 0 && b.sent.some((m: AgentProcess.Json) => m.text.includes("first while down"))
      )

      // Down again, then the process is killed with messages queued.
      yield* chaos(first, "telegram", { failure_rate: 1 })
      assert.strictEqual((yield* chat(first, "second while down")).body.delivery, "Queued")
      assert.strictEqual((yield* chat(first, "third while down")).body.delivery, "Queued")
      assert.strictEqual(yield* first.stop("SIGKILL"), "SIGKILL")

      // A new process on the same DATA_DIR (its Telegram is up) delivers them, in order.
      const second = yield* service({ DATA_DIR: dataDir })
      const outbox = yield* expectBody<AgentProcess.Json>(second, "GET", "/telegram/outbox", (b) => b.sent.length === 2)
      assert.match(outbox.sent[0].text, /second while down/)
      assert.match(outbox.sent[1].text, /third while down/)
      assert.strictEqual(outbox.telegram.depth, 0)
      assert.strictEqual(yield* second.stop("SIGTERM"), 0)
    }).pipe(Effect.scoped))

  it.live("bad configuration stops the service at startup with a message naming the variable", () =>
    Effect.gen(function*() {
      const cases: ReadonlyArray<[Record<string, string>, RegExp]> = [
        [{ PORT: "not-a-port" }, /PORT/],
        [{ PORT: "3000", RESILIENCE_ADMIN_TOKEN: "short" }, /RESILIENCE_ADMIN_TOKEN/],
        // No header could carry it: every admin request would be a 401.
        [
          { PORT: "3000", RESILIENCE_ADMIN_TOKEN: "s3cret-€uro-token" },
          /Configuration error: RESILIENCE_ADMIN_TOKEN: /
        ],
        [{ PORT: "3000", BREAKER_OPEN_DURATION: "soon" }, /BREAKER_OPEN_DURATION/],
        // Past core's limit: refused by the configuration, not later by the breakers (with a stack).
        [{ PORT: "3000", BREAKER_OPEN_DURATION: "400 days" }, /Configuration error: BREAKER_OPEN_DURATION: /],
        [{ PORT: "3000", REDIS_URL: "localhost:6379" }, /REDIS_URL/],
        [{ PORT: "3000", REDIS_URL: "redis://127.0.0.1:99999" }, /Configuration error: REDIS_URL: /],
        // A file where the data directory should be.
        [{ PORT: "3000", DATA_DIR: `${import.meta.dirname}/package.json` }, /DATA_DIR: Expected a directory/]
      ]
      for (const [env, message] of cases) {
        const agent = yield* AgentProcess.start({
          env: { DATA_DIR: yield* AgentProcess.tempDir("agent-service-"), RESILIENCE_ADMIN_TOKEN: token, ...env },
          waitForListening: false
        })
        assert.strictEqual(yield* agent.exited, 1, agent.output())
        assert.match(agent.output(), /Configuration error/)
        assert.match(agent.output(), message)
        assert.notInclude(agent.output(), "listening on")
        // One line, no stack.
        assert.notMatch(agent.output(), /\n\s+at /)
      }
    }).pipe(Effect.scoped))

  it.live("a DATA_DIR the service cannot write in stops it at startup with one line naming DATA_DIR, at once", () =>
    Effect.gen(function*() {
      // Directories no one can make a directory in, root included (as a read-only one is for any user): one exists
      // (the stores' error and its stack, or Node's recursive mkdir looping for good on /proc), one is to be made.
      for (const dataDir of ["/sys/kernel", "/proc", "/proc/agent-data"]) {
        const agent = yield* AgentProcess.start({
          env: { PORT: String(yield* AgentProcess.freePort), DATA_DIR: dataDir, RESILIENCE_ADMIN_TOKEN: token },
          waitForListening: false
        })
        const exited = yield* agent.exited.pipe(Effect.timeoutOrElse({
          duration: "20 seconds",
          orElse: () => Effect.succeed("still running")
        }))
        assert.strictEqual(exited, 1, `${dataDir}: ${agent.output()}`)
        assert.match(agent.output(), new RegExp(`Configuration error: DATA_DIR: .*"${dataDir}"`))
        assert.notInclude(agent.output(), "listening on")
        assert.notMatch(agent.output(), /\n\s+at /)
      }
    }).pipe(Effect.scoped))

  it.live("a second instance on a DATA_DIR in use stops at startup with one line: give each instance its own", () =>
    Effect.gen(function*() {
      const dataDir = yield* AgentProcess.tempDir("agent-service-")
      const first = yield* service({ DATA_DIR: dataDir })
      const second = yield* AgentProcess.start({
        env: { PORT: String(yield* AgentProcess.freePort), DATA_DIR: dataDir, RESILIENCE_ADMIN_TOKEN: token },
        waitForListening: false
      })
      assert.strictEqual(yield* second.exited, 1, second.output())
      assert.match(second.output(), /Configuration error: DATA_DIR: .* is in use by process \d+/)
      assert.match(second.output(), /each instance needs its own DATA_DIR/)
      assert.notInclude(second.output(), "listening on")
      assert.notMatch(second.output(), /\n\s+at /)
      // The first one is unharmed.
      assert.strictEqual((yield* first.request("GET", "/search?q=effect")).body.served_by, "exa_api")
    }).pipe(Effect.scoped))

  it.live("a PORT in use stops the service at startup with one line naming PORT", () =>
    Effect.gen(function*() {
      const port = yield* AgentProcess.freePort
      // Something else holds the port (another `pnpm start`, say).
      yield* Effect.acquireRelease(
        Effect.callback<ReturnType<typeof createServer>>((resume) => {
          const server = createServer().listen(port, "127.0.0.1", () => resume(Effect.succeed(server)))
        }),
        (server) => Effect.callback<void>((resume) => void server.close(() => resume(Effect.void)))
      )
      const agent = yield* AgentProcess.start({
        env: {
          PORT: String(port),
          DATA_DIR: yield* AgentProcess.tempDir("agent-service-"),
          RESILIENCE_ADMIN_TOKEN: token
        },
        waitForListening: false
      })
      assert.strictEqual(yield* agent.exited, 1, agent.output())
      assert.match(agent.output(), new RegExp(`Configuration error: PORT: 127\\.0\\.0\\.1:${port} is in use`))
      assert.notMatch(agent.output(), /\n\s+at /)
    }).pipe(Effect.scoped))

  it.live("with HOST one address of this machine, the URLs it prints are on that address, and answer", () =>
    Effect.gen(function*() {
      // A loopback address other than 127.0.0.1 (Linux answers on all of 127/8): `localhost` is not it.
      const agent = yield* service({ HOST: "127.0.0.2" })
      assert.deepStrictEqual(listening(agent.port), ["127.0.0.2"])
      const base = `http://127.0.0.2:${agent.port}`
      assert.include(agent.output(), `listening on ${base} (pid`)
      assert.include(agent.output(), `dashboard: ${base}/dashboard`)
      const printed = /search:\s+curl '([^']+)'/.exec(agent.output())?.[1]
      assert.strictEqual(printed, `${base}/search?q=effect`)
      const answer: AgentProcess.Json = yield* Effect.promise(() => fetch(printed!).then((response) => response.json()))
      assert.strictEqual(answer.served_by, "exa_api")
      assert.strictEqual(yield* agent.stop("SIGTERM"), 0)
    }).pipe(Effect.scoped))

  it.live("a HOST it cannot listen on (not this machine's, or no address) stops it at startup with one line", () =>
    Effect.gen(function*() {
      const cases: ReadonlyArray<[host: string, message: RegExp]> = [
        // TEST-NET-1 (RFC 5737): no machine's own address.
        ["192.0.2.1", /Configuration error: HOST: 192\.0\.2\.1 is not an address of this machine; set HOST to one/],
        // .invalid never resolves (RFC 6761); where no DNS server answers at all, the lookup times out instead.
        [
          "agent.invalid",
          new RegExp(
            "Configuration error: HOST: agent\\.invalid " +
              "(does not resolve to an address|could not be resolved \\(DNS did not answer\\)); set HOST to"
          )
        ]
      ]
      for (const [host, message] of cases) {
        const agent = yield* AgentProcess.start({
          env: {
            PORT: String(yield* AgentProcess.freePort),
            HOST: host,
            DATA_DIR: yield* AgentProcess.tempDir("agent-service-"),
            RESILIENCE_ADMIN_TOKEN: token
          },
          waitForListening: false
        })
        assert.strictEqual(yield* agent.exited, 1, agent.output())
        assert.match(agent.output(), message)
        assert.notMatch(agent.output(), /\n\s+at /)
      }
    }).pipe(Effect.scoped))

  it.live("SIGTERM finishes the requests in flight, then exits 0; a generated token is printed once", () =>
    Effect.gen(function*() {
      const port = yield* AgentProcess.freePort
      const agent = yield* AgentProcess.start({
        env: { PORT: String(port), DATA_DIR: yield* AgentProcess.tempDir("agent-service-") }
      })
      const generated = AgentProcess.printedToken(agent.output())
      assert.isDefined(generated)
      assert.strictEqual(agent.output().split(generated!).length, 2)
      const set = yield* agent.request("POST", "/chaos/exa", { body: { latency_ms: 1000 }, token: generated })
      assert.strictEqual(set.status, 200)
      const inFlight = yield* Effect.forkChild(agent.request("GET", "/search?q=slow"))
      yield* Effect.sleep("300 millis")
      const exit = yield* Effect.forkChild(agent.stop("SIGTERM"))
      const response = yield* Fiber.join(inFlight)
      assert.strictEqual(response.status, 200)
      assert.strictEqual(response.body.served_by, "exa_api")
      assert.strictEqual(yield* Fiber.join(exit), 0)
      assert.match(agent.output(), /Agent service stopped/)
    }).pipe(Effect.scoped))

  it.live("SIGINT exits 0 too", () =>
    Effect.gen(function*() {
      const agent = yield* service()
      assert.strictEqual(yield* agent.stop("SIGINT"), 0)
    }).pipe(Effect.scoped))
})
