/**
 * The dashboard end to end, in a real headless Chromium (Debian's `chromium`, driven with `playwright-core`): the
 * page loads from the whole HTTP surface, follows a breaker tripped by failures and one forced open through the
 * admin API, and resets one with the token asked through the page's own form. It follows the health as the events
 * change it, and comes back to life after a restart whose first answer to its event stream was a 503, and from a
 * stream that hangs (never answered, or silent once open).
 *
 * `UPDATE_DASHBOARD_SCREENSHOT=1 npx vitest run packages/http/test/Dashboard.browser.test.ts` rewrites
 * docs/dashboard.png (the README's screenshot); without it the screenshot is taken and checked, not written, so
 * that a test run leaves the tree clean.
 */
import * as Alerts from "@effect-resilience/core/Alerts"
import * as CircuitBreaker from "@effect-resilience/core/CircuitBreaker"
import * as CircuitBreakerRegistry from "@effect-resilience/core/CircuitBreakerRegistry"
import * as Degradation from "@effect-resilience/core/Degradation"
import * as HealthMonitor from "@effect-resilience/core/HealthMonitor"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import { assert, it } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as FetchHttpClient from "effect/http/FetchHttpClient"
import * as HttpClient from "effect/http/HttpClient"
import * as HttpClientRequest from "effect/http/HttpClientRequest"
import * as HttpRouter from "effect/http/HttpRouter"
import * as HttpServer from "effect/http/HttpServer"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import { existsSync, writeFileSync } from "node:fs"
import { createServer, type IncomingMessage, type ServerResponse } from "node:http"
import { type Browser, chromium, type Page } from "playwright-core"
import * as ResilienceHttp from "../src/ResilienceHttp.ts"

const chromiumPath = "/usr/bin/chromium"
const token = "dashboard-e2e-token"
const screenshot = new URL("../../../docs/dashboard.png", import.meta.url)

// The llm's failure share over 40 calls: rises to 70% and falls back, a curve for its sparkline.
const share = (i: number) => Math.sin((i / 40) * Math.PI) * 0.7

class Upstream extends Data.TaggedError("Upstream")<{ readonly status: number }> {}

// The breakers the test sends traffic through; the dashboard finds all four in the registry.
class Breakers extends Context.Service<Breakers, {
  readonly llm: CircuitBreaker.CircuitBreaker
  readonly search: CircuitBreaker.CircuitBreaker
}>()("test/Dashboard/Breakers") {}

const Core = Layer.mergeAll(
  Degradation.layer({
    normal: "Full functionality",
    rules: [
      { level: 1, breakers: ["search"], description: "Search degraded: cached results" },
      { level: 2, breakers: ["payments"], description: "Checkout paused" }
    ]
  }),
  Alerts.layer().pipe(Layer.provideMerge(HealthMonitor.layer()))
).pipe(
  Layer.provideMerge(Layer.effect(
    Breakers,
    Effect.gen(function*() {
      const search = yield* CircuitBreaker.make({
        name: "search",
        trip: CircuitBreaker.consecutive(3),
        openDuration: "1 minute"
      })
      yield* CircuitBreaker.make({ name: "payments" })
      const llm = yield* CircuitBreaker.make({
        name: "llm",
        trip: CircuitBreaker.failureRate({ threshold: 0.9, window: { _tag: "Count", size: 10 }, minimumCalls: 10 })
      })
      yield* CircuitBreaker.make({ name: "inventory" })
      return { llm, search }
    })
  )),
  Layer.provideMerge(CircuitBreakerRegistry.layer)
)

const Server = HttpRouter.serve(
  ResilienceHttp.layer({
    adminToken: Redacted.make(token),
    dashboard: { title: "checkout: resilience", refreshInterval: "100 millis", sparklineWindow: "5 seconds" }
  }),
  { disableLogger: true, disableListenLog: true }
).pipe(Layer.provideMerge(NodeHttpServer.layer(createServer, { port: 0, host: "127.0.0.1" })))

// The surface, polling once a minute, so that only the event stream can update the page within a test's waits.
const Slow = HttpRouter.serve(
  ResilienceHttp.layer({
    adminToken: Redacted.make(token),
    criticalBreakers: ["payments"],
    dashboard: { refreshInterval: "1 minute" }
  }),
  { disableLogger: true, disableListenLog: true }
).pipe(Layer.provideMerge(NodeHttpServer.layer(createServer, { port: 0, host: "127.0.0.1" })))

