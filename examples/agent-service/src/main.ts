/**
 * The agent service: `pnpm start` (PORT, DATA_DIR, REDIS_URL or REDIS_SENTINELS and REDIS_SENTINEL_MASTER,
 * REDIS_PASSWORD, RESILIENCE_ADMIN_TOKEN, BREAKER_OPEN_DURATION, SHUTDOWN_TIMEOUT, FLEET_COUNTING, FLEET_QUORUM,
 * FIBER_METRICS; see the README).
 */
import { FallbackStore } from "@effect-resilience/core"
import { ResilienceHttp } from "@effect-resilience/http"
import { RedisFleet, RedisStore, ResilientRedis } from "@effect-resilience/redis"
import { NodeHttpServer, NodeRuntime } from "@effect/platform-node"
import { Cause, Console, Effect, Exit, Layer, Metric, Option, Predicate, Redacted } from "effect"
import { HttpRouter, HttpServer, type HttpServerError } from "effect/http"
import { NetAddress } from "effect/net"
import { Redis } from "effect/persistence"
import { setFlagsFromString } from "node:v8"
import * as Agent from "./Agent.ts"
import * as AppConfig from "./Config.ts"
import * as Routes from "./Routes.ts"

// V8 pretenures an allocation site once its objects have survived scavenges for a while (at startup, or around a
// large allocation): the request path's objects then go straight to the old generation, keep their young children
// alive through every scavenge, and (measured here) each scavenge took 10-15 ms instead of 0.5 ms and throughput fell
// by a third, in some runs and not others. A request/response server's objects die young: pretenuring is off.
setFlagsFromString("--no-allocation-site-pretenuring")

// The search cache on Redis, shared by every instance, falling back to the local store while Redis is down.
const layerSearchCacheRedis = Layer.effect(
  Agent.SearchCacheService,
  Effect.gen(function*() {
    const cache = yield* ResilientRedis.ResilientRedis
    const redis = yield* Redis.Redis
    return Agent.SearchCacheService.of({
      get: (query) => Effect.orElseSucceed(cache.get(`search:${query}`), () => Option.none()),
      set: (query, value) => Effect.ignore(cache.set(`search:${query}`, value, { ttl: "1 day" })),
      ping: redis.send("PING")
    })
  })
).pipe(
  // As many copies for an outage as the local cache holds entries: one per distinct query would grow for a day.
  Layer.provide(
    ResilientRedis.layer({ name: "search-cache", prefix: "agent:search:", maxCopies: Agent.searchCacheEntries })
  ),
  Layer.provide(
    Layer.unwrap(
      Effect.map(
        Agent.AgentSettings,
        ({ dataDir }) => FallbackStore.layer({ directory: `${dataDir}/redis-fallback`, name: "redis-fallback" })
      )
    )
  )
)

const layerRedis = (url: string, password: Redacted.Redacted<string> | undefined) => {
  const store = RedisStore.layer({ url, password, lazy: true })
  return Layer.mergeAll(layerSearchCacheRedis, RedisFleet.layer()).pipe(Layer.provideMerge(store))
}

// The same on the master the sentinels name, following failovers. Lazy as well: with no sentinel answering, the
// service starts on its local store, and joins once one names a master that answers.
const layerRedisSentinel = (sentinel: AppConfig.SentinelConfig, password: Redacted.Redacted<string> | undefined) => {
  const store = RedisStore.layerSentinel({
    masterName: sentinel.masterName,
    sentinels: sentinel.sentinels,
    password,
    lazy: true
  })
  return Layer.mergeAll(layerSearchCacheRedis, RedisFleet.layer()).pipe(Layer.provideMerge(store))
}

// A resource another process holds (a DATA_DIR, a PORT): one line that says what to change, not a stack.
const refuse = (variable: string, message: string) => {
  const failure = new AppConfig.ConfigurationError({ variable, message: `${variable}: ${message}` })
  return Effect.andThen(Console.error(`Configuration error: ${failure.message}`), Effect.fail(failure))
}

// What a failed listen says about the configuration, by Node's error code.
const listenErrors: Record<string, (host: string, port: number) => readonly [variable: string, message: string]> = {
  EADDRINUSE: (host, port) => ["PORT", `${host}:${port} is in use by another process; set PORT to a free port`],
  EADDRNOTAVAIL: (host) => [
    "HOST",
    `${host} is not an address of this machine; set HOST to one of its addresses (127.0.0.1, or 0.0.0.0 for all)`
  ],
  ENOTFOUND: (host) => [
    "HOST",
    `${host} does not resolve to an address; set HOST to an address of this machine (127.0.0.1, or 0.0.0.0 for all)`
  ],
  EAI_AGAIN: (host) => [
    "HOST",
    `${host} could not be resolved (DNS did not answer); set HOST to an address (127.0.0.1, or 0.0.0.0 for all)`
  ],
  EACCES: (host, port) => [
    "PORT",
    `${host}:${port} needs privileges to listen on (a port below 1024); set PORT to 1024 or above`
  ]
}

