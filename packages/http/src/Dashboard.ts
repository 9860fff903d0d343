/**
 * The live dashboard: `GET /dashboard`, one self-contained HTML page (uPlot is vendored into it, no CDN, works
 * offline) that loads its initial state from the JSON API and follows the Server-Sent Events stream.
 *
 * **Details**
 *
 * - Each breaker gets a card with its state in words, a shape and a colour, its failure rate with a sparkline of
 *   the last minutes (sampled by polling the API every `refreshInterval`), time in state and retry-after.
 * - A timeline of transitions with their reasons, the alerts, the health table, the degradation level, and the
 *   fleet view when `GET /api/v1/resilience/fleet` answers.
 * - A transition or an admin action on the event stream re-reads the breakers, the health (the header's pill and the
 *   table) and the fleet at once; `refreshInterval` only samples what moves between events (rates, response times).
 * - Admin buttons (reset, force open, force close, disable) ask for the admin token once per browser session
 *   (`sessionStorage`) and send it as `Authorization: Bearer`; a rejected token is asked for again.
 * - The connection pill says "Live" while the event stream is open and "Reconnecting…" while it is not. The page
 *   reconnects by itself, also when a reconnection is answered with an error (a restarting server's 503, a proxy's
 *   502), which browsers do not retry: it opens a new stream after a backoff doubling from 1 s to 30 s (jittered
 *   down to half), resuming after the last event it saw (`?last_event_id=`), and reloads the breakers, health and
 *   fleet each time it is back. It gives up the same way on a stream that hangs: not open 15 s after it started
 *   connecting (a stalled server or proxy), or open and silent for two of the heartbeats the stream announces and
 *   5 s more (a connection that died without a reset), where the browser would wait for ever.
 *
 * **Gotchas**
 *
 * - The page only reads the API and the event stream; it adds nothing to the call path. Mount it next to the
 *   API routes (the package's composition layer does), or point `api` and `health` at where they are served.
 * - The layer reads uPlot's bundle from `node_modules` once, when it is built, so it needs `FileSystem` and `Path`
 *   (`NodeHttpServer.layer` provides both).
 *
 * @since 0.2.0
 */
import { decode, DurationInput, millisOf, type PolicyConfigError } from "@effect-resilience/core/PolicyConfig"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as FileSystem from "effect/FileSystem"
import * as HttpRouter from "effect/http/HttpRouter"
import * as HttpServerResponse from "effect/http/HttpServerResponse"
import type * as Layer from "effect/Layer"
import * as Path from "effect/Path"
import type * as PlatformError from "effect/PlatformError"
import * as Schema from "effect/Schema"
import { createHash } from "node:crypto"
import * as page from "./internal/dashboardPage.ts"

/**
 * Options of the dashboard; every field has a default.
 *
 * @example
 * ```ts
 * import type { Dashboard } from "@effect-resilience/http"
 *
 * const options: Dashboard.Options = { path: "/ops", title: "checkout: resilience", refreshInterval: "2 seconds" }
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export interface Options {
  /** Where the page is served. Default `/dashboard`. */
  readonly path?: `/${string}` | undefined
  /** The page's title and heading. Default `Resilience`. */
  readonly title?: string | undefined
  /** Where the JSON API and its `/events` stream are served. Default `/api/v1/resilience`. */
  readonly api?: `/${string}` | undefined
  /** Where the health report is served. Default `/health`. */
  readonly health?: `/${string}` | undefined
  /** How often the page samples the failure rates for the sparklines. Default 5 seconds. */
  readonly refreshInterval?: Duration.Input | undefined
  /** How much history the sparklines keep. Default 5 minutes. */
  readonly sparklineWindow?: Duration.Input | undefined
}

const UrlPath = Schema.String.check(Schema.isPattern(/^\/[A-Za-z0-9\-._~/]*$/))

const OptionsSchema = Schema.Struct({
  path: UrlPath,
  title: Schema.NonEmptyString,
  api: UrlPath,
  health: UrlPath,
  refreshInterval: DurationInput({ positive: true }),
  sparklineWindow: DurationInput({ positive: true })
})

const defaults = {
  path: "/dashboard",
  title: "Resilience",
  api: "/api/v1/resilience",
  health: "/health",
  refreshInterval: Duration.seconds(5),
  sparklineWindow: Duration.minutes(5)
} as const