const launch = Effect.acquireRelease(
  Effect.promise(() => chromium.launch({ executablePath: chromiumPath, args: ["--headless=new", "--no-sandbox"] })),
  (browser: Browser) => Effect.promise(() => browser.close())
)

// Playwright's locators wait (polling the page) rather than the test sleeping.
const cardSays = (page: Page, breaker: string, state: string) =>
  Effect.promise(() =>
    page.locator(`article[data-breaker="${breaker}"] .state-text`).filter({ hasText: new RegExp(`^${state}$`) })
      .waitFor({ timeout: 10_000 })
  )

const timelineHas = (page: Page, breaker: string, to: string) =>
  Effect.promise(() =>
    page.locator(`#timeline li[data-breaker="${breaker}"][data-to="${to}"]`).first().waitFor({ timeout: 10_000 })
  )

const connected = (page: Page) =>
  Effect.promise(() => page.locator("#connection[data-connected=\"true\"]").waitFor({ timeout: 10_000 }))

// What an element says once it says `text`, or after `timeout` whatever it says then (for the assertion's message).
const saysWithin = (page: Page, selector: string, text: string, timeout: number) =>
  Effect.promise(() =>
    page.locator(selector).filter({ hasText: new RegExp(`^${text}$`) }).waitFor({ timeout }).then(
      () => text,
      () => page.locator(selector).textContent()
    )
  )

const forceOpen = (base: string, breaker: string) =>
  Effect.flatMap(HttpClient.HttpClient, (client) =>
    client.execute(
      HttpClientRequest.post(`${base}/api/v1/resilience/circuit-breakers/${breaker}/force-open`).pipe(
        HttpClientRequest.bearerToken(token)
      )
    ))

const dialogOpen = (page: Page) =>
  Effect.promise(() => page.locator("#token-dialog").evaluate((d) => d.hasAttribute("open")))

const enterToken = (page: Page, value: string) =>
  Effect.promise(async () => {
    await page.locator("#token-dialog[open]").waitFor({ timeout: 10_000 })
    await page.getByLabel("Token", { exact: true }).fill(value)
    await page.getByRole("button", { name: "Use token" }).click()
  })