const program = Effect.gen(function*() {
  const config = yield* AppConfig.load.pipe(
    Effect.tap((loaded) => AppConfig.ensureDataDir(loaded.dataDir)),
    Effect.tapError((error) => Console.error(`Configuration error: ${error.message}`))
  )

  const settings: Agent.Settings = {
    dataDir: config.dataDir,
    openDuration: config.openDuration,
    fleet: config.fleet
  }
  const password = Option.getOrUndefined(config.redisPassword)
  const redis = Option.isSome(config.redisSentinel)
    ? layerRedisSentinel(config.redisSentinel.value, password)
    : Option.match(config.redisUrl, {
      onNone: () => Agent.layerSearchCacheLocal,
      onSome: (url) => layerRedis(url, password)
    })
  const core = Agent.layerRunning(settings, redis)

  const announce = Layer.effectDiscard(Effect.gen(function*() {
    const server = yield* HttpServer.HttpServer
    const port = server.address._tag === "UnixPathAddress" ? config.port : server.address.port
    // localhost reaches 127.0.0.1 and every interface, not another address HOST names (the printed URLs were refused).
    const address = server.address._tag === "UnixPathAddress"
      ? "localhost"
      : NetAddress.formatUrlHost(server.address.address)
    const base = `http://${["0.0.0.0", "[::]", "127.0.0.1"].includes(address) ? "localhost" : address}:${port}`
    yield* Console.log(
      [
        `Agent service listening on ${base} (pid ${process.pid})`,
        `  dashboard: ${base}/dashboard`,
        `  health:    ${base}/health`,
        `  API docs:  ${base}/api/v1/resilience/docs`,
        `  search:    curl '${base}/search?q=effect'`,
        config.generatedToken
          ? `  admin token (generated, shown once): ${Redacted.value(config.adminToken)}`
          : "  admin token: from RESILIENCE_ADMIN_TOKEN"
      ].join("\n")
    )
  }))

  // Everything the HTTP package has (/health, /health/live, /health/ready, /api/v1/resilience/*, /metrics,
  // /dashboard, the events and the API docs) beside the service's own routes.
  // The agent and everything it runs on are the routes' alone (their handlers took what they use when they were
  // built): a request runs with the server's few services, not the agent's dozens. Built inside the server, they are
  // released after it: in-flight requests end before the queues flush and the fleet is left.
  const surface = ResilienceHttp.layer({ adminToken: config.adminToken })
  const routes = Layer.mergeAll(Routes.layerFor(config.adminToken), surface).pipe(Layer.provide(core))
  const server = HttpRouter.serve(routes, { disableListenLog: true, disableLogger: true }).pipe(
    // The URLs are printed once the routes are attached: until then the server answers 503.
    (serve) => Layer.provide(announce, serve),
    // Answers what Node's parser rejects with a JSON problem instead of a reset connection.
    Layer.provide(NodeHttpServer.layer(ResilienceHttp.createServer, {
      port: config.port,
      host: config.host,
      gracefulShutdownTimeout: config.shutdownTimeout
    }))
  )

  yield* Effect.addFinalizer(() => Console.log("Agent service stopped"))
  // FIBER_METRICS: live fibers in /metrics (child_fibers_active), where a fiber that never ends shows as a slope. Off
  // by default: counting every fiber's start and end costs about 1 µs per request.
  const launch = Layer.launch(server).pipe(
    // Another instance's stores are open on the same directory (two instances started with one DATA_DIR).
    Effect.catchIf(
      (error): error is FallbackStore.FallbackStoreError =>
        error._tag === "FallbackStoreError" && error.reason === "Locked",
      (error) =>
        refuse(
          "DATA_DIR",
          `${JSON.stringify(config.dataDir)} is in use by process ${error.holder}; each instance needs its own DATA_DIR`
        )
    ),
    // The server cannot listen as configured: another process has the port (another `pnpm start`, say), or HOST is
    // not this machine's.
    Effect.catchIf(
      (error): error is HttpServerError.ServeError & { readonly cause: { readonly code: string } } =>
        error._tag === "ServeError" && Predicate.hasProperty(error.cause, "code") &&
        typeof error.cause.code === "string" && Object.hasOwn(listenErrors, error.cause.code),
      (error) => {
        const [variable, message] = listenErrors[error.cause.code]!(config.host, config.port)
        return refuse(variable, message)
      }
    )
  )
  return yield* config.fiberMetrics ? Metric.enableRuntimeMetrics(launch) : launch
}).pipe(Effect.scoped)

NodeRuntime.runMain(program, {
  disableErrorReporting: false,
  // A signal is how this service is asked to stop: a clean shutdown exits 0, SIGINT included.
  teardown: (exit, onExit) => onExit(Exit.isFailure(exit) && !Cause.hasInterruptsOnly(exit.cause) ? 1 : 0)
})