// `<` is escaped so that no value (a title, say) can close the script element that carries the config.
const jsonForScript = (value: unknown): string => JSON.stringify(value).replace(/</g, "\\u003c")

const escapeHtml = (text: string): string => text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)

const sha256 = (text: string): string => `'sha256-${createHash("sha256").update(text, "utf8").digest("base64")}'`

const readVendored = Effect.fnUntraced(function*(specifier: string) {
  const fs = yield* FileSystem.FileSystem
  const path = yield* Path.Path
  // `import.meta.resolve` always gives a file URL here, so a BadArgument would be a defect.
  const file = yield* Effect.orDie(path.fromFileUrl(new URL(import.meta.resolve(specifier))))
  return yield* fs.readFileString(file)
})

/**
 * Renders the page once: the HTML with uPlot's bundle and stylesheet inlined, and the headers to serve it with
 * (a Content-Security-Policy that allows exactly the page's own scripts, by hash, and connections to its origin).
 *
 * @example
 * ```ts
 * import { Dashboard } from "@effect-resilience/http"
 * import { NodeServices } from "@effect/platform-node"
 * import { Effect } from "effect"
 *
 * const html = Dashboard.render({ title: "checkout" }).pipe(
 *   Effect.map((rendered) => rendered.html),
 *   Effect.provide(NodeServices.layer)
 * )
 * ```
 *
 * @since 0.2.0
 * @category constructors
 */
export const render = Effect.fnUntraced(function*(options: Options = {}) {
  const decoded = yield* decode(OptionsSchema, { ...defaults, ...definedOnly(options) }, {
    kind: "dashboard",
    policy: options.path ?? defaults.path
  })
  const uplotJs = yield* readVendored("uplot/dist/uPlot.iife.min.js")
  const uplotCss = yield* readVendored("uplot/dist/uPlot.min.css")
  const config: page.PageConfig = {
    title: decoded.title,
    api: decoded.api.replace(/\/+$/, ""),
    health: decoded.health,
    refreshMillis: millisOf(decoded.refreshInterval as Duration.Input),
    sparklineMillis: millisOf(decoded.sparklineWindow as Duration.Input)
  }
  const configJson = jsonForScript(config)
  const html = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>${escapeHtml(decoded.title)}</title>
<style>${uplotCss}</style>
<style>${page.style}</style>
</head>
<body>${page.body}
<script type="application/json" id="dashboard-config">${configJson}</script>
<script>${uplotJs}</script>
<script>${page.script}</script>
</body>
</html>
`
  const csp = [
    "default-src 'none'",
    `script-src ${sha256(uplotJs)} ${sha256(page.script)}`,
    // uPlot positions its canvas with inline style attributes.
    "style-src 'unsafe-inline'",
    "connect-src 'self'",
    "img-src 'self' data:",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'"
  ].join("; ")
  return {
    path: decoded.path as `/${string}`,
    html,
    headers: {
      "content-security-policy": csp,
      "cache-control": "no-store",
      "x-content-type-options": "nosniff",
      "referrer-policy": "no-referrer"
    }
  } as const
})

const definedOnly = (options: Options): Partial<Options> =>
  Object.fromEntries(Object.entries(options).filter(([, value]) => value !== undefined))

/**
 * Adds `GET /dashboard` (or `options.path`) to the `HttpRouter`. The page is rendered once, when the layer is
 * built; a bad option fails the layer with a `PolicyConfigError`.
 *
 * @example
 * ```ts
 * import { Dashboard } from "@effect-resilience/http"
 * import { NodeHttpServer } from "@effect/platform-node"
 * import { HttpRouter } from "effect/http"
 * import { Layer } from "effect"
 * import { createServer } from "node:http"
 *
 * const server = HttpRouter.serve(Dashboard.layer({ title: "checkout" })).pipe(
 *   Layer.provide(NodeHttpServer.layer(createServer, { port: 8080 }))
 * )
 * ```
 *
 * @since 0.2.0
 * @category layers
 */
export const layer = (
  options: Options = {}
): Layer.Layer<
  never,
  PolicyConfigError | PlatformError.PlatformError,
  HttpRouter.HttpRouter | FileSystem.FileSystem | Path.Path
> =>
  HttpRouter.use(Effect.fnUntraced(function*(router) {
    const rendered = yield* render(options)
    yield* router.add(
      "GET",
      rendered.path,
      HttpServerResponse.html(rendered.html).pipe(HttpServerResponse.setHeaders(rendered.headers))
    )
  }))
