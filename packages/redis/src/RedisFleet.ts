/**
 * Breaker state shared across instances on Redis: breakers with the same name in different processes converge.
 * Provide `layer` where breakers are made, and every `CircuitBreaker` made there joins the fleet (unless its options
 * say `fleet: false`); `fleet: { counting }` on a breaker picks how its calls are counted.
 *
 * **Details**
 *
 * - Propagation: a change accepted by the fleet is published on one channel (`fleet:events`), and every instance
 *   applies it at once; its transition carries `{ _tag: "Fleet", origin, cause }`. Each key's state has an epoch,
 *   and an instance applies only a newer one, so a late or repeated message changes nothing.
 * - Persistence: the state lives in a Redis hash per key (open-until included), loaded when a breaker joins, so a
 *   process that restarts while a breaker is open comes back open, and manual controls (`forceOpen`, `disable`,
 *   `metricsOnly`, `reset`, `restore`, with or without a key) hold on every instance and survive restarts.
 * - Counting modes (per breaker):
 *   - `local` (default): each instance counts its own calls; its trips and closes are announced in the background.
 *     The call path makes no Redis round trip.
 *   - `global`: each outcome is counted by a Lua script (one round trip per call, never two) that applies the
 *     breaker's own trip policies (consecutive, count and time windows); admission reads the local mirror.
 *   - `quorum`: an instance that trips is open on its own and casts a vote; the fleet opens for everybody once
 *     `instances` instances, or a `share` of the live ones (those that sent a heartbeat within `liveness`), voted
 *     within `window`. One instance with a broken network cannot open the breaker for the others.
 * - Half-open across the fleet: when a fleet-wide opening elapses, every probe needs a lease (a sorted-set entry that
 *   expires after the breaker's `maxProbeTime`, so a crashed instance cannot hold one for ever), so that the fleet
 *   sends `maxProbes` probes in all. The fleet counts their outcomes against the epoch they were leased in: a late
 *   outcome is fenced off, a failure reopens the fleet, `successThreshold` successes close it.
 * - Introspection: the layer also provides `RedisFleet`, the same fleet with a `snapshot` (per breaker: keys known,
 *   changes queued, what the fleet answered) and the live `instances` with their last heartbeat.
 * - Metrics (Effect `Metric`s, attribute `breaker`): `breaker_fleet_applied_total` (fleet states applied here),
 *   `breaker_fleet_announcements_total` (by `result`: accepted, rejected, pending, failed),
 *   `breaker_fleet_local_decisions_total` (operations decided locally because the fleet could not be reached),
 *   `breaker_fleet_live_instances` (attribute `instance`: the live instances, as of the last heartbeat), and
 *   `breaker_fleet_unreadable_total` (attribute `instance`: what Redis answered that did not decode, skipped).
 * - Decoding: every script reply and `fleet:events` message is decoded with Schema. One that does not decode (a hash
 *   edited by hand, a message from another version) is skipped, logged and counted, never applied half-read; a state
 *   whose reason does not decode is applied with the reason `{ _tag: "Manual", action: "restore" }`.
 * - Time and randomness come from `Clock` and `Random` (the default instance name's random part, incarnation ids),
 *   so a test can control both.
 * - Redis down: every fleet operation goes through a breaker of its own (`fleet:redis`), so an outage costs one
 *   failed round trip, not one per call. Breakers keep working locally (as solo breakers); changes made meanwhile
 *   stay queued, and the instance sends what it queued and loads what it missed (a resync) as soon as its subscriber
 *   is subscribed again after a reconnect or a failover (messages published meanwhile were lost), and every
 *   `resyncInterval`. Redis keeps an incarnation id, lost with its data: when a heartbeat or a resync finds another
 *   one (Redis came back empty, so epochs started again), the instance resyncs and forgets the epochs it saw. A
 *   resync that finds a key's epoch lower than one the instance saw before it asked, or the key gone (Redis came back
 *   from an older snapshot, or failed over to a replica that lagged), forgets that key's epoch and takes the fleet's
 *   state.
 *   Conflicts: manual controls win over the breaker's own decisions, and among themselves the last one made wins: a
 *   control made on a stale epoch (queued during an outage, say) gives way to one made after it on the fleet, and a
 *   breaker-wide control leaves alone a key whose own control is newer. A trip made on a stale epoch survives the
 *   resync unless the fleet holds a newer decision: it is accepted onto a circuit closed before the trip was made and
 *   onto an opening that has elapsed and began before it, and gives way to a manual control, an opening still in
 *   force, or a close made after it (the instances' `Clock`s decide, here and between manual controls, so they should
 *   agree to well within the time between such decisions). Any other change made on a stale epoch gives way to the
 *   fleet's state.
 * - Keyed breakers: an instance keeps the epochs of the keys its breaker holds only. A key the breaker evicts is
 *   forgotten (once a change of it still queued is sent), and a state for a key it does not hold, closed or with its
 *   opening elapsed, is not applied: the key stays fresh, as after an eviction. A later state of the key, of any
 *   epoch, is new to the instance, and applied.
 *
 * **Gotchas**
 *
 * - Open-until is an absolute time from the instances' clocks, which should agree (NTP) to well within an open
 *   duration.
 * - Each breaker's trip settings should be the same on every instance: `global` counting and the probe leases use
 *   the settings of the instance making the call.
 * - Over a `Redis` service that does not say when its subscriber reconnects (one given to `RedisStore.layerRedis`,
 *   such as `NodeRedis`'), changes published while it reconnected arrive with the next periodic resync; a Redis that
 *   came back empty is still found within a heartbeat. `RedisStore.layer`, `layerConfig` and `layerSentinel` say.
 * - Keys are listed in Redis for as long as the fleet keeps state for them; a keyed breaker with many short-lived
 *   keys leaves their hashes behind (each is a few hundred bytes), and every resync reads them all (an instance
 *   only skips those its breaker does not hold).
 * - Under `global` counting, the first outcome on a key this instance does not know (never seen, or forgotten) is
 *   fenced off when the fleet holds state for the key; its reply teaches the instance the key's epoch.
 *
 * **Example** (Three instances sharing a breaker)
 *
 * ```ts
 * import { CircuitBreaker } from "@effect-resilience/core"
 * import { RedisFleet, RedisStore } from "@effect-resilience/redis"
 * import { Effect, Layer } from "effect"
 *
 * const Fleet = RedisFleet.layer().pipe(Layer.provideMerge(RedisStore.layer({ url: "redis://127.0.0.1:6379" })))
 *
 * const program = Effect.gen(function*() {
 *   // A trip here opens "search" on every instance; a reset on any instance closes it everywhere.
 *   const breaker = yield* CircuitBreaker.make({
 *     name: "search",
 *     trip: CircuitBreaker.consecutive(5),
 *     fleet: { counting: "quorum", quorum: { instances: 2, window: "1 minute" } }
 *   })
 *   return yield* breaker.protect(Effect.succeed("results"))
 * }).pipe(Effect.scoped, Effect.provide(Fleet))
 * ```
 *
 * @since 0.1.0
 */
