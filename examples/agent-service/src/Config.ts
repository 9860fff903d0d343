/**
 * The agent service's configuration, read from the environment and decoded with Schema at startup.
 *
 * **Details**
 *
 * One Schema, `Environment`, holds every variable (its type, its checks, its default) and, as struct checks, the rules
 * between variables. A failure becomes one line that starts with the variable's name, then what it expects, then what
 * it got: `PORT: Expected a port number (1-65535), got "x"`. The admin token, `REDIS_PASSWORD` and `REDIS_URL` (which
 * may carry a password) are never quoted.
 */
import { type BreakerFleet, PolicyConfig } from "@effect-resilience/core"
import {
  Config,
  Data,
  Duration,
  Effect,
  Option,
  Random,
  Redacted,
  Runtime,
  Schema,
  SchemaIssue,
  SchemaTransformation
} from "effect"
import * as fs from "node:fs"
import { dirname, join } from "node:path"

/**
 * The service's settings, decoded from its environment.
 *
 * @since 0.1.0
 * @category models
 */
export interface AppConfig {
  readonly port: number
  /** The address it listens on: `HOST`, loopback unless set (the chaos and admin controls stay on this machine). */
  readonly host: string
  readonly dataDir: string
  readonly redisUrl: Option.Option<string>
  /** The Redis password (the master's, with Sentinel) when it is not in `REDIS_URL`: `REDIS_PASSWORD`. */
  readonly redisPassword: Option.Option<Redacted.Redacted<string>>
  /** Redis behind Sentinel (`REDIS_SENTINELS`, `REDIS_SENTINEL_MASTER`); never set together with `redisUrl`. */
  readonly redisSentinel: Option.Option<SentinelConfig>
  readonly adminToken: Redacted.Redacted<string>
  /** Whether the token was generated (and is printed once) rather than given. */
  readonly generatedToken: boolean
  readonly openDuration: Duration.Duration
  readonly shutdownTimeout: Duration.Duration
  /** How the breakers count calls across the fleet (with Redis): `FLEET_COUNTING`, `FLEET_QUORUM`. */
  readonly fleet: BreakerFleet.Options
  /** Whether /metrics counts live fibers (`child_fibers_active`), at about 1 µs per request: `FIBER_METRICS`. */
  readonly fiberMetrics: boolean
}

/**
 * Where the sentinels are and which master they watch.
 *
 * @since 0.1.0
 * @category models
 */
export interface SentinelConfig {
  readonly masterName: string
  readonly sentinels: ReadonlyArray<{ readonly host: string; readonly port: number }>
}

/**
 * A bad environment variable; `message` starts with its name, e.g. `PORT: Expected a port number (1-65535), got "x"`.
 *
 * @since 0.1.0
 * @category errors
 */
export class ConfigurationError extends Data.TaggedError("ConfigurationError")<{
  /** The variable at fault (empty when the environment itself could not be read). */
  readonly variable: string
  readonly message: string
}> {
  // `main.ts` prints it as one line: the runtime need not log it again, with a stack.
  override readonly [Runtime.errorReported] = false
}

// The forms Duration reads: a limit of "1 year" read as one, but `year` is no unit.
const durationUnits = `as "<amount> <unit>" (nanos, micros, millis, seconds, minutes, hours, days or weeks)`

// What each variable expects, in the words of its error message (the README's "Configuration" table, as rules).
const expected = {
  PORT: "a port number (1-65535)",
  HOST: "an address to listen on, e.g. 127.0.0.1 or 0.0.0.0",
  DATA_DIR: "a non-empty path",
  REDIS_URL: "a redis:// or rediss:// URL (redis://[user:password@]host[:port][/db], port 1-65535)",
  REDIS_PASSWORD: "a non-empty password",
  REDIS_SENTINELS: "a comma-separated list of host:port (port 1-65535)",
  REDIS_SENTINEL_MASTER: "a non-empty master name",
  RESILIENCE_ADMIN_TOKEN: "at least 8 characters, visible ASCII only (no whitespace)",
  BREAKER_OPEN_DURATION: `a positive duration of at most 365 days, ${durationUnits}, e.g. "2 seconds"`,
  SHUTDOWN_TIMEOUT: `a duration from 0 (no wait) to 365 days, ${durationUnits}, e.g. "10 seconds"`,
  FLEET_COUNTING: "\"local\", \"global\" or \"quorum\"",
  FLEET_QUORUM: "a positive number of instances",
  FIBER_METRICS: "true, false, 1 or 0"
} as const

