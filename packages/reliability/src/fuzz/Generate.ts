/**
 * The fuzzer's cases: every endpoint of the agent service, its method, path, headers and body, then mutated (path
 * encodings, case, dot segments, unicode, length; other methods; Authorization and X-Admin-Token variants that are
 * never the right credential; malformed, huge and wrongly typed bodies).
 */
import type { RawRequest } from "./Client.ts"
import type { Prng } from "./Prng.ts"

export interface Case extends RawRequest {
  /** The endpoint it was generated from, for the counts. */
  readonly endpoint: string
  /** An admin or chaos route: a 2xx without the right token is a bypass. */
  readonly guarded: boolean
}

export interface Universe {
  readonly token: string
  readonly breakers: ReadonlyArray<string>
  readonly services: ReadonlyArray<string>
}

const controls = ["reset", "force-open", "force-close", "disable"]

const hex = (prng: Prng, n: number) => Array.from({ length: n }, () => prng.int(0, 15).toString(16)).join("")

const junkStrings = (prng: Prng): ReadonlyArray<string> => [
  "",
  "%20",
  "..",
  "%",
  "%00",
  "%2F",
  "%2e%2e",
  "%C0%AF",
  "%FF%FE",
  "%ED%A0%80", // a lone surrogate, UTF-8 encoded (invalid UTF-8)
  encodeURIComponent("ünïcødé-名前-🙂"),
  encodeURIComponent("\u202e\u0000\u200b"),
  "a".repeat(prng.int(200, 3000)),
  "x".repeat(prng.int(20_000, 70_000)),
  "__proto__",
  "constructor",
  "%3Cscript%3E",
  "1e309",
  "-1",
  hex(prng, 12)
]

const get = (endpoint: string, path: string, guarded = false): Case => ({
  endpoint,
  guarded,
  method: "GET",
  path,
  headers: {}
})

const post = (endpoint: string, path: string, guarded: boolean): Case => ({
  endpoint,
  guarded,
  method: "POST",
  path,
  headers: { "content-type": "application/json" }
})

const base = (prng: Prng, u: Universe): Case => {
  const breaker = prng.chance(0.8) ? prng.pick(u.breakers) : prng.pick(junkStrings(prng))
  const service = prng.chance(0.7) ? prng.pick(u.services) : prng.pick(junkStrings(prng))
  const key = prng.chance(0.5) ? "" : `?key=${prng.pick(junkStrings(prng))}`
  return prng.pick<() => Case>([
    () => get("GET /search", `/search?q=${prng.pick(["weather", ...junkStrings(prng)])}`),
    () => get("GET /search", "/search"),
    () => post("POST /chat", "/chat", false),
    () => get("GET /chaos", "/chaos", true),
    () => post("POST /chaos/:service", `/chaos/${service}`, true),
    () => get("GET /telegram/outbox", "/telegram/outbox"),
    () => get("GET /health", "/health"),
    () => get("GET /health/live", "/health/live"),
    () => get("GET /health/ready", "/health/ready"),
    () => get("GET /api/v1/resilience/circuit-breakers", "/api/v1/resilience/circuit-breakers"),
    () => get("GET /api/v1/resilience/circuit-breakers/:name", `/api/v1/resilience/circuit-breakers/${breaker}`),
    () => get("GET /api/v1/resilience/health", "/api/v1/resilience/health"),
    () => get("GET /api/v1/resilience/summary", "/api/v1/resilience/summary"),
    () => get("GET /api/v1/resilience/fleet", "/api/v1/resilience/fleet"),
    () => get("GET /api/v1/resilience/openapi.json", "/api/v1/resilience/openapi.json"),
    () =>
      post(
        "POST /api/v1/resilience/circuit-breakers/:name/:control",
        `/api/v1/resilience/circuit-breakers/${breaker}/${prng.pick(controls)}${key}`,
        true
      ),
    () =>
      post(
        "POST /api/v1/resilience/circuit-breakers/:name/:control",
        `/api/v1/resilience/circuit-breakers/${breaker}/${prng.pick(controls)}${key}`,
        true
      ),
    () => get("GET /metrics", "/metrics"),
    () => get("GET /dashboard", "/dashboard"),
    () => get("GET /api/v1/resilience/events", "/api/v1/resilience/events"),
    () => get("GET /unknown", `/${prng.pick(junkStrings(prng))}`)
  ])()
}