import * as BreakerFleet from "@effect-resilience/core/BreakerFleet"
import * as CircuitBreaker from "@effect-resilience/core/CircuitBreaker"
import * as PolicyConfig from "@effect-resilience/core/PolicyConfig"
import * as PullMetric from "@effect-resilience/core/PullMetric"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Latch from "effect/Latch"
import * as Layer from "effect/Layer"
import * as Random from "effect/Random"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Semaphore from "effect/Semaphore"
import * as Stream from "effect/Stream"
import { hostname } from "node:os"
import * as codec from "./internal/fleetCodec.ts"
import * as scripts from "./internal/fleetScripts.ts"
import { NonBlankString } from "./internal/options.ts"
import { RedisStore, type RedisStoreError } from "./RedisStore.ts"

/**
 * Options of the fleet (one per process, shared by its breakers).
 *
 * @example
 * ```ts
 * import type { RedisFleet } from "@effect-resilience/redis"
 *
 * const options: RedisFleet.Options = { instance: "api-1", heartbeat: "1 second", resyncInterval: "5 seconds" }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** This instance's name in the fleet. Default: `<hostname>:<pid>:<random>`. */
  readonly instance?: string | undefined
  /** How often the instance says it is alive. Default: 1 second. */
  readonly heartbeat?: Duration.Input | undefined
  /** An instance is live when its last heartbeat is at most this old (quorum shares). Default: 3 heartbeats. */
  readonly liveness?: Duration.Input | undefined
  /** How often queued changes are resent and missed ones loaded (also at once after a reconnect). Default: 5 seconds. */
  readonly resyncInterval?: Duration.Input | undefined
}