type Variable = keyof typeof expected

const isVariable = (name: string): name is Variable => Object.hasOwn(expected, name)

// Never quoted in a message: the token, the Redis password, and a URL that may carry one.
const secret: ReadonlySet<Variable> = new Set(["RESILIENCE_ADMIN_TOKEN", "REDIS_URL", "REDIS_PASSWORD"])

// Unset reads as `undefined` as well as absent: with PORT_RANGE in the environment, the provider reports PORT as a
// record without a value, so the struct sees the key. Hence `withDecodingDefaultType` and `optional`, not their `Key`s.
const withDefault = <S extends Schema.Top & Schema.WithoutConstructorDefault>(value: S["Type"]) => (self: S) =>
  self.pipe(Schema.withDecodingDefaultType(Effect.succeed(value)))

// Config.Port's schema, so PORT reads as it did.
const Port = Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 65535 }))

// The duration limits of core's options (`PolicyConfig.DurationInput`); the message is `expected`'s, which quotes the
// value as written rather than in milliseconds.
const withinCoreLimits = (options: { readonly positive: boolean }) => (duration: Duration.Duration) =>
  PolicyConfig.durationIssue(duration, options) === undefined

// A duration, or a bare `0` (the README's "no wait"): zero needs no unit, any other number does.
const ZeroOrDuration = Schema.String.pipe(Schema.decodeTo(
  Schema.DurationFromString,
  SchemaTransformation.transform({ decode: (s) => s.trim() === "0" ? "0 millis" : s, encode: (s) => s })
))

// What is wrong with a Redis URL, as RedisStore and the Redis client read it (they would refuse it later, with a
// stack naming their own option); `undefined` when nothing is. The URL may carry a password: never quoted.
const redisUrlIssue = (url: string): string | undefined => {
  const parsed = URL.canParse(url) ? new URL(url) : undefined
  if (parsed === undefined) return "one that does not parse (a port over 65535, a space?)"
  if (parsed.protocol !== "redis:" && parsed.protocol !== "rediss:") {
    return `a URL whose scheme is ${JSON.stringify(parsed.protocol)}`
  }
  if (parsed.hostname === "") return "one without a host"
  if (parsed.port === "0") return "port 0"
  // The path rule is RedisStore's (node-redis SELECTs it): empty, `/`, or `/<non-negative integer>`.
  if (!/^\/?$|^\/\d+$/.test(parsed.pathname)) return "a path that is not a database number"
  // node-redis decodes the credentials with `decodeURIComponent`, which throws on a malformed escape.
  return Option.isNone(percentDecoded(parsed.username)) || Option.isNone(percentDecoded(parsed.password))
    ? "a user name or password with a malformed % escape (write % as %25)"
    : undefined
}

const percentDecoded = Option.liftThrowable(decodeURIComponent)

// `host:port`, or `[v6-address]:port`.
const sentinelAddress = /^(?:\[([^\]\s]+)\]|([^:\s[\]]+)):(\d{1,5})$/

