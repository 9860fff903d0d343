/**
 * The API docs page: Effect's bundled Scalar script inlined, as `HttpApiScalar.layer` serves it, without importing the
 * bundle as a module.
 *
 * Why: with `HttpApiScalar.layer`, which imports the 5 MB bundle as a module while the layer builds, every run of the
 * agent service garbage-collected badly: each scavenge took 10-15 ms instead of 0.5 ms and promoted about 10 MB, and
 * the service lost about a third of its throughput, on every route. Holding a 5 MB `Buffer` did the same; a heap string
 * of that size did not. So the same file is read here as text and its string literal decoded into an ordinary heap
 * string, at the first request of the page.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import * as FileSystem from "effect/FileSystem"
import type * as HttpApi from "effect/http-api/HttpApi"
import type * as HttpApiGroup from "effect/http-api/HttpApiGroup"
import * as OpenApi from "effect/http-api/OpenApi"
import * as Path from "effect/Path"

/** Where `HttpApiScalar.layer` imports the bundle from: beside the module, as the installed `effect` ships it. */
export const bundleUrl = (): URL =>
  new URL("./internal/httpApiScalar.js", import.meta.resolve("effect/http-api/HttpApiScalar"))

const declaration = "export const javascript="

// JSON has no \x, \v, \0, \' or line continuations; everything else in a JavaScript string literal reads the same.
// Matched left to right as backslash pairs, so an escaped backslash is never read as the start of another escape.
const toJson = (literal: string): string =>
  literal.replace(/\\(?:x([0-9a-fA-F]{2})|(\r\n|[\s\S]))/g, (_, hex: string | undefined, c: string | undefined) => {
    if (hex !== undefined) return `\\u00${hex}`
    switch (c) {
      case "\"":
      case "\\":
      case "/":
      case "b":
      case "f":
      case "n":
      case "r":
      case "t":
      case "u":
        return `\\${c}`
      case "v":
        return "\\u000b"
      case "0":
        return "\\u0000"
      case "\n":
      case "\r\n":
      case "\r":
      case "\u2028":
      case "\u2029":
        return ""
      default:
        // An identity escape (`\a` is "a").
        return c!
    }
  })

/**
 * The script from the bundle module's source text (`export const javascript="..."`), or a message saying what was
 * not as expected.
 */
export const decodeBundle = (source: string): string | { readonly error: string } => {
  const at = source.indexOf(declaration)
  if (at < 0) return { error: `no "${declaration}" in the bundle` }
  const start = at + declaration.length
  if (source[start] !== "\"") return { error: "the bundle's script is not a double-quoted string" }
  // The literal ends at the first double quote not escaped, that is, after an even run of backslashes.
  let end = start + 1
  for (;;) {
    end = source.indexOf("\"", end)
    if (end < 0) return { error: "the bundle's string does not end" }
    let backslashes = 0
    while (source[end - 1 - backslashes] === "\\") backslashes++
    if (backslashes % 2 === 0) break
    end++
  }
  try {
    return JSON.parse(toJson(source.slice(start, end + 1))) as string
  } catch (cause) {
    return { error: `the bundle's string does not decode: ${String(cause)}` }
  }
}

const escapeJson = (value: unknown): string =>
  JSON.stringify(value).replace(/</g, "\\u003c").replace(
    /[\u2028\u2029]/g,
    (c) => c === "\u2028" ? "\\u2028" : "\\u2029"
  )

const escapeHtml = (text: string): string => text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")

const escapeAttribute = (text: string): string => escapeHtml(text).replace(/"/g, "&quot;").replace(/'/g, "&#39;")

/** The page, as `HttpApiScalar.layer` writes it for the same API and Scalar settings. */
export const html = <Id extends string, Groups extends HttpApiGroup.Constraint>(
  api: HttpApi.HttpApi<Id, Groups>,
  script: string,
  scalar: Record<string, unknown>
): string => {
  const spec = OpenApi.fromApi(api)
  // Scalar's bundled copy has no page-origin fallback for a document without servers.
  const content = spec.servers?.length ? spec : { ...spec, servers: [{ url: "/" }] }
  const description = spec.info.description
    ? `<meta name="description" content="${escapeAttribute(spec.info.description)}"/>`
    : ""
  return `<!doctype html>
<html>
  <head>
    <meta charset="utf-8" />
    <title>${escapeHtml(spec.info.title)}</title>
    ${description}
    <meta name="viewport" content="width=device-width, initial-scale=1" />
  </head>
  <body>
    <div id="api-reference-container"></div>
    <script>${script}</script>
    <script>
      window.Scalar.createApiReference(document.getElementById('api-reference-container'), {
        ...${escapeJson({ _integration: "html", ...scalar })},
        content: ${escapeJson(content)}
      })
    </script>
  </body>
</html>`
}

/** Reads and decodes the bundle of the installed `effect`. */
export const readScript: Effect.Effect<string, Error, FileSystem.FileSystem | Path.Path> = Effect.gen(function*() {
  const fs = yield* FileSystem.FileSystem
  const path = yield* Path.Path
  const file = yield* path.fromFileUrl(bundleUrl())
  const decoded = decodeBundle(yield* fs.readFileString(file))
  if (typeof decoded !== "string") return yield* Effect.fail(new Error(`${file}: ${decoded.error}`))
  return decoded
}).pipe(Effect.mapError((error) => error instanceof Error ? error : new Error(String(error))))
