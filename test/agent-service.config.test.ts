import * as AppConfig from "@effect-resilience/example-agent-service/config"
import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Duration, Effect, Option, Redacted } from "effect"

const token = "s3cret-admin-token"
const redisPassword = "redis-pa55word"
const durationUnits = `as "<amount> <unit>" (nanos, micros, millis, seconds, minutes, hours, days or weeks)`

const load = (env: Record<string, string>) =>
  AppConfig.load.pipe(Effect.provideService(ConfigProvider.ConfigProvider, ConfigProvider.fromEnv({ env })))

describe("agent service configuration", () => {
  it.effect("an empty environment means every default, with a generated 128-bit token", () =>
    Effect.gen(function*() {
      const config = yield* load({})
      assert.strictEqual(config.port, 3000)
      // Loopback: the chaos and admin controls are not offered to the network unless asked.
      assert.strictEqual(config.host, "127.0.0.1")
      assert.strictEqual(config.dataDir, ".data")
      assert.isTrue(Option.isNone(config.redisUrl))
      assert.isTrue(Option.isNone(config.redisSentinel))
      assert.isTrue(Option.isNone(config.redisPassword))
      assert.isTrue(config.generatedToken)
      assert.match(Redacted.value(config.adminToken), /^[0-9a-f]{32}$/)
      assert.strictEqual(Duration.toMillis(config.openDuration), 2_000)
      assert.strictEqual(Duration.toMillis(config.shutdownTimeout), 10_000)
      assert.deepStrictEqual(config.fleet, { counting: "local" })
      assert.isFalse(config.fiberMetrics)
    }))

  it.effect("ConfigProvider.fromUnknown({}) reads as the same defaults", () =>
    Effect.gen(function*() {
      const config = yield* AppConfig.load.pipe(
        Effect.provideService(ConfigProvider.ConfigProvider, ConfigProvider.fromUnknown({}))
      )
      assert.strictEqual(config.port, 3000)
      assert.isTrue(config.generatedToken)
    }))

  // The environment provider reports PORT as a record when PORT_RANGE exists: it must still read as unset.
  it.effect("variables that extend a name (PORT_RANGE, REDIS_URL_BACKUP, ...) leave it unset", () =>
    Effect.gen(function*() {
      const config = yield* load({
        PORT_RANGE: "1",
        DATA_DIR_OLD: "x",
        REDIS_URL_BACKUP: "x",
        REDIS_SENTINELS_OLD: "x",
        RESILIENCE_ADMIN_TOKEN_FILE: "/run/secrets/token",
        BREAKER_OPEN_DURATION_MAX: "x",
        SHUTDOWN_TIMEOUT_HARD: "x",
        FLEET_COUNTING_MODE: "x",
        FLEET_QUORUM_SHARE: "x",
        FIBER_METRICS_INTERVAL: "x"
      })
      assert.strictEqual(config.port, 3000)
      assert.strictEqual(config.dataDir, ".data")
      assert.isTrue(Option.isNone(config.redisUrl))
      assert.isTrue(Option.isNone(config.redisSentinel))
      assert.isTrue(config.generatedToken)
      assert.strictEqual(Duration.toMillis(config.openDuration), 2_000)
      assert.strictEqual(Duration.toMillis(config.shutdownTimeout), 10_000)
      assert.deepStrictEqual(config.fleet, { counting: "local" })
      assert.isFalse(config.fiberMetrics)
      const port = yield* load({ PORT: "8080", PORT_RANGE: "1" })
      assert.strictEqual(port.port, 8080)
    }))

  it.effect("every variable is read", () =>
    Effect.gen(function*() {
      const config = yield* load({
        PORT: "8080",
        HOST: "0.0.0.0",
        DATA_DIR: "/var/lib/agent",
        REDIS_URL: `redis://:${redisPassword}@127.0.0.1:6379`,
        RESILIENCE_ADMIN_TOKEN: token,
        BREAKER_OPEN_DURATION: "500 millis",
        SHUTDOWN_TIMEOUT: "30 seconds",
        FLEET_COUNTING: "quorum",
        FLEET_QUORUM: "3",
        FIBER_METRICS: "true",
        REDIS_PASSWORD: redisPassword
      })
      assert.strictEqual(config.port, 8080)
      assert.strictEqual(config.host, "0.0.0.0")
      assert.strictEqual(config.dataDir, "/var/lib/agent")
      assert.deepStrictEqual(config.redisUrl, Option.some(`redis://:${redisPassword}@127.0.0.1:6379`))
      assert.isFalse(config.generatedToken)
      assert.strictEqual(Redacted.value(config.adminToken), token)
      assert.strictEqual(Duration.toMillis(config.openDuration), 500)
      assert.strictEqual(Duration.toMillis(config.shutdownTimeout), 30_000)
      assert.deepStrictEqual(config.fleet, { counting: "quorum", quorum: { instances: 3 } })
      assert.isTrue(config.fiberMetrics)
      assert.deepStrictEqual(Option.map(config.redisPassword, Redacted.value), Option.some(redisPassword))
      assert.notInclude(String(config.redisPassword), redisPassword)
    }))

  it.effect("REDIS_SENTINELS takes host:port and [v6]:port; the master defaults to mymaster and is trimmed", () =>
    Effect.gen(function*() {
      const sentinels = "127.0.0.1:26379, [::1]:26380,sentinel-3:26381"
      const parsed = [{ host: "127.0.0.1", port: 26379 }, { host: "::1", port: 26380 }, {
        host: "sentinel-3",
        port: 26381
      }]
      const byDefault = yield* load({ REDIS_SENTINELS: sentinels, FLEET_COUNTING: "global" })
      assert.deepStrictEqual(byDefault.redisSentinel, Option.some({ masterName: "mymaster", sentinels: parsed }))
      assert.deepStrictEqual(byDefault.fleet, { counting: "global" })
      const named = yield* load({ REDIS_SENTINELS: sentinels, REDIS_SENTINEL_MASTER: " cache " })
      assert.deepStrictEqual(named.redisSentinel, Option.some({ masterName: "cache", sentinels: parsed }))
    }))

  it.effect("SHUTDOWN_TIMEOUT=0 means no wait for the requests in flight", () =>
    Effect.gen(function*() {
      // `0` as the README writes it: zero needs no unit.
      for (const value of ["0", " 0 ", "0 seconds"]) {
        assert.strictEqual(Duration.toMillis((yield* load({ SHUTDOWN_TIMEOUT: value })).shutdownTimeout), 0, value)
      }
    }))

  it.effect("FIBER_METRICS accepts true/false and 1/0", () =>
    Effect.gen(function*() {
      for (const [value, expected] of [["true", true], ["1", true], ["false", false], ["0", false]] as const) {
        assert.strictEqual((yield* load({ FIBER_METRICS: value })).fiberMetrics, expected, value)
      }
    }))

  // One case per rule: the environment, then the exact message (the variable first, then what it expects).
  const tokenExpected = "RESILIENCE_ADMIN_TOKEN: Expected at least 8 characters, visible ASCII only (no whitespace)"
  const redis = { REDIS_URL: `redis://:${redisPassword}@127.0.0.1:6379` }
  const redisUrlExpected =
    "REDIS_URL: Expected a redis:// or rediss:// URL (redis://[user:password@]host[:port][/db], " +
    "port 1-65535)"
  const rules: ReadonlyArray<[string, Record<string, string>, string]> = [
    ["PORT is a number", { PORT: "not-a-port" }, `PORT: Expected a port number (1-65535), got "not-a-port"`],
    ["PORT is at least 1", { PORT: "0" }, `PORT: Expected a port number (1-65535), got "0"`],
    ["PORT is at most 65535", { PORT: "65536" }, `PORT: Expected a port number (1-65535), got "65536"`],
    ["PORT is an integer", { PORT: "80.5" }, `PORT: Expected a port number (1-65535), got "80.5"`],
    [
      "HOST is an address",
      { HOST: "http://0.0.0.0" },
      `HOST: Expected an address to listen on, e.g. 127.0.0.1 or 0.0.0.0, got "http://0.0.0.0"`
    ],
    ["DATA_DIR is not blank", { DATA_DIR: "  " }, `DATA_DIR: Expected a non-empty path, got "  "`],
    [
      "REDIS_URL is a redis URL",
      { REDIS_URL: "localhost:6379" },
      `${redisUrlExpected}, got a URL whose scheme is "localhost:"`
    ],
    // What RedisStore and the Redis client refuse, refused here: not later, with a stack naming their option.
    [
      "REDIS_URL parses (its port is at most 65535)",
      { REDIS_URL: `redis://:${redisPassword}@127.0.0.1:99999` },
      `${redisUrlExpected}, got one that does not parse (a port over 65535, a space?)`
    ],
    ["REDIS_URL has a host", { REDIS_URL: "redis://" }, `${redisUrlExpected}, got one without a host`],
    ["REDIS_URL's port is at least 1", { REDIS_URL: "redis://127.0.0.1:0" }, `${redisUrlExpected}, got port 0`],
    [
      "REDIS_URL's path is a database number",
      { REDIS_URL: "redis://127.0.0.1:6379/cache" },
      `${redisUrlExpected}, got a path that is not a database number`
    ],
    // As RedisStore's option check reads it (node-redis would throw `Invalid pathname` / `URI malformed`).
    [
      "REDIS_URL's path is a non-negative integer, with a password in the URL",
      { REDIS_URL: `redis://:${redisPassword}@127.0.0.1:6379/-1` },
      `${redisUrlExpected}, got a path that is not a database number`
    ],
    [
      "REDIS_URL's password is percent-encoded",
      { REDIS_URL: `redis://:${redisPassword}%zz@127.0.0.1:6379/0` },
      `${redisUrlExpected}, got a user name or password with a malformed % escape (write % as %25)`
    ],
    [
      "REDIS_SENTINELS entries are host:port",
      { REDIS_SENTINELS: "localhost" },
      `REDIS_SENTINELS: Expected a comma-separated list of host:port (port 1-65535), got "localhost"`
    ],
    [
      "REDIS_SENTINELS ports are 1-65535, the bad entry quoted",
      { REDIS_SENTINELS: "127.0.0.1:26379,127.0.0.1:0" },
      `REDIS_SENTINELS: Expected a comma-separated list of host:port (port 1-65535), got "127.0.0.1:0"`
    ],
    [
      "REDIS_SENTINELS ports are at most 65535",
      { REDIS_SENTINELS: "127.0.0.1:99999" },
      `REDIS_SENTINELS: Expected a comma-separated list of host:port (port 1-65535), got "127.0.0.1:99999"`
    ],
    [
      "REDIS_SENTINELS entries have a host",
      { REDIS_SENTINELS: ":26379" },
      `REDIS_SENTINELS: Expected a comma-separated list of host:port (port 1-65535), got ":26379"`
    ],
    [
      "REDIS_SENTINELS has no empty entry",
      { REDIS_SENTINELS: "127.0.0.1:26379," },
      `REDIS_SENTINELS: Expected a comma-separated list of host:port (port 1-65535), got ""`
    ],
    [
      "REDIS_SENTINELS wants brackets around an IPv6 address",
      { REDIS_SENTINELS: "::1:26379" },
      `REDIS_SENTINELS: Expected a comma-separated list of host:port (port 1-65535), got "::1:26379"`
    ],
    [
      "REDIS_SENTINELS and REDIS_URL exclude each other",
      { ...redis, REDIS_SENTINELS: "127.0.0.1:26379" },
      "REDIS_SENTINELS: Expected either REDIS_URL or REDIS_SENTINELS, not both"
    ],
    [
      "REDIS_SENTINEL_MASTER needs REDIS_SENTINELS",
      { REDIS_SENTINEL_MASTER: "mymaster" },
      "REDIS_SENTINEL_MASTER: Expected REDIS_SENTINELS as well (it names their master)"
    ],
    [
      "REDIS_SENTINEL_MASTER is not blank",
      { REDIS_SENTINELS: "127.0.0.1:26379", REDIS_SENTINEL_MASTER: "  " },
      `REDIS_SENTINEL_MASTER: Expected a non-empty master name, got "  "`
    ],
    [
      "RESILIENCE_ADMIN_TOKEN has at least 8 characters",
      { RESILIENCE_ADMIN_TOKEN: "s3cr3t7" },
      tokenExpected
    ],
    [
      // A secret file's trailing newline: no Bearer header could carry it, every admin request would be a 401.
      "RESILIENCE_ADMIN_TOKEN has no whitespace",
      { RESILIENCE_ADMIN_TOKEN: "s3cr3t7-long\n" },
      tokenExpected
    ],
    [
      "RESILIENCE_ADMIN_TOKEN is ASCII, as a header is",
      { RESILIENCE_ADMIN_TOKEN: "s3cr3t7-€uro-token" },
      tokenExpected
    ],
    [
      "BREAKER_OPEN_DURATION is a duration",
      { BREAKER_OPEN_DURATION: "soon" },
      `BREAKER_OPEN_DURATION: Expected a positive duration of at most 365 days, ${durationUnits}, e.g. "2 seconds", got "soon"`
    ],
    [
      "BREAKER_OPEN_DURATION is positive",
      { BREAKER_OPEN_DURATION: "0 seconds" },
      `BREAKER_OPEN_DURATION: Expected a positive duration of at most 365 days, ${durationUnits}, e.g. "2 seconds", got "0 seconds"`
    ],
    [
      // Core's limit: the breakers would refuse it at startup, with a stack naming their own option.
      "BREAKER_OPEN_DURATION is at most 1 year",
      { BREAKER_OPEN_DURATION: "400 days" },
      `BREAKER_OPEN_DURATION: Expected a positive duration of at most 365 days, ${durationUnits}, e.g. "2 seconds", got "400 days"`
    ],
    [
      // The limit is not a unit: "1 year" was refused with "at most 1 year", which it is.
      "BREAKER_OPEN_DURATION names the units it reads",
      { BREAKER_OPEN_DURATION: "1 year" },
      `BREAKER_OPEN_DURATION: Expected a positive duration of at most 365 days, ${durationUnits}, e.g. "2 seconds", got "1 year"`
    ],
    [
      "BREAKER_OPEN_DURATION is finite",
      { BREAKER_OPEN_DURATION: "Infinity" },
      `BREAKER_OPEN_DURATION: Expected a positive duration of at most 365 days, ${durationUnits}, e.g. "2 seconds", got "Infinity"`
    ],
    [
      "SHUTDOWN_TIMEOUT is a duration",
      { SHUTDOWN_TIMEOUT: "whenever" },
      `SHUTDOWN_TIMEOUT: Expected a duration from 0 (no wait) to 365 days, ${durationUnits}, e.g. "10 seconds", got "whenever"`
    ],
    [
      "SHUTDOWN_TIMEOUT is not negative",
      { SHUTDOWN_TIMEOUT: "-1 seconds" },
      `SHUTDOWN_TIMEOUT: Expected a duration from 0 (no wait) to 365 days, ${durationUnits}, e.g. "10 seconds", got "-1 seconds"`
    ],
    [
      "SHUTDOWN_TIMEOUT has a unit, unless it is 0",
      { SHUTDOWN_TIMEOUT: "10" },
      `SHUTDOWN_TIMEOUT: Expected a duration from 0 (no wait) to 365 days, ${durationUnits}, e.g. "10 seconds", got "10"`
    ],
    [
      "SHUTDOWN_TIMEOUT is finite",
      { SHUTDOWN_TIMEOUT: "Infinity" },
      `SHUTDOWN_TIMEOUT: Expected a duration from 0 (no wait) to 365 days, ${durationUnits}, e.g. "10 seconds", got "Infinity"`
    ],
    [
      "FLEET_COUNTING is local, global or quorum",
      { ...redis, FLEET_COUNTING: "sometimes" },
      `FLEET_COUNTING: Expected "local", "global" or "quorum", got "sometimes"`
    ],
    [
      "FLEET_COUNTING other than local needs Redis",
      { FLEET_COUNTING: "global" },
      `FLEET_COUNTING: "global" needs REDIS_URL or REDIS_SENTINELS (a fleet on Redis)`
    ],
    [
      "FLEET_COUNTING=quorum needs FLEET_QUORUM",
      { ...redis, FLEET_COUNTING: "quorum" },
      "FLEET_QUORUM: Expected the number of instances needed, with FLEET_COUNTING=quorum"
    ],
    [
      "FLEET_QUORUM is positive",
      { ...redis, FLEET_COUNTING: "quorum", FLEET_QUORUM: "0" },
      `FLEET_QUORUM: Expected a positive number of instances, got "0"`
    ],
    [
      "FLEET_QUORUM is a number",
      { ...redis, FLEET_COUNTING: "quorum", FLEET_QUORUM: "two" },
      `FLEET_QUORUM: Expected a positive number of instances, got "two"`
    ],
    [
      "FLEET_QUORUM needs FLEET_COUNTING=quorum",
      { ...redis, FLEET_QUORUM: "2" },
      `FLEET_QUORUM: Expected FLEET_COUNTING=quorum with it, got "local"`
    ],
    [
      "REDIS_PASSWORD needs a Redis to open",
      { REDIS_PASSWORD: redisPassword },
      "REDIS_PASSWORD: Expected REDIS_URL or REDIS_SENTINELS as well (the Redis it opens)"
    ],
    ["FIBER_METRICS is a flag", { FIBER_METRICS: "maybe" }, `FIBER_METRICS: Expected true, false, 1 or 0, got "maybe"`],
    [
      "FIBER_METRICS is not any boolean word",
      { FIBER_METRICS: "yes" },
      `FIBER_METRICS: Expected true, false, 1 or 0, got "yes"`
    ]
  ]

  for (const [rule, env, message] of rules) {
    it.effect(`${rule}: the message names the variable and quotes neither the token nor a Redis password`, () =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(load({ RESILIENCE_ADMIN_TOKEN: token, ...env }))
        assert.strictEqual(error._tag, "ConfigurationError")
        assert.strictEqual(error.message, message)
        assert.strictEqual(error.variable, message.slice(0, message.indexOf(":")))
        for (const secret of [token, "s3cr3t7", redisPassword]) assert.notInclude(error.message, secret)
      }))
  }
})