// One pass over the list, so the message can quote the first bad entry rather than the whole value.
const Sentinels = Schema.String.pipe(Schema.decodeTo(
  Schema.Array(Schema.Struct({ host: Schema.String, port: Port })),
  SchemaTransformation.transformEffect<SentinelConfig["sentinels"], string>({
    decode: (list) => {
      const sentinels: Array<SentinelConfig["sentinels"][number]> = []
      for (const entry of list.split(",").map((s) => s.trim())) {
        const match = sentinelAddress.exec(entry)
        const port = Number(match?.[3])
        if (match === null || port < 1 || port > 65535) {
          const message = `Expected ${expected.REDIS_SENTINELS}, got ${JSON.stringify(entry)}`
          return Effect.fail(new SchemaIssue.InvalidValue({ message }))
        }
        sentinels.push({ host: match[1] ?? match[2], port })
      }
      return Effect.succeed(sentinels)
    },
    encode: (sentinels) =>
      Effect.succeed(
        sentinels.map(({ host, port }) => host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`).join(",")
      )
  })
))

// `true`/`false`, or `1`/`0`; not Config.Boolean's `yes`/`on`/`y`, which the README does not promise.
const Flag = Schema.Literals(["true", "false", "1", "0"]).pipe(Schema.decodeTo(
  Schema.Boolean,
  SchemaTransformation.transform({ decode: (s) => s === "true" || s === "1", encode: (b) => b ? "true" : "false" })
))

const Variables = Schema.Struct({
  PORT: Port.pipe(withDefault(3000)),
  HOST: Schema.Trim.check(Schema.isNonEmpty(), Schema.isPattern(/^[^\s/]+$/)).pipe(withDefault("127.0.0.1")),
  DATA_DIR: Schema.String.check(Schema.makeFilter((dir) => dir.trim() !== "")).pipe(withDefault(".data")),
  REDIS_URL: Schema.optional(Schema.String.check(Schema.makeFilter((url) => {
    const issue = redisUrlIssue(url)
    return issue === undefined ? undefined : `Expected ${expected.REDIS_URL}, got ${issue}`
  }))),
  REDIS_PASSWORD: Schema.optional(Schema.RedactedFromValue(Schema.String.check(Schema.isNonEmpty()))),
  REDIS_SENTINELS: Schema.optional(Sentinels),
  // Defaults to "mymaster" only with REDIS_SENTINELS (below): set alone, it is a mistake worth reporting.
  REDIS_SENTINEL_MASTER: Schema.optional(Schema.Trim.check(Schema.isNonEmpty())),
  // An HTTP header carries visible ASCII: a token with whitespace (a secret file's trailing newline) or any other
  // character (Node reads header bytes as Latin-1) could never be presented, every admin request would be a 401.
  RESILIENCE_ADMIN_TOKEN: Schema.optional(
    Schema.RedactedFromValue(Schema.String.check(Schema.isMinLength(8), Schema.isPattern(/^[\x21-\x7e]*$/)))
  ),
  // Short enough that a recovered upstream serves traffic again within 5 seconds (the seeds' recovery target). Core's
  // limits (finite, at most 1 year), so that the breakers do not refuse it later with a stack naming their option.
  BREAKER_OPEN_DURATION: Schema.DurationFromString.check(Schema.makeFilter(withinCoreLimits({ positive: true }))).pipe(
    withDefault(Duration.seconds(2))
  ),
  // 0 is a choice: shutdown interrupts the requests in flight at once. Negative or infinite is a mistake.
  SHUTDOWN_TIMEOUT: ZeroOrDuration.check(Schema.makeFilter(withinCoreLimits({ positive: false }))).pipe(
    withDefault(Duration.seconds(10))
  ),
  FLEET_COUNTING: Schema.Literals(["local", "global", "quorum"]).pipe(withDefault("local")),
  FLEET_QUORUM: Schema.optional(Schema.Int.check(Schema.isGreaterThan(0))),
  FIBER_METRICS: Flag.pipe(withDefault(false))
})

const at = (variable: Variable, issue: string) => ({ path: [variable], issue })

// The rules between variables, checked once each variable is valid on its own; the first broken one is reported.
const rules = (env: typeof Variables.Type) => {
  if (env.REDIS_SENTINEL_MASTER !== undefined && env.REDIS_SENTINELS === undefined) {
    return at("REDIS_SENTINEL_MASTER", "Expected REDIS_SENTINELS as well (it names their master)")
  }
  if (env.REDIS_PASSWORD !== undefined && env.REDIS_URL === undefined && env.REDIS_SENTINELS === undefined) {
    return at("REDIS_PASSWORD", "Expected REDIS_URL or REDIS_SENTINELS as well (the Redis it opens)")
  }
  if (env.REDIS_SENTINELS !== undefined && env.REDIS_URL !== undefined) {
    return at("REDIS_SENTINELS", "Expected either REDIS_URL or REDIS_SENTINELS, not both")
  }
  const counting = env.FLEET_COUNTING
  if (counting !== "local" && env.REDIS_URL === undefined && env.REDIS_SENTINELS === undefined) {
    return at("FLEET_COUNTING", `"${counting}" needs REDIS_URL or REDIS_SENTINELS (a fleet on Redis)`)
  }
  if (counting === "quorum" && env.FLEET_QUORUM === undefined) {
    return at("FLEET_QUORUM", "Expected the number of instances needed, with FLEET_COUNTING=quorum")
  }
  if (counting !== "quorum" && env.FLEET_QUORUM !== undefined) {
    return at("FLEET_QUORUM", `Expected FLEET_COUNTING=quorum with it, got "${counting}"`)
  }
  return undefined
}

const Environment = Variables.check(Schema.makeFilter(rules))

// The first failure in `issue`: the path to it, and the message a rule of this module wrote, if any (Schema's own
// messages name its internals, "a string representing a finite number", so they give way to `expected`).
const firstFailure = (
  issue: SchemaIssue.Issue,
  path: ReadonlyArray<PropertyKey> = []
): { readonly path: ReadonlyArray<PropertyKey>; readonly message: string | undefined } => {
  switch (issue._tag) {
    case "Pointer":
      return firstFailure(issue.issue, [...path, ...issue.path])
    case "Encoding":
      return firstFailure(issue.issue, path)
    case "Filter": {
      const message = issue.filter.annotations?.message
      return typeof message === "string" ? { path, message } : firstFailure(issue.issue, path)
    }
    case "Composite":
    case "AnyOf":
      return issue.issues.length > 0 ? firstFailure(issue.issues[0], path) : { path, message: undefined }
    case "InvalidValue": {
      const message = issue.annotations?.message
      return { path, message: typeof message === "string" ? message : undefined }
    }
    default:
      return { path, message: undefined }
  }
}

// Config.schema decodes without `reportInput`, so the issue holds no input: "got" is read again from the provider.
const got = (variable: Variable) =>
  secret.has(variable)
    ? Effect.succeed("")
    : Config.option(Config.String(variable)).pipe(
      Effect.map(Option.match({ onNone: () => "", onSome: (value) => `, got ${JSON.stringify(value)}` })),
      Effect.orElseSucceed(() => "")
    )

const toConfigurationError = Effect.fnUntraced(function*(error: Config.ConfigError) {
  if (error.cause._tag === "SourceError") {
    return yield* new ConfigurationError({ variable: "", message: `environment: ${error.cause.message}` })
  }
  const failure = firstFailure(error.cause.issue)
  const variable = String(failure.path[0] ?? "")
  if (!isVariable(variable)) {
    return yield* new ConfigurationError({ variable, message: error.message })
  }
  const message = failure.message ?? `Expected ${expected[variable]}${yield* got(variable)}`
  return yield* new ConfigurationError({ variable, message: `${variable}: ${message}` })
})

// An environment without any variable has no record to decode: it means every default.
const environment = Config.schema(Environment).pipe(Config.withDefault(Schema.decodeSync(Environment)({})))

const randomToken: Effect.Effect<string> = Effect.map(
  Effect.all(Array.from({ length: 4 }, () => Random.nextIntBetween(0, 0x100000000, { halfOpen: true }))),
  (words) => words.map((w) => w.toString(16).padStart(8, "0")).join("")
)

/**
 * Reads and checks the configuration from the current `ConfigProvider` (the process environment by default); an
 * admin token is generated when none is set.
 *
 * @example
 * ```ts
 * import { ConfigProvider, Effect } from "effect"
 * import * as AppConfig from "@effect-resilience/example-agent-service/config"
 *
 * const config = AppConfig.load.pipe(
 *   Effect.provideService(ConfigProvider.ConfigProvider, ConfigProvider.fromEnv({ env: { PORT: "8080" } }))
 * )
 * // Effect.runPromise(config) resolves to { port: 8080, dataDir: ".data", generatedToken: true, ... };
 * // with PORT: "x" it fails with ConfigurationError "PORT: Expected a port number (1-65535), got \"x\"".
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const load: Effect.Effect<AppConfig, ConfigurationError> = Effect.gen(function*() {
  const env = yield* Effect.catch(environment, toConfigurationError)
  const token = env.RESILIENCE_ADMIN_TOKEN
  return {
    port: env.PORT,
    host: env.HOST,
    dataDir: env.DATA_DIR,
    redisUrl: Option.fromUndefinedOr(env.REDIS_URL),
    redisPassword: Option.fromUndefinedOr(env.REDIS_PASSWORD),
    redisSentinel: env.REDIS_SENTINELS === undefined ? Option.none() : Option.some({
      masterName: env.REDIS_SENTINEL_MASTER ?? "mymaster",
      sentinels: env.REDIS_SENTINELS
    }),
    adminToken: token ?? Redacted.make(yield* randomToken),
    generatedToken: token === undefined,
    openDuration: env.BREAKER_OPEN_DURATION,
    shutdownTimeout: env.SHUTDOWN_TIMEOUT,
    fleet: env.FLEET_COUNTING === "quorum" && env.FLEET_QUORUM !== undefined
      ? { counting: "quorum", quorum: { instances: env.FLEET_QUORUM } }
      : { counting: env.FLEET_COUNTING },
    fiberMetrics: env.FIBER_METRICS
  }
})

const errorCode = (cause: unknown): string | undefined => (cause as { readonly code?: string } | undefined)?.code

// `fs.mkdirSync(path, { recursive: true })` loops for good, at full CPU, where mkdir fails with ENOENT under a parent
// that exists (anywhere in /proc): made a directory at a time from the top, such a failure is one.
const makeDirectory = (path: string): void => {
  if (fs.existsSync(path)) return
  const parent = dirname(path)
  if (parent !== path) makeDirectory(parent)
  fs.mkdirSync(path)
}

/**
 * Makes `DATA_DIR` if it is missing and checks that it is a directory the service can write in: a file there (or
 * under it), or a directory it cannot write in, stops the service at startup with one line, rather than with a
 * store's error and its stack once the stores open.
 *
 * @example
 * ```ts
 * import * as AppConfig from "./Config.ts"
 *
 * const ready = AppConfig.ensureDataDir(".data")
 * // with a file at .data it fails with ConfigurationError 'DATA_DIR: Expected a directory the service can write in
 * // (or a path where one can be made), got ".data" (ENOTDIR)'.
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const ensureDataDir = (path: string): Effect.Effect<void, ConfigurationError> =>
  Effect.try({
    try: () => {
      makeDirectory(path)
      if (!fs.statSync(path).isDirectory()) throw Object.assign(new Error("not a directory"), { code: "ENOTDIR" })
    },
    catch: (cause) => cause
  }).pipe(
    // Writable as the stores will use it: a directory made and removed (a read-only one fails here, EACCES/EROFS).
    // A full disk is no reason not to start: the service runs on without it (the disk check reports it), as it does
    // when the disk fills later.
    Effect.andThen(
      Effect.try({ try: () => fs.rmdirSync(fs.mkdtempSync(join(path, ".write-check-"))), catch: (cause) => cause })
        .pipe(
          Effect.catchIf((cause) => ["ENOSPC", "EDQUOT"].includes(errorCode(cause) ?? ""), () => Effect.void)
        )
    ),
    Effect.mapError((cause) =>
      new ConfigurationError({
        variable: "DATA_DIR",
        message: `DATA_DIR: Expected a directory the service can write in (or a path where one can be made), got ${
          JSON.stringify(path)
        } (${errorCode(cause) ?? String(cause)})`
      })
    )
  )
