/**
 * The agent service's configuration, read from the environment and validated at startup.
 */
import type { BreakerFleet } from "@effect-resilience/core"
import { Config, Duration, Effect, Option, Random, Redacted } from "effect"

export interface AppConfig {
  readonly port: number
  readonly dataDir: string
  readonly redisUrl: Option.Option<string>
  /** Redis behind Sentinel (`REDIS_SENTINELS`, `REDIS_SENTINEL_MASTER`); never set together with `redisUrl`. */
  readonly redisSentinel: Option.Option<SentinelConfig>
  readonly adminToken: Redacted.Redacted<string>
  /** Whether the token was generated (and is printed once) rather than given. */
  readonly generatedToken: boolean
  readonly openDuration: Duration.Duration
  readonly shutdownTimeout: Duration.Duration
  /** How the breakers count calls across the fleet (with Redis): `FLEET_COUNTING`, `FLEET_QUORUM`. */
  readonly fleet: BreakerFleet.Options
}

const raw = Config.all({
  port: Config.Port("PORT").pipe(Config.withDefault(3000)),
  dataDir: Config.String("DATA_DIR").pipe(Config.withDefault(".data")),
  redisUrl: Config.option(Config.String("REDIS_URL")),
  redisSentinels: Config.option(Config.String("REDIS_SENTINELS")),
  redisSentinelMaster: Config.option(Config.String("REDIS_SENTINEL_MASTER")),
  adminToken: Config.option(Config.Redacted("RESILIENCE_ADMIN_TOKEN")),
  // Short enough that a recovered upstream serves traffic again within 5 seconds (the seeds' recovery target).
  openDuration: Config.Duration("BREAKER_OPEN_DURATION").pipe(Config.withDefault(Duration.seconds(2))),
  shutdownTimeout: Config.Duration("SHUTDOWN_TIMEOUT").pipe(Config.withDefault(Duration.seconds(10))),
  fleetCounting: Config.Literals(["local", "global", "quorum"], "FLEET_COUNTING").pipe(Config.withDefault("local")),
  fleetQuorum: Config.option(Config.Int("FLEET_QUORUM"))
})

// `FLEET_COUNTING` and `FLEET_QUORUM`, checked together: a quorum needs its size, and a size needs quorum counting.
const fleetOptions = (config: {
  readonly redisUrl: Option.Option<string>
  readonly redisSentinels: Option.Option<string>
  readonly fleetCounting: BreakerFleet.Counting
  readonly fleetQuorum: Option.Option<number>
}): Effect.Effect<BreakerFleet.Options, Error> => {
  const { fleetCounting: counting, fleetQuorum: quorum } = config
  if (counting !== "local" && Option.isNone(config.redisUrl) && Option.isNone(config.redisSentinels)) {
    return Effect.fail(new Error(`FLEET_COUNTING: "${counting}" needs REDIS_URL or REDIS_SENTINELS (a fleet on Redis)`))
  }
  if (Option.isNone(quorum)) {
    return counting === "quorum"
      ? Effect.fail(new Error("FLEET_QUORUM: Expected the number of instances needed, with FLEET_COUNTING=quorum"))
      : Effect.succeed({ counting })
  }
  if (counting !== "quorum") {
    return Effect.fail(new Error(`FLEET_QUORUM: Expected FLEET_COUNTING=quorum with it, got "${counting}"`))
  }
  return quorum.value < 1
    ? Effect.fail(new Error(`FLEET_QUORUM: Expected a positive number of instances, got ${quorum.value}`))
    : Effect.succeed({ counting, quorum: { instances: quorum.value } })
}

/** Where the sentinels are and which master they watch. */
export interface SentinelConfig {
  readonly masterName: string
  readonly sentinels: ReadonlyArray<{ readonly host: string; readonly port: number }>
}

// `host:port`, or `[v6-address]:port`.
const sentinelAddress = /^(?:\[([^\]\s]+)\]|([^:\s[\]]+)):(\d{1,5})$/

const sentinelConfig = (config: {
  readonly redisUrl: Option.Option<string>
  readonly redisSentinels: Option.Option<string>
  readonly redisSentinelMaster: Option.Option<string>
}): Effect.Effect<Option.Option<SentinelConfig>, Error> =>
  Effect.gen(function*() {
    if (Option.isNone(config.redisSentinels)) {
      return Option.isSome(config.redisSentinelMaster)
        ? yield* Effect.fail(
          new Error("REDIS_SENTINEL_MASTER: Expected REDIS_SENTINELS as well (it names their master)")
        )
        : Option.none()
    }
    if (Option.isSome(config.redisUrl)) {
      return yield* Effect.fail(new Error("REDIS_SENTINELS: Expected either REDIS_URL or REDIS_SENTINELS, not both"))
    }
    const sentinels: Array<{ host: string; port: number }> = []
    for (const entry of config.redisSentinels.value.split(",").map((s) => s.trim())) {
      const match = sentinelAddress.exec(entry)
      const port = Number(match?.[3])
      if (match === null || port < 1 || port > 65535) {
        return yield* Effect.fail(
          new Error(
            `REDIS_SENTINELS: Expected a comma-separated list of host:port (port 1-65535), got ${JSON.stringify(entry)}`
          )
        )
      }
      sentinels.push({ host: match[1] ?? match[2], port })
    }
    const masterName = Option.getOrElse(config.redisSentinelMaster, () => "mymaster").trim()
    if (masterName === "") {
      return yield* Effect.fail(new Error("REDIS_SENTINEL_MASTER: Expected a non-empty master name"))
    }
    return Option.some({ masterName, sentinels })
  })

const randomToken: Effect.Effect<string> = Effect.map(
  Effect.all(Array.from({ length: 4 }, () => Random.nextIntBetween(0, 0x100000000, { halfOpen: true }))),
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
  const redisSentinel = yield* sentinelConfig(config)
  if (Option.isSome(config.adminToken) && Redacted.value(config.adminToken.value).length < 8) {
    return yield* Effect.fail(new Error("RESILIENCE_ADMIN_TOKEN: Expected at least 8 characters"))
  }
  if (Duration.toMillis(config.openDuration) <= 0) {
    return yield* Effect.fail(new Error("BREAKER_OPEN_DURATION: Expected a positive duration"))
  }
  const fleet = yield* fleetOptions(config)
  const generatedToken = Option.isNone(config.adminToken)
  const adminToken = Option.isSome(config.adminToken)
    ? config.adminToken.value
    : Redacted.make(yield* randomToken)
  return { ...config, adminToken, generatedToken, redisSentinel, fleet } satisfies AppConfig
})