it.live(
  "the dashboard follows a breaker through Open and back to Closed, reset with the token",
  () =>
    Effect.gen(function*() {
      assert.isTrue(
        existsSync(chromiumPath),
        `${chromiumPath} is missing: this test drives Debian's chromium. Install it with ` +
          "`apt-get update && apt-get install -y chromium` (.ci/run does this in CI)."
      )
      const base = yield* HttpServer.addressFormattedWith((url) => Effect.succeed(url))
      const client = yield* HttpClient.HttpClient
      const browser = yield* launch
      const page = yield* Effect.promise(() => browser.newPage({ viewport: { width: 1280, height: 960 } }))
      const problems: Array<string> = []
      page.on("pageerror", (error) => problems.push(`page error: ${error.message}`))
      // Chromium logs every non-2xx fetch; these are expected here: the fleet probe (404, no fleet), /health while
      // redis is down (503) and the wrong token (401). Anything else (a CSP refusal, a script error) is a problem.
      const expected = /^Failed to load resource: the server responded with a status of (401|404|503) /
      page.on("console", (message) => {
        if (message.type() === "error" && !expected.test(message.text())) problems.push(`console: ${message.text()}`)
      })

      const monitor = yield* HealthMonitor.HealthMonitor
      yield* monitor.register({ name: "postgres", check: Effect.void, interval: "1 second" })
      yield* monitor.register({
        name: "redis",
        check: Effect.fail(new Error("connect ECONNREFUSED 127.0.0.1:6379")),
        interval: "1 second",
        warningThreshold: 1,
        failureThreshold: 2
      })

      yield* Effect.promise(() => page.goto(`${base}/dashboard`))
      for (const name of ["search", "payments", "llm", "inventory"]) yield* cardSays(page, name, "Closed")
      yield* Effect.promise(() => page.locator("#connection[data-connected=\"true\"]").waitFor({ timeout: 10_000 }))

      // Traffic whose failure share rises and falls, so that the llm's rate and sparkline move.
      const { llm, search } = yield* Breakers
      for (let i = 0; i < 40; i++) {
        const failed = (i * share(i)) % 1 > 1 - share(i)
        yield* Effect.ignore(llm.protect(failed ? Effect.fail(new Upstream({ status: 503 })) : Effect.void))
        yield* Effect.ignore(search.protect(Effect.void))
        yield* Effect.sleep("60 millis")
      }
      const rate = yield* Effect.promise(() =>
        page.locator("article[data-breaker=\"llm\"] [data-figure=\"rate\"]").textContent()
      )
      assert.match(rate ?? "", /^\d+\.\d %$/)

      // Force-open through the admin API, with the token.
      const forced = yield* client.execute(
        HttpClientRequest.post(`${base}/api/v1/resilience/circuit-breakers/payments/force-open`).pipe(
          HttpClientRequest.bearerToken(token)
        )
      )
      assert.strictEqual(forced.status, 200)
      yield* cardSays(page, "payments", "Forced open")
      yield* timelineHas(page, "payments", "forced_open")
      assert.strictEqual(
        yield* Effect.promise(() => page.locator("article[data-breaker=\"payments\"]").getAttribute("data-state")),
        "forced_open"
      )
      // The level comes with the page's refresh of /health after the event, which may follow the card's.
      yield* Effect.promise(() => page.locator("#degradation[data-level=\"2\"]").waitFor({ timeout: 10_000 }))

      // Reset through the card's button: the page asks for the token; a wrong one is asked for again.
      yield* Effect.promise(() => page.getByRole("button", { name: "Reset payments" }).click())
      yield* enterToken(page, "not-the-token")
      yield* Effect.promise(() =>
        page.getByText("The token was rejected; enter it again.").waitFor({ timeout: 10_000 })
      )
      yield* enterToken(page, token)
      yield* cardSays(page, "payments", "Closed")
      yield* timelineHas(page, "payments", "closed")
      assert.strictEqual(
        yield* Effect.promise(() => page.evaluate(() => sessionStorage.getItem("effect-resilience.admin-token"))),
        token
      )

      // Tripped by failures: Open, with the reason in the timeline.
      for (let i = 0; i < 3; i++) yield* Effect.ignore(search.protect(Effect.fail(new Upstream({ status: 503 }))))
      yield* cardSays(page, "search", "Open")
      yield* timelineHas(page, "search", "open")
      // Time in state and the retry-after countdown (openDuration 1 minute) are figures, not dashes.
      yield* Effect.promise(() =>
        page.locator("article[data-breaker=\"search\"] [data-figure=\"retry\"]")
          .filter({ hasText: /^(\d{1,2} s|1 min 0 s)$/ }).waitFor({ timeout: 10_000 })
      )
      yield* Effect.promise(() =>
        page.locator("article[data-breaker=\"search\"] [data-figure=\"time\"]").filter({ hasText: /^\d+ s$/ })
          .waitFor({ timeout: 10_000 })
      )
      const reason = yield* Effect.promise(() =>
        page.locator("#timeline li[data-breaker=\"search\"][data-to=\"open\"]").first().textContent()
      )
      assert.include(reason, "3 consecutive failures")

      // The token is asked for once per session: the second action goes straight through. From the keyboard.
      yield* Effect.promise(async () => {
        await page.getByRole("button", { name: "Force open inventory" }).focus()
        await page.keyboard.press("Enter")
      })
      yield* cardSays(page, "inventory", "Forced open")
      assert.isFalse(yield* dialogOpen(page))

      // The health table shows the monitor's checks, and the alert list what Alerts raised.
      yield* Effect.promise(() =>
        page.locator("#alerts li[data-severity]", { hasText: "redis" }).first().waitFor({ timeout: 10_000 })
      )
      yield* Effect.promise(() =>
        page.locator("#health tbody tr[data-status=\"unhealthy\"] th", { hasText: "redis" }).waitFor({
          timeout: 10_000
        })
      )

      const png = yield* Effect.promise(() => page.screenshot({ fullPage: true }))
      assert.deepStrictEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])
      if (process.env["UPDATE_DASHBOARD_SCREENSHOT"]) writeFileSync(screenshot, png)
      assert.deepStrictEqual([...problems], [])
    }).pipe(
      // The browser closes (and with it the event stream) before the server shuts down.
      Effect.scoped,
      Effect.provide(Server),
      Effect.provide(Layer.mergeAll(Core, FetchHttpClient.layer))
    ),
  60_000
)

it.live(
  "forcing a critical breaker open turns the Health pill unhealthy with the card, not at the next poll",
  () =>
    Effect.gen(function*() {
      const base = yield* HttpServer.addressFormattedWith((url) => Effect.succeed(url))
      const browser = yield* launch
      const page = yield* Effect.promise(() => browser.newPage())
      yield* Effect.promise(() => page.goto(`${base}/dashboard`))
      yield* connected(page)
      assert.strictEqual(yield* saysWithin(page, "#overall", "healthy", 10_000), "healthy")

      assert.strictEqual((yield* forceOpen(base, "payments")).status, 200)
      yield* cardSays(page, "payments", "Forced open")
      // /health answers 503 unhealthy now; the poll is a minute away.
      assert.strictEqual(yield* saysWithin(page, "#overall", "unhealthy", 5_000), "unhealthy")
    }).pipe(
      Effect.scoped,
      Effect.provide(Slow),
      Effect.provide(Layer.mergeAll(
        Layer.effectDiscard(CircuitBreaker.make({ name: "payments" })).pipe(
          Layer.provideMerge(CircuitBreakerRegistry.layer)
        ),
        FetchHttpClient.layer
      ))
    ),
  60_000
)