/**
 * What one instance's fleet has done, per breaker that joined it: for dashboards and for telling a quiet fleet from
 * a cut-off one.
 *
 * @example
 * ```ts
 * import type { RedisFleet } from "@effect-resilience/redis"
 *
 * const behind = (snapshot: RedisFleet.Snapshot) => snapshot.breakers.filter((b) => b.queued > 0).map((b) => b.breaker)
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Snapshot {
  readonly instance: string
  /** Live instances, as of this instance's last heartbeat (0 before the first one answered). */
  readonly liveInstances: number
  /** Replies and messages read from Redis that did not decode (another version, a hand edit): skipped. */
  readonly unreadable: number
  readonly breakers: ReadonlyArray<{
    readonly breaker: string
    readonly counting: BreakerFleet.Counting
    /** Keys (and the breaker-wide state) whose fleet epoch this instance knows: at most the keys its breaker holds. */
    readonly keys: number
    /** Changes of this instance not yet accepted by the fleet (Redis unreachable). */
    readonly queued: number
    /** Fleet states applied here. */
    readonly applied: number
    /** This instance's changes, by what the fleet answered (`pending`: a quorum vote that did not decide yet). */
    readonly accepted: number
    readonly rejected: number
    readonly pending: number
    readonly failed: number
    /** Leases, probe outcomes and global counts decided locally because the fleet could not be reached. */
    readonly localDecisions: number
  }>
}

/**
 * The fleet as seen from this instance: the `BreakerFleet` that breakers join, plus what a dashboard shows of it.
 *
 * @example
 * ```ts
 * import type { RedisFleet } from "@effect-resilience/redis"
 * import { Effect } from "effect"
 *
 * const report = (fleet: RedisFleet.RedisFleet) =>
 *   Effect.map(fleet.instances, (instances) => `${fleet.instance}: ${instances.length} live`)
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface RedisFleet extends Context.Service.Shape<typeof BreakerFleet.BreakerFleet> {
  readonly snapshot: Effect.Effect<Snapshot>
  /** The live instances (a heartbeat within `liveness`), with their last heartbeat, read from Redis. */
  readonly instances: Effect.Effect<
    ReadonlyArray<{ readonly instance: string; readonly lastHeartbeat: number }>,
    RedisStoreError
  >
}

/**
 * The `RedisFleet` in context (provided by `layer`, with `BreakerFleet`).
 *
 * @example
 * ```ts
 * import { RedisFleet } from "@effect-resilience/redis"
 * import { Effect } from "effect"
 *
 * const report = Effect.gen(function*() {
 *   const fleet = yield* RedisFleet.RedisFleet
 *   const instances = yield* fleet.instances
 *   const snapshot = yield* fleet.snapshot
 *   return `${fleet.instance}: ${instances.length} live, ${snapshot.breakers.length} shared breakers`
 * })
 * ```
 *
 * @since 0.1.0
 * @category services
 */
export const RedisFleet: Context.Service<RedisFleet, RedisFleet> = Context.Service<RedisFleet>(
  "@effect-resilience/redis/RedisFleet"
)

const OptionsSchema = Schema.Struct({
  instance: Schema.optional(NonBlankString("a non-empty string")),
  heartbeat: Schema.optional(PolicyConfig.DurationInput({ positive: true })),
  liveness: Schema.optional(PolicyConfig.DurationInput({ positive: true })),
  resyncInterval: Schema.optional(PolicyConfig.DurationInput({ positive: true }))
})

// Names and keys in Redis: URI-encoded, or, for a string that is not well-formed UTF-16 (a lone surrogate, as a key
// cut in the middle of an emoji), `%u` and its code units in hex, which URI-encoding never yields.
const uriSafe = (text: string): string => {
  try {
    return encodeURIComponent(text)
  } catch {
    let hex = "%u"
    for (let i = 0; i < text.length; i++) hex += text.charCodeAt(i).toString(16).padStart(4, "0")
    return hex
  }
}
const HEX_UNITS = /^%u((?:[0-9a-f]{4})*)$/

const encode = (key: string | undefined): string => key === undefined ? "*" : "k" + uriSafe(key)
// `undefined`: breaker-wide; `null`: not a key this version writes.
const decode = (encoded: string): string | undefined | null => {
  if (encoded === "*") return undefined
  if (!encoded.startsWith("k")) return null
  const units = HEX_UNITS.exec(encoded.slice(1))
  if (units !== null) return String.fromCharCode(...(units[1].match(/.{4}/g) ?? []).map((unit) => parseInt(unit, 16)))
  try {
    return decodeURIComponent(encoded.slice(1))
  } catch {
    return null
  }
}