const mutatePath = (prng: Prng, path: string): string => {
  const [pathname, query] = path.split("?", 2) as [string, string | undefined]
  const segments = pathname.split("/")
  const at = prng.int(1, Math.max(1, segments.length - 1))
  const mutated = prng.pick<() => string>([
    () => pathname,
    () => pathname,
    () => pathname,
    () => pathname.toUpperCase(),
    () => segments.map((s, i) => (i === at ? s.toUpperCase() : s)).join("/"),
    () => segments.join("%2F"),
    () => segments.join("%2f"),
    () => pathname.replace("/", "//"),
    () => `${pathname}/`,
    () => `${pathname}/.`,
    () => segments.map((s, i) => (i === at ? `${s}/..%2F${s}` : s)).join("/"),
    () => segments.map((s, i) => (i === at ? `./${s}` : s)).join("/"),
    () => segments.map((s, i) => (i === at ? `x/../${s}` : s)).join("/"),
    () => segments.map((s, i) => (i === at ? `%2e%2e/${s}` : s)).join("/"),
    () =>
      segments.map((
        s,
        i
      ) => (i === at ? encodeURIComponent(s).replace(/[a-z]/g, (c) => `%${c.charCodeAt(0).toString(16)}`) : s)).join(
        "/"
      ),
    () => `${pathname}${encodeURIComponent("ü🙂")}`,
    () => `${pathname}%00`,
    () => `${pathname};jsessionid=1`,
    () => `${pathname}/${"a".repeat(prng.int(1000, 9000))}`,
    () => `/${"x/".repeat(prng.int(100, 2000))}${pathname}`,
    () => `/%2e%2e/%2e%2e${pathname}`,
    () => `http://127.0.0.1${pathname}`
  ])()
  const q = prng.chance(0.15)
    ? `${query ?? ""}&${prng.pick(["q", "key", "__proto__[x]", "q[]"])}=${prng.pick(junkStrings(prng))}`
    : query
  return q === undefined ? mutated : `${mutated}?${q}`
}

const credentials = (prng: Prng, token: string): Record<string, string | ReadonlyArray<string>> => {
  // Never the right credential (the exact token, under any case of "Bearer"): a 2xx on a guarded route is a bypass.
  const wrong = [
    `${token}x`,
    `x${token}`,
    token.slice(0, -1),
    token.toUpperCase(),
    token.slice(1),
    hex(prng, token.length),
    `${token}${token}`,
    `${token}%00`,
    ""
  ]
  const w = () => prng.pick(wrong)
  return prng.pick<() => Record<string, string | ReadonlyArray<string>>>([
    () => ({}),
    () => ({}),
    () => ({ authorization: `Bearer ${w()}` }),
    () => ({ authorization: `bearer ${w()}` }),
    () => ({ authorization: `BEARER ${w()}` }),
    () => ({ authorization: `Bearer` }),
    () => ({ authorization: `Bearer  ${w()}` }),
    () => ({ authorization: token }),
    () => ({ authorization: `Basic ${Buffer.from(`admin:${token}`).toString("base64")}` }),
    () => ({ authorization: `Token ${token}` }),
    () => ({ authorization: `Bearer ${token} ${token}` }),
    () => ({ authorization: `Bearer ${Buffer.from(token).toString("base64")}` }),
    () => ({ authorization: [`Bearer ${w()}`, `Bearer ${w()}`] }),
    () => ({ "x-admin-token": w() }),
    () => ({ "x-admin-token": `Bearer ${token}` }),
    () => ({ "x-admin-token": [w(), w()] }),
    () => ({ authorization: `Bearer ${w()}`, "x-admin-token": w() }),
    () => ({ authorization: `Bearer ${"A".repeat(prng.int(5000, 12_000))}` })
  ])()
}