// Node's server, but its first request for the event stream is answered by `first` (recorded in `seen` as `label`),
// as by a server still starting, a proxy whose upstream restarts or a connection that died without a word; the
// requests after it (recorded as 200) reach the real route.
const firstStreamAnswered = (
  seen: Array<string>,
  label: string,
  first: (response: ServerResponse) => void
) =>
() => {
  const server = createServer()
  const emit = server.emit.bind(server)
  let answered = false
  server.emit = ((event: string, ...args: Array<unknown>) => {
    const [request, response] = args as [IncomingMessage, ServerResponse]
    if (event === "request" && request.url?.includes("/events")) {
      if (!answered) {
        answered = true
        seen.push(label)
        first(response)
        return true
      }
      seen.push("200")
    }
    return emit(event, ...args)
  }) as typeof server.emit
  return server
}

// The page opens `/dashboard` on a server whose first event stream `first` answers; it must end up following the
// stream (the card of a breaker forced open changes with the event: the page polls once a minute) within `within`.
const followsAfter = (label: string, first: (response: ServerResponse) => void, within: number) => {
  const seen: Array<string> = []
  return Effect.gen(function*() {
    const base = yield* HttpServer.addressFormattedWith((url) => Effect.succeed(url))
    const browser = yield* launch
    const page = yield* Effect.promise(() => browser.newPage())
    const problems: Array<string> = []
    page.on("pageerror", (error) => problems.push(`page error: ${error.message}`))
    yield* Effect.promise(() => page.goto(`${base}/dashboard`))
    // The page's second request for the stream, which the real route answers (polled: the server records it).
    yield* Effect.sleep("100 millis").pipe(Effect.repeat({ until: () => seen.length >= 2, times: within / 100 }))
    assert.deepStrictEqual(seen.slice(0, 2), [label, "200"], `the event stream's requests: ${seen.join(", ")}`)
    yield* connected(page)
    assert.strictEqual((yield* forceOpen(base, "payments")).status, 200)
    yield* timelineHas(page, "payments", "forced_open")
    yield* cardSays(page, "payments", "Forced open")
    assert.deepStrictEqual(problems, [])
  }).pipe(
    Effect.scoped,
    Effect.provide(
      HttpRouter.serve(
        ResilienceHttp.layer({ adminToken: Redacted.make(token), dashboard: { refreshInterval: "1 minute" } }),
        { disableLogger: true, disableListenLog: true }
      ).pipe(
        Layer.provideMerge(
          NodeHttpServer.layer(firstStreamAnswered(seen, label, first), { port: 0, host: "127.0.0.1" })
        )
      )
    ),
    Effect.provide(Layer.mergeAll(
      Layer.effectDiscard(CircuitBreaker.make({ name: "payments" })).pipe(
        Layer.provideMerge(CircuitBreakerRegistry.layer)
      ),
      FetchHttpClient.layer
    ))
  )
}

it.live(
  "an event stream answered with a 503, which browsers do not retry, is opened again by the page, which follows it",
  () =>
    followsAfter(
      "503",
      (response) => response.writeHead(503, { "retry-after": "1", "content-type": "text/plain" }).end("starting"),
      20_000
    ),
  60_000
)

it.live(
  "an event stream that is never answered (a stalled server or proxy) is given up and opened again by the page",
  // Never answered: the browser's EventSource waits in CONNECTING for as long as the socket lives.
  () => followsAfter("unanswered", () => undefined, 30_000),
  60_000
)

it.live(
  "an open event stream that falls silent (a connection dead without a reset) is given up after two missed heartbeats",
  () =>
    followsAfter(
      "silent",
      // What the server sends as a stream opens, heartbeats every second announced, then nothing: the page hears
      // nothing more, as over a connection whose far end went away without a reset.
      (response) => {
        response.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" })
        response.write("retry: 3000\n: connected\n\nevent: heartbeat\ndata: {\"interval_ms\":1000}\n\n")
      },
      30_000
    ),
  60_000
)