// Six base-36 characters from `Random`: tells apart two processes with the same host and pid (containers).
const randomId = Effect.map(Random.nextIntBetween(0, 36 ** 6), (n) => n.toString(36).padStart(6, "0"))

// The reason is only what a transition reports: a state whose reason does not decode is applied all the same.
const restored: CircuitBreaker.Reason = { _tag: "Manual", action: "restore" }

/**
 * Makes a fleet on the `RedisStore` in context, for the scope's lifetime: a subscription to the fleet's channel, a
 * heartbeat and a resync fiber. Invalid options fail with `PolicyConfigError`.
 *
 * @example
 * ```ts
 * import { BreakerFleet } from "@effect-resilience/core"
 * import { RedisFleet, RedisStore } from "@effect-resilience/redis"
 * import { Layer } from "effect"
 *
 * const Fleet = Layer.effect(BreakerFleet.BreakerFleet, RedisFleet.make({ instance: "worker-7" })).pipe(
 *   Layer.provide(RedisStore.layer({ url: "redis://127.0.0.1:6379" }))
 * )
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  options: Options = {}
): Effect.Effect<RedisFleet, PolicyConfig.PolicyConfigError, RedisStore | Scope.Scope> =>
  Effect.gen(function*() {
    yield* PolicyConfig.decode(OptionsSchema, options, { kind: "breaker fleet", policy: "RedisFleet" })
    const store = yield* RedisStore
    const instance = options.instance ?? `${hostname()}:${process.pid}:${yield* randomId}`
    const heartbeatMillis = Duration.toMillis(Duration.fromInputUnsafe(options.heartbeat ?? "1 second"))
    const livenessMillis = options.liveness === undefined
      ? 3 * heartbeatMillis
      : Duration.toMillis(Duration.fromInputUnsafe(options.liveness))
    const resync = options.resyncInterval ?? "5 seconds"
    const channel = store.key("fleet:events")
    const instances = store.key("fleet:instances")

    // Every fleet operation goes through this breaker: while Redis is down, breakers decide locally at no cost.
    const guard = yield* CircuitBreaker.make({
      name: "fleet:redis",
      trip: CircuitBreaker.consecutive(2),
      openDuration: "1 second",
      fleet: false
    })
    const run = <A>(effect: Effect.Effect<A, unknown>): Effect.Effect<A | undefined> =>
      effect.pipe(
        guard.protect,
        Effect.catchCause((cause) =>
          Effect.as(Effect.logDebug("Redis fleet operation failed; deciding locally", cause), undefined)
        )
      )

    interface Joined {
      readonly member: BreakerFleet.Member
      /** Applies what the fleet sent, when it is newer than what this instance has seen. */
      readonly receive: (encodedKey: string, reply: codec.Reply) => Effect.Effect<void>
      /** Sends what is queued and loads the fleet's states; `false` when Redis could not be reached. */
      readonly resync: Effect.Effect<boolean>
      readonly forget: () => void
      readonly snapshot: () => Snapshot["breakers"][number]
    }
    const members = new Map<string, Set<Joined>>()

    // What Redis answered that did not decode: skipped, counted, logged.
    let unreadable = 0
    const skip = (what: string, detail: unknown) => {
      unreadable++
      return Effect.logWarning(`RedisFleet: skipped an unreadable ${what}`, detail)
    }
    // A script's reply, decoded; `undefined` (and counted) when it does not decode.
    const readReply = (raw: unknown): Effect.Effect<codec.Reply | undefined> => {
      const reply = codec.decodeReply(raw)
      return Exit.isSuccess(reply)
        ? Effect.succeed(reply.value)
        : Effect.as(skip("fleet reply", reply.cause), undefined)
    }

    const receiveMessage = (message: string): Effect.Effect<void> => {
      const decoded = codec.decodeMessage(message)
      if (Exit.isFailure(decoded)) return skip("fleet message", decoded.cause)
      const [breaker, key, reply] = decoded.value
      const joined = members.get(breaker)
      return joined === undefined ? Effect.void : Effect.forEach(joined, (j) => j.receive(key, reply), {
        discard: true
      })
    }
    // Redis may come back without its data (no persistence): epochs then start again, and what an instance saw
    // before would hide every new change. The incarnation tells.
    const incarnationName = "fleet:incarnation"
    const incarnationKey = store.key(incarnationName)
    let incarnation: string | undefined
    // One at a time, so that a new incarnation makes the members forget once. `false`: Redis was not reached.
    const resyncing = yield* Semaphore.make(1)
    const resyncAll: Effect.Effect<boolean> = resyncing.withPermit(Effect.gen(function*() {
      const joined = [...members.values()].flatMap((set) => [...set])
      // Unique without trusting the clock to move (a test clock does not): the random part tells incarnations apart.
      const candidate = `${instance}@${yield* Clock.currentTimeMillis}:${yield* randomId}`
      const reply = yield* run(store.eval(scripts.incarnation)([incarnationKey], [channel, "", "", candidate]))
      if (reply === undefined) return false
      const current = codec.decodeIncarnation(reply)
      if (Exit.isFailure(current)) yield* skip("fleet incarnation", current.cause)
      else if (current.value[0] !== incarnation) {
        if (incarnation !== undefined) joined.forEach((j) => j.forget())
        incarnation = current.value[0]
      }
      const reached = yield* Effect.forEach(joined, (j) => j.resync)
      return reached.every((ok) => ok)
    }))

    // A resync asked for (the subscriber is back after a gap, Redis lost its data) runs at once and, while Redis is
    // not reachable yet (the command connection reconnects on its own), again shortly, not at the periodic resync.
    const wanted = Latch.makeUnsafe(false)
    const requestResync = Effect.sync(() => {
      wanted.openUnsafe()
    })
    const soon = Schedule.spaced("100 millis").pipe(Schedule.upTo({ duration: resync }))
    // Commands reach Redis again (asked without the guard, which may still be open from the outage): the guard need
    // not wait out its open duration.
    const reachable = store.get(incarnationName).pipe(
      Effect.retry(soon),
      Effect.andThen(Effect.flatMap(guard.state, (state) => state === "Closed" ? Effect.void : guard.reset())),
      Effect.ignore
    )
    const catchUp = wanted.close.pipe(
      Effect.andThen(reachable),
      Effect.andThen(resyncAll),
      Effect.flatMap((reached) => reached ? Effect.void : Effect.fail("Redis not reached")),
      Effect.retry(soon),
      Effect.ignore
    )
    yield* Effect.forever(Effect.andThen(wanted.await, catchUp)).pipe(Effect.forkScoped)

    // The subscription: messages published while it was away are lost. The subscriber reconnects on its own (the
    // stream goes on), and says so: each (re)subscription resyncs, which also catches a Redis that lost its data.
    yield* Effect.scoped(
      Effect.gen(function*() {
        const messages = yield* store.subscribe("fleet:events", { onResubscribed: requestResync })
        yield* requestResync
        yield* Stream.runForEach(messages, receiveMessage)
      })
    ).pipe(
      Effect.catchCause((cause) => Effect.logDebug("Redis fleet subscription lost; resubscribing", cause)),
      Effect.repeat(Schedule.spaced("500 millis")),
      Effect.forkScoped
    )

    let live = 0
    const beat = Effect.flatMap(
      Clock.currentTimeMillis,
      (now) =>
        Effect.flatMap(
          run(
            store.eval(scripts.heartbeat)([instances, incarnationKey], [channel, "", "", now, instance, livenessMillis])
          ),
          (reply) => {
            if (reply === undefined) return Effect.void
            const decoded = codec.decodeHeartbeat(reply)
            if (Exit.isFailure(decoded)) return skip("heartbeat reply", decoded.cause)
            live = decoded.value[1]
            // Another incarnation (or none yet): Redis restarted without its data, so epochs started again.
            return decoded.value[2] === incarnation ? Effect.void : requestResync
          }
        )
    )
    yield* PullMetric.register([
      PullMetric.gauge(
        "breaker_fleet_live_instances",
        "Live instances, as of the last heartbeat",
        { instance },
        () => live
      ),
      PullMetric.counter(
        "breaker_fleet_unreadable_total",
        "Replies and messages read from Redis that did not decode, skipped",
        { instance },
        () => unreadable
      )
    ])
    yield* beat.pipe(Effect.repeat(Schedule.spaced(Duration.millis(heartbeatMillis))), Effect.forkScoped)
    yield* resyncAll.pipe(Effect.repeat(Schedule.spaced(resync)), Effect.forkScoped)
    yield* Effect.addFinalizer(() => Effect.ignore(store.eval(scripts.leave)([instances], [channel, "", "", instance])))

    const join = (member: BreakerFleet.Member): Effect.Effect<BreakerFleet.Membership, never, Scope.Scope> =>
      Effect.gen(function*() {
        const name = uriSafe(member.breaker)
        const keysSet = store.key(`cb:${name}`)
        const hashPrefix = store.key(`cb:${name}:`)
        const hashOf = (encodedKey: string) => hashPrefix + encodedKey
        const tripJson = JSON.stringify(member.trip)
        const { counting, quorum } = member

        // The newest epoch seen per encoded key, and the changes waiting to be sent (the latest per key). `known`
        // holds only keys the breaker holds (it forgets the others), and keys evicted while a change of theirs waits
        // (`evicted`): that change is sent on the epoch it was made on, and the key forgotten once it is sent.
        const known = new Map<string, number>()
        const pending = new Map<string, BreakerFleet.Change>()
        const evicted = new Set<string>()
        const wake = Latch.makeUnsafe(false)
        let leases = 0
        const figures = { applied: 0, accepted: 0, rejected: 0, pending: 0, failed: 0, local: 0 }
        const by = { breaker: member.breaker }
        const announced = (result: "accepted" | "rejected" | "pending" | "failed") =>
          PullMetric.counter("breaker_fleet_announcements_total", "Changes sent to the fleet, by result", {
            ...by,
            result
          }, () => figures[result])
        yield* PullMetric.register([
          PullMetric.counter("breaker_fleet_applied_total", "Fleet states applied here", by, () => figures.applied),
          announced("accepted"),
          announced("rejected"),
          announced("pending"),
          announced("failed"),
          PullMetric.counter(
            "breaker_fleet_local_decisions_total",
            "Operations decided locally because the fleet could not be reached",
            by,
            () => figures.local
          )
        ])

        const apply = (encodedKey: string, reply: codec.Reply | undefined): Effect.Effect<void> => {
          if (reply === undefined) return Effect.void
          const [, epoch, mode, phase, openedAt, openUntil, openings, lastOpenMillis, closedAt, origin, reasonJson] =
            reply
          // Epoch 0: the fleet holds no state for the key.
          if (epoch === 0 || epoch <= (known.get(encodedKey) ?? 0)) return Effect.void
          const key = decode(encodedKey)
          if (key === null) return skip("fleet key", encodedKey)
          known.set(encodedKey, epoch)
          const reason = codec.decodeReason(reasonJson)
          const state = { mode, phase, openedAt, openUntil, openings, lastOpenMillis, closedAt }
          // Not kept (a key the breaker does not hold, closed or with its opening elapsed): not remembered either.
          const kept = (applied: boolean) => {
            if (applied) {
              figures.applied++
              evicted.delete(encodedKey)
            } else if (known.get(encodedKey) === epoch) {
              known.delete(encodedKey)
            }
          }
          return Exit.isSuccess(reason)
            ? Effect.map(member.apply(key, { epoch, state, origin, reason: reason.value }), kept)
            : Effect.andThen(
              skip("reason (applied as a restore)", reason.cause),
              Effect.map(member.apply(key, { epoch, state, origin, reason: restored }), kept)
            )
        }

        // The breaker dropped the key: so does the fleet member, once the key's waiting change (if any) is sent.
        const forget = (encodedKey: string) => {
          if (pending.has(encodedKey)) evicted.add(encodedKey)
          else known.delete(encodedKey)
        }

        // Sends one change; `false` when the fleet could not be reached.
        const send = (encodedKey: string, change: BreakerFleet.Change): Effect.Effect<boolean> =>
          Effect.gen(function*() {
            const now = yield* Clock.currentTimeMillis
            const s = change.state
            const raw = yield* run(
              store.eval(scripts.announce)(
                [hashOf(encodedKey), keysSet, hashOf(encodedKey) + ":votes", instances],
                [
                  channel,
                  member.breaker,
                  encodedKey,
                  change.kind,
                  known.get(encodedKey) ?? 0,
                  instance,
                  JSON.stringify(change.reason),
                  s.mode,
                  s.phase,
                  s.openedAt,
                  s.openUntil,
                  s.openings,
                  s.lastOpenMillis,
                  s.closedAt,
                  now,
                  counting,
                  quorum.instances,
                  quorum.share,
                  quorum.windowMillis,
                  livenessMillis,
                  hashPrefix,
                  change.at
                ]
              )
            )
            if (raw === undefined) {
              // Not sent: it stays queued for the next resync.
              figures.failed++
              return false
            }
            // Sent, but the answer is unreadable: resending would get the same answer, so it leaves the queue.
            const reply = yield* readReply(raw)
            if (reply === undefined) return true
            const epoch = reply[1]
            if (reply[0] === "applied") {
              // Our own change, accepted: this instance is already in that state.
              figures.accepted++
              known.set(encodedKey, Math.max(epoch, known.get(encodedKey) ?? 0))
            } else if (reply[0] === "rejected") {
              figures.rejected++
              yield* apply(encodedKey, reply)
            } else {
              // A quorum vote counted but not (yet) decisive, or the fleet already open.
              figures.pending++
              yield* apply(encodedKey, reply)
            }
            return true
          })

        // A script's answer: applied, and `true` (the fleet decided); `false` when the fleet could not be reached.
        const decided = (encodedKey: string) => (raw: scripts.Reply | undefined): Effect.Effect<boolean> => {
          if (raw === undefined) {
            figures.local++
            return Effect.succeed(false)
          }
          return Effect.flatMap(readReply(raw), (reply) =>
            reply === undefined
              // Unreadable: the fleet answered, but this instance cannot tell what; it decides locally.
              ? Effect.sync(() => {
                figures.local++
                return false
              })
              : Effect.as(apply(encodedKey, reply), true))
        }

        // A change leaves the queue once the fleet answered it (unless a newer one took its place meanwhile). A send
        // in flight finishes even when the fiber is interrupted, so a shutdown never drops what it was sending.
        // One flush at a time (the worker, a resync, leaving), so that a change is not sent twice at once.
        const sending = yield* Semaphore.make(1)
        const flush = sending.withPermit(Effect.suspend(() =>
          Effect.forEach([...pending], ([key, change]) =>
            Effect.uninterruptible(Effect.flatMap(send(key, change), (sent) =>
              Effect.sync(() => {
                if (sent && pending.get(key) === change) {
                  pending.delete(key)
                  if (evicted.delete(key)) {
                    known.delete(key)
                  }
                }
              }))), { discard: true })
        ))

        const load = Effect.gen(function*() {
          // Every epoch known before the read was read from Redis before the read ran, and a key's epoch only grows:
          // one lower in the answer (or a key gone) means Redis went back (restarted from an older snapshot, failed
          // over to a replica that lagged), keeping its incarnation. A late message cannot pass for that.
          const before = new Map(known)
          const found = yield* run(
            store.eval(scripts.states)([hashOf("*"), keysSet], [channel, member.breaker, "", hashPrefix])
          )
          if (found === undefined) {
            return false
          }
          const pairs = codec.decodeStates(found)
          if (Exit.isFailure(pairs)) {
            yield* skip("fleet states", pairs.cause)
            return true
          }
          // The key's epoch went back: the instance forgets the one it saw and takes Redis' state. Unless a message
          // came in meanwhile: it may be newer than the read, or late from before the loss (the next resync tells).
          const wentBack = (encodedKey: string, epoch: number) => {
            const seen = before.get(encodedKey)
            if (seen !== undefined && epoch < seen && known.get(encodedKey) === seen) {
              known.delete(encodedKey)
            }
          }
          const listed = new Set<string>()
          for (let i = 0; i + 1 < pairs.value.length; i += 2) {
            const encodedKey = pairs.value[i]
            if (typeof encodedKey === "string") {
              listed.add(encodedKey)
              const reply = yield* readReply(pairs.value[i + 1])
              if (reply !== undefined) {
                wentBack(encodedKey, reply[1])
              }
              yield* apply(encodedKey, reply)
            } else {
              yield* skip("fleet state key", encodedKey)
            }
          }
          for (const encodedKey of before.keys()) {
            if (!listed.has(encodedKey)) {
              wentBack(encodedKey, 0)
            }
          }
          return true
        })

        const joined: Joined = {
          member,
          receive: apply,
          resync: Effect.andThen(flush, load),
          forget: () => {
            known.clear()
            evicted.clear()
          },
          snapshot: () => ({
            breaker: member.breaker,
            counting,
            keys: known.size,
            queued: pending.size,
            applied: figures.applied,
            accepted: figures.accepted,
            rejected: figures.rejected,
            pending: figures.pending,
            failed: figures.failed,
            localDecisions: figures.local
          })
        }
        yield* load
        yield* Effect.forever(Effect.andThen(Effect.andThen(wake.await, wake.close), flush)).pipe(Effect.forkScoped)
        // Leaving (a shutdown, say) sends what is still queued: a trip made just before must not be lost.
        yield* Effect.addFinalizer(() =>
          flush
        )
        const set = members.get(member.breaker) ?? new Set()
        set.add(joined)
        members.set(member.breaker, set)
        yield* Effect.addFinalizer(() =>
          Effect.sync(() => {
            set.delete(joined)
            if (set.size === 0) members.delete(member.breaker)
          })
        )

        const membership: BreakerFleet.Membership = {
          epoch: (key) => known.get(encode(key)) ?? 0,
          forget: (key) => forget(encode(key)),
          announce: (change) => {
            const encodedKey = encode(change.key)
            // Announced: the breaker holds the key (again).
            evicted.delete(encodedKey)
            pending.set(encodedKey, change)
            wake.openUnsafe()
          },
          lease: (key, now) => {
            const encodedKey = encode(key)
            const id = `${instance}#${leases++}`
            return Effect.flatMap(
              run(
                store.eval(scripts.lease)(
                  [hashOf(encodedKey)],
                  [channel, member.breaker, encodedKey, now, member.trip.maxProbes, member.trip.maxProbeMillis, id]
                )
              ),
              (raw) =>
                Effect.map(
                  raw === undefined ? Effect.succeed(undefined) : readReply(raw),
                  (reply): BreakerFleet.Lease =>
                    reply === undefined
                      // Unreachable, or an answer this instance cannot read: it decides alone.
                      ? (figures.local++, { _tag: "Local" })
                      : reply[0] === "local"
                      ? { _tag: "Local" }
                      : reply[0] === "granted"
                      ? { _tag: "Granted", lease: `${reply[1]}|${id}` }
                      : { _tag: "Denied" }
                )
            )
          },
          settleProbe: (key, lease, outcome, now, openMillis) => {
            const encodedKey = encode(key)
            const bar = lease.indexOf("|")
            return Effect.flatMap(
              run(
                store.eval(scripts.settle)(
                  [hashOf(encodedKey), keysSet],
                  [
                    channel,
                    member.breaker,
                    encodedKey,
                    lease.slice(0, bar),
                    lease.slice(bar + 1),
                    outcome,
                    now,
                    openMillis,
                    instance,
                    member.trip.successThreshold
                  ]
                )
              ),
              decided(encodedKey)
            )
          },
          record: (key, epoch, outcome, durationMillis, now, openMillis) => {
            const encodedKey = encode(key)
            return Effect.flatMap(
              run(
                store.eval(scripts.record)(
                  [hashOf(encodedKey), keysSet],
                  [
                    channel,
                    member.breaker,
                    encodedKey,
                    epoch,
                    outcome,
                    durationMillis,
                    now,
                    openMillis,
                    instance,
                    tripJson
                  ]
                )
              ),
              decided(encodedKey)
            )
          }
        }
        return membership
      })

    return RedisFleet.of({
      instance,
      join,
      snapshot: Effect.sync(() => ({
        instance,
        liveInstances: live,
        unreadable,
        breakers: [...members.values()].flatMap((set) => [...set].map((joined) => joined.snapshot()))
      })),
      instances: Effect.flatMap(Clock.currentTimeMillis, (now) =>
        Effect.flatMap(
          store.eval(scripts.live)([instances], [channel, "", "", now, livenessMillis]),
          (reply) => {
            const decoded = codec.decodeLive(reply)
            if (Exit.isFailure(decoded)) return Effect.as(skip("instance list", decoded.cause), [])
            const out: Array<{ instance: string; lastHeartbeat: number }> = []
            for (let i = 0; i + 1 < decoded.value.length; i += 2) {
              const lastHeartbeat = Number(decoded.value[i + 1])
              if (Number.isFinite(lastHeartbeat)) out.push({ instance: decoded.value[i], lastHeartbeat })
            }
            return Effect.succeed(out)
          }
        ))
    })
  })

/**
 * Provides `BreakerFleet` (and `RedisFleet`, the same fleet with its snapshot) on the `RedisStore` in context:
 * breakers made where it is provided share their state.
 *
 * @example
 * ```ts
 * import { RedisFleet, RedisStore } from "@effect-resilience/redis"
 * import { Layer } from "effect"
 *
 * const Fleet = RedisFleet.layer({ instance: "api-1" }).pipe(
 *   Layer.provideMerge(RedisStore.layer({ url: "redis://127.0.0.1:6379" }))
 * )
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  options: Options = {}
): Layer.Layer<BreakerFleet.BreakerFleet | RedisFleet, PolicyConfig.PolicyConfigError, RedisStore> =>
  Layer.effectContext(
    Effect.map(
      make(options),
      (fleet) => Context.make(BreakerFleet.BreakerFleet, fleet).pipe(Context.add(RedisFleet, fleet))
    )
  )