const jsonBodies = (prng: Prng, endpoint: string): ReadonlyArray<() => string> => [
  () => JSON.stringify({ user_id: `fuzz-${hex(prng, 6)}`, message: "hello" }),
  () => JSON.stringify({ user_id: 5, message: "hi" }),
  () => JSON.stringify({ user_id: null, message: ["a"] }),
  () => JSON.stringify({ user_id: "u", message: "m".repeat(prng.int(10_001, 20_000)) }),
  () => JSON.stringify({ user_id: "u".repeat(201), message: "hi" }),
  () => JSON.stringify({ user_id: "\ud800", message: "\udfff" }),
  () =>
    JSON.stringify({
      failure_rate: prng.pick([0.5, 1, 0, -1, 2, "0.5", null]),
      latency_ms: prng.pick([0, 10, -5, 1.5, 1e9, "10"])
    }),
  () => JSON.stringify({ failure_rate: 0.2, extra: true }),
  () => `{"failure_rate": 1e309}`,
  () => `{"__proto__": {"admin": true}, "constructor": {"prototype": {"x": 1}}}`,
  () => "{",
  () => `{"user_id": "u", "message": `,
  () => `{"a": 1,}`,
  () => "null",
  () => "[]",
  () => "42",
  () => `"${"s".repeat(100)}"`,
  () => "[".repeat(prng.int(1000, 20_000)) + "]".repeat(prng.int(0, 20_000)),
  () => "\u0000\u0001\u0002",
  () => Buffer.from([0xff, 0xfe, 0x00, 0x7b]).toString("latin1"),
  () =>
    endpoint.startsWith("POST /chat") ? JSON.stringify({ user_id: "u", message: "x".repeat(prng.int(1, 9999)) }) : "{}",
  () => JSON.stringify({ message: "y".repeat(prng.int(1_000_000, 3_000_000)) })
]

const contentTypes = [
  "application/json",
  "application/json; charset=utf-8",
  "application/json; charset=utf-16",
  "text/plain",
  "application/x-www-form-urlencoded",
  "multipart/form-data; boundary=---x",
  "multipart/form-data",
  "application/octet-stream",
  "*/*",
  ""
]

export const generate = (prng: Prng, u: Universe): Case => {
  const c = base(prng, u)
  const method = prng.chance(0.8)
    ? c.method
    : prng.pick(["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "PURGE", "FOO", "M-SEARCH"])
  const path = prng.chance(0.5) ? c.path : mutatePath(prng, c.path)
  const headers: Record<string, string | ReadonlyArray<string>> = { ...credentials(prng, u.token) }
  if (prng.chance(0.3)) {
    headers["accept"] = prng.pick(["text/event-stream", "application/json", "text/html", "*/*", "x/y;q=abc"])
  }
  if (prng.chance(0.2) && c.endpoint.includes("events")) {
    headers["last-event-id"] = prng.pick(["0", "-1", "999999999999", "abc", "1".repeat(5000)])
  }
  if (prng.chance(0.05)) headers["x-forwarded-for"] = prng.pick(["::1", "evil", "1.2.3.4, 5.6.7.8"])
  const wantsBody = method !== "GET" && method !== "HEAD" ? prng.chance(0.85) : prng.chance(0.05)
  const body = wantsBody ? prng.pick(jsonBodies(prng, c.endpoint))() : undefined
  if (body !== undefined) {
    const type = prng.chance(0.7) ? "application/json" : prng.pick(contentTypes)
    if (type !== "") headers["content-type"] = type
  }
  return { ...c, method, path, headers, body }
}
