/**
 * The agent service's configuration, read from the environment and validated at startup.
 */
import { Config, Duration, Effect, Option, Random, Redacted } from "effect"

export interface AppConfig {
  readonly port: number
  readonly dataDir: string
  readonly redisUrl: Option.Option<string>
  readonly adminToken: Redacted.Redacted<string>
  /** Whether the token was generated (and is printed once) rather than given. */
  readonly generatedToken: boolean
  readonly openDuration: Duration.Duration
  readonly shutdownTimeout: Duration.Duration
}

const raw = Config.all({
  port: Config.Port("PORT").pipe(Config.withDefault(3000)),
  dataDir: Config.String("DATA_DIR").pipe(Config.withDefault(".data")),
  redisUrl: Config.option(Config.String("REDIS_URL")),
  adminToken: Config.option(Config.Redacted("RESILIENCE_ADMIN_TOKEN")),
  // Short enough that a recovered upstream serves traffic again within 5 seconds (the seeds' recovery target).
  openDuration: Config.Duration("BREAKER_OPEN_DURATION").pipe(Config.withDefault(Duration.seconds(2))),
  shutdownTimeout: Config.Duration("SHUTDOWN_TIMEOUT").pipe(Config.withDefault(Duration.seconds(10)))
})

const randomToken: Effect.Effect<string> = Effect.map(
  Effect.all(Array.from({ length: 4 }, () => Random.nextIntBetween(0, 0x100000000))),
  (words) => words.map((w) => w.toString(16).padStart(8, "0")).join("")
)

/** Reads and checks the configuration; an admin token is generated when none is set. */
export const load = Effect.gen(function*() {
  const config = yield* raw
  if (config.dataDir.trim() === "") {
    return yield* Effect.fail(new Error("DATA_DIR: Expected a non-empty path"))
  }
  if (Option.isSome(config.redisUrl) && !/^rediss?:\/\//.test(config.redisUrl.value)) {
    return yield* Effect.fail(new Error(`REDIS_URL: Expected a redis:// or rediss:// URL`))
  }
  if (Option.isSome(config.adminToken) && Redacted.value(config.adminToken.value).length < 8) {
    return yield* Effect.fail(new Error("RESILIENCE_ADMIN_TOKEN: Expected at least 8 characters"))
  }
  if (Duration.toMillis(config.openDuration) <= 0) {
    return yield* Effect.fail(new Error("BREAKER_OPEN_DURATION: Expected a positive duration"))
  }
  const generatedToken = Option.isNone(config.adminToken)
  const adminToken = Option.isSome(config.adminToken)
    ? config.adminToken.value
    : Redacted.make(yield* randomToken)
  return { ...config, adminToken, generatedToken } satisfies AppConfig
})
