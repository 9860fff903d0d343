/**
 * Deferred delivery (queue for retry): messages for a sink (a messaging API) whose circuit breaker is open are
 * queued durably and delivered in order once it lets calls through again, at least once, each with an idempotency
 * key that the consumer uses to drop duplicates.
 *
 * **Details**
 *
 * - `send` delivers at once when nothing is queued and the breaker is not open: the caller gets `Delivered`. Otherwise,
 *   or when that delivery fails, the message is written to the journal (`store`: a `FallbackStore` entry, written
 *   atomically and flushed to disk, or a Redis hash with `RedisQueueStore` from `@effect-resilience/redis`) before
 *   `send` answers `Queued`: a message acknowledged to the caller survives a crash (`SIGKILL` included) and is
 *   delivered by the next process that opens the same journal.
 * - One fiber drains the queue, oldest first, one message at a time, through the breaker. Deliveries (direct or
 *   drained) never overlap, so the sink sees messages in the order `send` acknowledged them. Turned away by the
 *   open breaker, the drainer waits the open time left (at least `retryInterval`; forced open, it polls every
 *   `retryInterval`) and tries the head again, which makes it the breaker's probe; after a failure it waits
 *   `retryInterval`.
 * - At least once: a message is removed from the journal after the sink succeeded, so a crash in between delivers it
 *   again. Each delivery carries the message's `key` (the caller's, or a random one), the same on every attempt and
 *   across restarts. A `send` with the key of a message still queued or dead-lettered is answered `Duplicate` and
 *   not queued twice.
 * - Interruption loses nothing either. A `send` interrupted while it waits for a delivery in progress leaves nothing
 *   behind; once its direct delivery has started, the message is queued (the sink may have it: its key drops the
 *   duplicate), then the caller is interrupted. The scope closing mid-delivery leaves the head queued as it was. A
 *   sink whose effect ends interrupted on its own (it joined a fiber something else interrupted) has failed the
 *   delivery, which is retried; so is a decoding that does.
 * - Poison messages: a failed delivery counts as an attempt when the sink is healthy right after it (the message is
 *   the problem): `healthCheck` succeeds, or without one, the breaker still admits calls. A failure that `isPermanent`
 *   accepts counts as the last attempt at once. A failure while the sink is down does not count, and forgives the
 *   attempts counted before it, which were most likely the same outage starting. A message with `maxAttempts` counted
 *   attempts moves to the dead letters with its last error; `deadLetters` lists them, `replay` queues one again (at
 *   the back, attempts reset), `drop` deletes it.
 * - Dead letters are bounded too, as a service that never replays nor drops them would otherwise hold each one (and
 *   its key, answered `Duplicate`) for good: past `maxDeadLetters` (default 10,000) the oldest is dropped, and so is
 *   one held for `deadLetterRetention` (default 7 days; checked when the queue is used, and by a `send` of its key).
 *   A dropped dead letter's journal entry is removed and its key freed (a later `send` of it is a new message); each
 *   drop is logged as a warning naming the key, and counted (`deadLettersDropped`). A restart drops what a journal
 *   holds past either bound, the oldest first.
 * - Nothing is retried forever: a message that fails again once it has waited `maxAge` since it was queued (default
 *   one day) is dead-lettered, counted attempts or not. This is what ends a poison message that looks like an outage
 *   (see the Gotchas); a real outage longer than `maxAge` dead-letters what it held, to be replayed once it is over.
 * - Bad input never loses data, it is refused with a typed `DeferredDeliveryError` before anything is acknowledged:
 *   `BadMessage` (the message does not encode with `schema`, or an empty key), `TooLarge` (the journal entry would
 *   exceed `maxMessageBytes`), `QueueFull` (`maxDepth` messages queued), `Store` (the journal could not be written,
 *   e.g. the disk is full). Bad options fail `make` with `PolicyConfigError` naming the field.
 * - The sink runs in the context `make` was given, whether `send` delivers at once or the drainer delivers later: its
 *   services are the ones `make` had, never the caller's. A direct delivery keeps the caller's span as its parent, so
 *   a trace shows it under the request; the caller's other fiber references (log annotations, log level) stay with
 *   the caller.
 * - `snapshot` gives the depth, the age of the oldest message, delivery attempts, dead letters and the head's last
 *   error; the same figures are pull metrics (`deferred_delivery_depth`, `deferred_delivery_oldest_age_seconds`,
 *   `deferred_delivery_attempts_total{outcome}`, `deferred_delivery_dead_letters`, `deferred_delivery_enqueued_total`,
 *   `deferred_delivery_dead_letters_dropped_total`, attribute `policy` = `name`) while the queue's scope is open.
 *
 * **Gotchas**
 *
 * - Give the journal a store of its own: a file store in a directory no other store or process uses, without
 *   `maxEntries`/`maxBytes` (a capped store evicts entries, and an evicted entry is a lost message). Several queues may
 *   share one store: their entries are prefixed with their names.
 * - Deliveries are sequential per queue, and `send` waits for a delivery in progress: give the sink a timeout (a
 *   `Timeout` or a `Policy`) so that a hanging sink cannot stall every caller. Use one queue per ordering domain.
 * - Without `healthCheck`, a bad message alone at the head and an outage look the same to a breaker that counts
 *   every error: both fail again and again until the breaker opens. Such a message is taken for an outage and
 *   retried at each probe (an `openDuration` schedule that grows spaces them out). Give a `healthCheck`, or tell the
 *   two apart with the breaker's `isFailure` (count what says the sink is down: timeouts, 5xx) and `isPermanent`
 *   (what says the message is bad: a 400), so that a bad message leaves the breaker closed and uses up its attempts.
 *   Keep `maxAttempts` at or above the number of failures that trips the breaker, so that an outage trips it before
 *   the head runs out of attempts.
 * - Why not `effect/persistence` `PersistedQueue`: its store retries a failed element after a delay while the next
 *   ones are taken (no order), has no depth nor oldest age, and cannot list, replay or drop failed elements; the
 *   journal here is a few entries of a `FallbackStore`, which already gives atomic, checksummed, durable writes.
 *
 * **Example** (Telegram replies queued while the Telegram circuit is open)
 *
 * ```ts
 * import { CircuitBreaker, DeferredDelivery, FallbackStore } from "@effect-resilience/core"
 * import { Effect, Schema } from "effect"
 *
 * const Reply = Schema.Struct({ chatId: Schema.Number, text: Schema.String })
 * declare const sendMessage: (reply: typeof Reply.Type, idempotencyKey: string) => Effect.Effect<void, Error>
 *
 * const program = Effect.gen(function*() {
 *   const telegram = yield* DeferredDelivery.make({
 *     name: "telegram",
 *     schema: Reply,
 *     sink: (reply, delivery) => sendMessage(reply, delivery.key),
 *     breaker: yield* CircuitBreaker.make({ name: "telegram", trip: CircuitBreaker.consecutive(5) }),
 *     store: yield* FallbackStore.makeMemory()
 *   })
 *   return yield* telegram.send({ chatId: 42, text: "on it" }, { key: "update-1001" }) // Delivered or Queued
 * }).pipe(Effect.scoped)
 * ```
 *
 * @since 0.2.0
 */
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Latch from "effect/Latch"
import * as Option from "effect/Option"
import * as Random from "effect/Random"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Tracer from "effect/Tracer"
import * as CircuitBreaker from "./CircuitBreaker.ts"
import * as FallbackStore from "./FallbackStore.ts"
import { callUser } from "./internal/callUser.ts"
import { stateReaders } from "./internal/circuitBreaker.ts"
import * as internal from "./internal/deferredDelivery.ts"
import { admissions } from "./internal/guard.ts"
import { Lock, type Restore } from "./internal/lock.ts"
import * as metrics from "./internal/metrics.ts"
import { isLocalRejection } from "./internal/rejection.ts"
import { show } from "./internal/show.ts"
import { isSucceeded } from "./internal/timeout.ts"
import { decode, DurationInput, millisOf, orDefault, type PolicyConfigError, PositiveInt } from "./PolicyConfig.ts"

/**
 * The brand every deferred delivery queue carries.
 *
 * @example
 * ```ts
 * import { DeferredDelivery } from "@effect-resilience/core"
 *
 * const isQueue = (u: object) => DeferredDelivery.TypeId in u
 * ```
 *
 * @since 0.2.0
 * @category type IDs
 */
export const TypeId: TypeId = "~@effect-resilience/core/DeferredDelivery"

/**
 * The type of `TypeId`.
 *
 * @example
 * ```ts
 * import type { DeferredDelivery } from "@effect-resilience/core"
 *
 * type Id = DeferredDelivery.TypeId // "~@effect-resilience/core/DeferredDelivery"
 * ```
 *
 * @since 0.2.0
 * @category type IDs
 */
export type TypeId = "~@effect-resilience/core/DeferredDelivery"

// -----------------------------------------------------------------------------
// models
// -----------------------------------------------------------------------------

/**
 * What the sink is told with each message: its idempotency `key` (the same on every attempt and after a restart),
 * the `attempt` (1 first; attempts the breaker turned away are not counted) and when it was enqueued (epoch
 * milliseconds; the time of the `send` for a direct delivery).
 *
 * @example
 * ```ts
 * import type { DeferredDelivery } from "@effect-resilience/core"
 *
 * const headers = (delivery: DeferredDelivery.Delivery) => ({ "Idempotency-Key": delivery.key })
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export interface Delivery {
  readonly key: string
  readonly attempt: number
  readonly enqueuedAt: number
}

/**
 * `send`'s answer: delivered now, queued durably (with the depth after it), or a duplicate of a message still queued
 * or dead-lettered (nothing done).
 *
 * @example
 * ```ts
 * import type { DeferredDelivery } from "@effect-resilience/core"
 *
 * const reply = (receipt: DeferredDelivery.Receipt) =>
 *   receipt._tag === "Delivered" ? "sent" : receipt._tag === "Queued" ? "will be sent shortly" : "already on its way"
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export type Receipt =
  | { readonly _tag: "Delivered"; readonly key: string }
  | { readonly _tag: "Queued"; readonly key: string; readonly depth: number }
  | { readonly _tag: "Duplicate"; readonly key: string }

/**
 * A message that failed `maxAttempts` times while the sink was healthy (or once, permanently), or that no longer
 * decodes with the queue's schema (or the schema throws on it): then `message` is `None`.
 *
 * @example
 * ```ts
 * import type { DeferredDelivery } from "@effect-resilience/core"
 *
 * const line = (dead: DeferredDelivery.DeadLetter<unknown>) => `${dead.key}: ${dead.attempts}x, ${dead.lastError}`
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export interface DeadLetter<A> {
  readonly key: string
  readonly message: Option.Option<A>
  readonly attempts: number
  readonly lastError: string
  readonly enqueuedAt: number
  readonly deadAt: number
}

/**
 * What `snapshot` gives. `depth` counts queued messages (the one being delivered included), `oldestAgeMillis` is the
 * age of the head (`null` when empty); the counters run from the start of this process (`deadLettersDropped`: dead
 * letters dropped past `maxDeadLetters` or `deadLetterRetention`, at the start included); `deadLetters` is the number
 * held; `head` is the next message to deliver with its counted attempts and last error.
 *
 * @example
 * ```ts
 * import type { DeferredDelivery } from "@effect-resilience/core"
 *
 * const stuck = (s: DeferredDelivery.Snapshot) => (s.oldestAgeMillis ?? 0) > 10 * 60_000
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export interface Snapshot {
  readonly name: string
  readonly depth: number
  readonly oldestAgeMillis: number | null
  readonly enqueued: number
  readonly delivered: number
  readonly deliveredDirect: number
  readonly failedAttempts: number
  readonly rejectedAttempts: number
  readonly deadLettered: number
  readonly deadLetters: number
  readonly deadLettersDropped: number
  readonly duplicates: number
  readonly head: {
    readonly key: string
    readonly attempts: number
    readonly lastError: string | null
  } | null
}

/**
 * Options of `make`.
 *
 * @example
 * ```ts
 * import type { CircuitBreaker, DeferredDelivery, FallbackStore } from "@effect-resilience/core"
 * import { Effect, Schema } from "effect"
 *
 * declare const breaker: CircuitBreaker.CircuitBreaker
 * declare const store: FallbackStore.FallbackStore
 *
 * const options: DeferredDelivery.Options<typeof Schema.String, never, never> = {
 *   name: "audit",
 *   schema: Schema.String,
 *   sink: (line) => Effect.log(line),
 *   breaker,
 *   store,
 *   maxAttempts: 3,
 *   retryInterval: "5 seconds"
 * }
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export interface Options<S extends Schema.Constraint, E, R> {
  /** Names the queue in logs, metrics, errors and journal keys. */
  readonly name: string
  /** Encodes messages to JSON for the journal and decodes them back. */
  readonly schema: S
  /** Delivers one message; runs through `breaker`. */
  readonly sink: (message: S["Type"], delivery: Delivery) => Effect.Effect<void, E, R>
  /** The sink's circuit breaker (its default circuit). */
  readonly breaker: CircuitBreaker.CircuitBreaker<void>
  /** The journal: a `FallbackStore` of its own (see the Gotchas), or another `Journal`. */
  readonly store: Journal
  /** Counted failures before a message is dead-lettered (a positive integer). Default: 5. */
  readonly maxAttempts?: number | undefined
  /**
   * A message that fails again after waiting this long since it was queued is dead-lettered, whatever its counted
   * attempts: nothing is retried forever. Default: 1 day.
   */
  readonly maxAge?: Duration.Input | undefined
  /** The drainer's wait after a rejection or a failure, and its poll while the breaker is open. Default: 1 second. */
  readonly retryInterval?: Duration.Input | undefined
  /** At most this many messages queued; more are refused with `QueueFull`. Default: 10,000. */
  readonly maxDepth?: number | undefined
  /** At most this many bytes per journal entry (message, key and bookkeeping, as JSON). Default: 256 KiB. */
  readonly maxMessageBytes?: number | undefined
  /**
   * At most this many dead letters held (a positive integer); past it, the oldest (the first dead-lettered) is
   * dropped: its journal entry removed, its key freed, a warning logged. Default: 10,000, as `maxDepth`: room for
   * everything a full queue can dead-letter in one outage, and the journal holds at most `maxDepth + maxDeadLetters`
   * entries.
   */
  readonly maxDeadLetters?: number | undefined
  /**
   * A dead letter held this long since it was dead-lettered is dropped as one past `maxDeadLetters` is (at most 1
   * year). Checked when the queue is used: a dead letter added, a drainer step, a `send` of its key, the start; a
   * `send` of its key after this is a new message, not a `Duplicate`. Default: 7 days, a week to replay it.
   */
  readonly deadLetterRetention?: Duration.Input | undefined
  /**
   * Failures that no retry can fix (a 400): the message is dead-lettered after this one. Default: none. If it
   * throws, the failure counts as one a retry may fix, the error is logged, and `lastError` says that it threw.
   */
  readonly isPermanent?: ((error: E) => boolean) | undefined
  /**
   * Tells whether the sink is up (say Telegram's `getMe`), run after each failed delivery: when it succeeds the
   * message is to blame and the failure counts; when it fails the sink is. Default: the breaker still admitting
   * calls after the failure. Give it a timeout: the drainer waits for it.
   */
  readonly healthCheck?: Effect.Effect<unknown, unknown, R> | undefined
}

/**
 * Where a queue keeps its messages: string values by key, each `set` durable and atomic once it succeeds. A
 * `FallbackStore` is one (`FallbackStore.make` on disk, `makeMemory` for tests); `RedisQueueStore.make` from
 * `@effect-resilience/redis` is another. `keys` lists every key held, written by this process or an earlier one.
 *
 * @example
 * ```ts
 * import type { DeferredDelivery } from "@effect-resilience/core"
 * import { Effect, Option } from "effect"
 *
 * const entries = new Map<string, string>()
 * const volatile: DeferredDelivery.Journal = {
 *   keys: Effect.sync(() => [...entries.keys()]),
 *   get: (key) => Effect.sync(() => Option.fromNullishOr(entries.get(key))),
 *   set: (key, value) => Effect.sync(() => void entries.set(key, value)),
 *   remove: (key) => Effect.sync(() => entries.delete(key))
 * }
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export interface Journal {
  readonly keys: Effect.Effect<ReadonlyArray<string>, unknown>
  readonly get: (key: string) => Effect.Effect<Option.Option<string>, unknown>
  readonly set: (key: string, value: string) => Effect.Effect<void, unknown>
  readonly remove: (key: string) => Effect.Effect<unknown, unknown>
}

/**
 * A deferred delivery queue. See the module docs for the semantics.
 *
 * @example
 * ```ts
 * import type { DeferredDelivery } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * const replayAll = (queue: DeferredDelivery.DeferredDelivery<unknown>) =>
 *   Effect.flatMap(queue.deadLetters, (dead) => Effect.forEach(dead, (d) => queue.replay(d.key)))
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export interface DeferredDelivery<A> {
  readonly [TypeId]: TypeId
  readonly name: string
  /** Delivers `message` now if it can, else queues it durably; `key` defaults to a random one. */
  readonly send: (
    message: A,
    options?: { readonly key?: string | undefined }
  ) => Effect.Effect<Receipt, DeferredDeliveryError>
  /** Depth, oldest age, attempts and dead letters. */
  readonly snapshot: Effect.Effect<Snapshot>
  /** The dead letters, oldest first. */
  readonly deadLetters: Effect.Effect<ReadonlyArray<DeadLetter<A>>>
  /** Queues the dead letter `key` again, at the back, with its attempts reset; `false` if there is none. */
  readonly replay: (key: string) => Effect.Effect<boolean, DeferredDeliveryError>
  /** Deletes the dead letter `key`; `false` if there is none. */
  readonly drop: (key: string) => Effect.Effect<boolean, DeferredDeliveryError>
  /** Waits until nothing is queued (returns at once if nothing is). */
  readonly awaitEmpty: Effect.Effect<void>
}

// -----------------------------------------------------------------------------
// errors
// -----------------------------------------------------------------------------

/**
 * A message refused, or a dead letter not changed, with nothing lost: `reason` says why (`BadMessage`, `TooLarge`,
 * `QueueFull`, `Store`), `field` which input or option is at fault.
 *
 * @example
 * ```ts
 * import type { DeferredDelivery } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * const sendOrLog = (queue: DeferredDelivery.DeferredDelivery<string>, text: string) =>
 *   queue.send(text).pipe(
 *     Effect.catchTag("DeferredDeliveryError", (e) => Effect.logError(`${e.reason}: ${e.message}`))
 *   )
 * ```
 *
 * @since 0.2.0
 * @category errors
 */
export class DeferredDeliveryError extends Schema.TaggedError<DeferredDeliveryError>()("DeferredDeliveryError", {
  reason: Schema.Literals(["BadMessage", "TooLarge", "QueueFull", "Store"]),
  queue: Schema.String,
  key: Schema.optional(Schema.String),
  field: Schema.optional(Schema.String),
  description: Schema.String,
  cause: Schema.optional(Schema.Defect())
}) {
  override get message(): string {
    const about = this.key === undefined ? "" : ` (key ${JSON.stringify(this.key.slice(0, 80))})`
    return `Deferred delivery "${this.queue}"${about}: ${
      this.field === undefined ? "" : `${this.field}: `
    }${this.description}`
  }
}

// -----------------------------------------------------------------------------
// constructors
// -----------------------------------------------------------------------------

const OptionsSchema = Schema.Struct({
  name: Schema.NonEmptyString.check(
    Schema.makeFilter((s: string) => s.includes("/") ? "Expected a name without \"/\"" : undefined),
    // Half of a character (as `text.slice` can leave) would not survive a store on Redis: its journal would be lost.
    Schema.makeFilter((s: string) =>
      /\p{Cs}/u.test(s) ? "Expected a name of whole characters (half of one, such as an emoji's, is not)" : undefined
    )
  ),
  maxAttempts: PositiveInt,
  maxAge: DurationInput({ positive: true }),
  retryInterval: DurationInput({ positive: true }),
  maxDepth: PositiveInt,
  maxMessageBytes: PositiveInt,
  maxDeadLetters: PositiveInt,
  deadLetterRetention: DurationInput({ positive: true })
})

type Outcome =
  | { readonly _tag: "Delivered" }
  | { readonly _tag: "Rejected"; readonly retryAfterMillis: number }
  | { readonly _tag: "Failed"; readonly counted: boolean; readonly permanent: boolean; readonly error: string }
  // The fiber delivering was interrupted (the caller, or the scope closing): what the sink did is not known.
  | { readonly _tag: "Interrupted" }

const interrupted: Outcome = { _tag: "Interrupted" }
const delivered: Outcome = { _tag: "Delivered" }

// What the drainer does next: wait this many milliseconds (0: go on at once), or sleep until an enqueue.
type Step = number | "Idle"

const messageOf = (error: unknown): string =>
  typeof error === "object" && error !== null && "message" in error && typeof error.message === "string"
    ? error.message
    : show(error)

const MAX_KEY_BYTES = 1024

// When a dead letter was dead-lettered: a journal written before `deadAt` was kept has its enqueue time.
const deadAtOf = (item: internal.Item): number => item.deadAt ?? item.enqueuedAt

// "Tag: message" for tagged errors and `Error`s, the string otherwise: what the dead letter keeps.
const describe = (cause: Cause.Cause<unknown>): string => {
  const error = Cause.squash(cause)
  if (typeof error === "object" && error !== null) {
    const tag = "_tag" in error && typeof error._tag === "string" ? error._tag : undefined
    const message = "message" in error && typeof error.message === "string" ? error.message : undefined
    if (tag !== undefined || message !== undefined) return [tag, message].filter((s) => s).join(": ")
  }
  return show(error)
}

// A failure while the breaker still admits calls blames the message; one that opened the breaker, the sink.
const blamesMessage = (state: CircuitBreaker.State): boolean =>
  state !== "Open" && state !== "HalfOpen" && state !== "ForcedOpen"

// The open time left of the breaker's rejection (0 for a half-open or forced one, whose wait is `retryInterval`); 0
// for the rejection of a policy inside the sink (a full bulkhead), which is not the breaker's.
const retryAfterOf = (rejection: unknown): number => {
  if (!(rejection instanceof CircuitBreaker.CircuitBreakerError)) return 0
  const millis = Duration.toMillis(rejection.retryAfter)
  return Number.isFinite(millis) ? millis : 0
}

// The character codes of the hex digits.
const hexCodes = Array.from("0123456789abcdef", (digit) => digit.charCodeAt(0))

// 128 random bits as 32 hex digits, from the fiber's `Random` (a seeded one in tests): four 32-bit words drawn at
// once, since a `send` without a key pays for this on every call. Written as character codes and made into one flat
// string: built by concatenation, the key was a tree of 16 pieces, flattened again on its first lookup.
const keyCodes: Array<number> = Array.from({ length: 32 }, () => 0)
const randomKey = (fiber: Fiber.Fiber<unknown, unknown>): string => {
  const random = fiber.getRef(Random.Random)
  for (let i = 0; i < 32; i += 8) {
    const word = Math.floor(random.nextDoubleUnsafe() * 0x100000000)
    for (let j = 0; j < 8; j++) keyCodes[i + j] = hexCodes[(word >>> (28 - 4 * j)) & 0xf]
  }
  return String.fromCharCode.apply(null, keyCodes)
}

// `jsonBytesBound` of a journal entry with an empty key and a `null` message, less the `null`'s 4: what every entry
// adds to its key's and its message's.
const emptyEntry = { key: "", message: null, enqueuedAt: 0, attempts: 0, lastError: "" }
const envelopeBound = internal.jsonBytesBound(emptyEntry)! - 4

/**
 * Makes a deferred delivery queue: loads the journal from `store` (messages a previous process acknowledged are
 * delivered first, in order), and starts the drainer, which lives as long as the scope. Fails with
 * `PolicyConfigError` naming the field for bad options, and with `DeferredDeliveryError` (`Store`) when the journal
 * cannot be read.
 *
 * @example
 * ```ts
 * import { NodeServices } from "@effect/platform-node"
 * import { CircuitBreaker, DeferredDelivery, FallbackStore } from "@effect-resilience/core"
 * import { Effect, Schema } from "effect"
 *
 * const program = Effect.gen(function*() {
 *   const outbox = yield* DeferredDelivery.make({
 *     name: "webhooks",
 *     schema: Schema.Struct({ url: Schema.String, body: Schema.String }),
 *     sink: (hook) => Effect.log(`POST ${hook.url}`),
 *     breaker: yield* CircuitBreaker.make({ name: "webhooks" }),
 *     store: yield* FallbackStore.make({ directory: ".data/outbox" })
 *   })
 *   yield* outbox.send({ url: "https://example.com/hook", body: "{}" }, { key: "order-17" })
 *   yield* outbox.awaitEmpty
 * }).pipe(Effect.scoped, Effect.provide(NodeServices.layer))
 * ```
 *
 * @since 0.2.0
 * @category constructors
 */
export const make = <S extends Schema.Constraint, E, R>(
  options: Options<S, E, R>
): Effect.Effect<
  DeferredDelivery<S["Type"]>,
  PolicyConfigError | DeferredDeliveryError,
  Scope.Scope | R | S["EncodingServices"] | S["DecodingServices"]
> =>
  Effect.gen(function*() {
    const settings = yield* decode(OptionsSchema, {
      name: options.name,
      maxAttempts: orDefault(options.maxAttempts, 5),
      maxAge: orDefault(options.maxAge, "1 day"),
      retryInterval: orDefault(options.retryInterval, "1 second"),
      maxDepth: orDefault(options.maxDepth, 10_000),
      maxMessageBytes: orDefault(options.maxMessageBytes, 256 * 1024),
      maxDeadLetters: orDefault(options.maxDeadLetters, 10_000),
      deadLetterRetention: orDefault(options.deadLetterRetention, "7 days")
    }, { kind: "deferred delivery", policy: String(options.name) })
    const { maxAttempts, maxDeadLetters, maxDepth, maxMessageBytes, name } = settings
    const retryMillis = millisOf(settings.retryInterval as Duration.Input)
    const maxAgeMillis = millisOf(settings.maxAge as Duration.Input)
    const retentionMillis = millisOf(settings.deadLetterRetention as Duration.Input)
    const retentionWhy = `held for deadLetterRetention (${Duration.format(Duration.millis(retentionMillis))})`
    const { breaker, sink, store } = options
    const context = yield* Effect.context<R | S["EncodingServices"] | S["DecodingServices"]>()
    const json = Schema.toCodecJson(options.schema)
    const encodeMessage = Schema.encodeUnknownEffect(json)
    const decodeMessage = Schema.decodeUnknownEffect(json)
    // A stored message, or why it does not decode. A schema that throws on it is a failure like one that rejects it:
    // either comes from the stored text, so it comes again on every try.
    const decodeStored = (text: unknown) => Effect.exit(Effect.suspend(() => decodeMessage(text)))
    const encodeRecord = Schema.encodeEffect(internal.RecordJson)
    const decodeRecord = Schema.decodeEffect(internal.RecordJson)

    const fail = (
      reason: DeferredDeliveryError["reason"],
      description: string,
      extra: { readonly key?: string; readonly field?: string; readonly cause?: unknown } = {}
    ) => new DeferredDeliveryError({ reason, queue: name, description, ...extra })

    const storeError = (key: string | undefined) => (error: unknown) =>
      fail(
        error instanceof FallbackStore.FallbackStoreError && error.reason === "TooLarge" ? "TooLarge" : "Store",
        messageOf(error),
        { ...(key === undefined ? {} : { key }), cause: error }
      )

    // In memory, the journal's mirror: the queue in delivery order, the dead letters in the order they were
    // dead-lettered (the oldest first, the first the bounds drop), every key in either.
    const queue: Array<internal.Item> = []
    const dead = new Map<string, internal.Item>()
    const keys = new Set<string>()
    const stats = {
      enqueued: 0,
      delivered: 0,
      deliveredDirect: 0,
      failed: 0,
      rejected: 0,
      deadLettered: 0,
      deadLettersDropped: 0,
      duplicates: 0
    }
    let nextSeq = 0

    // Loads the journal. A crash can leave a key both queued and dead: while replaying (the queued entry has the
    // larger sequence number and wins) or while dead-lettering (same sequence number: the dead letter wins).
    const byKey = new Map<string, internal.Item & { readonly kind: internal.Kind }>()
    for (const storeKey of yield* Effect.mapError(store.keys, storeError(undefined))) {
      const parsed = internal.parseKey(name, storeKey)
      if (parsed === undefined) continue
      nextSeq = Math.max(nextSeq, parsed.seq + 1)
      const text = yield* Effect.mapError(store.get(storeKey), storeError(undefined))
      if (Option.isNone(text)) continue
      const record = yield* Effect.option(decodeRecord(text.value))
      if (Option.isNone(record)) {
        yield* Effect.logWarning(`Deferred delivery "${name}": skipped an unreadable journal entry ${storeKey}`)
        continue
      }
      const item = { ...record.value, seq: parsed.seq, kind: parsed.kind }
      const other = byKey.get(item.key)
      if (other !== undefined) {
        const itemWins = item.seq === other.seq ? item.kind === "d" : item.seq > other.seq
        const [stale, fresh] = itemWins ? [other, item] : [item, other]
        yield* Effect.mapError(store.remove(internal.keyOf(name, stale.kind, stale.seq)), storeError(stale.key))
        byKey.set(fresh.key, fresh)
      } else {
        byKey.set(item.key, item)
      }
    }
    const loadedDead: Array<internal.Item> = []
    for (const { kind, ...item } of byKey.values()) {
      keys.add(item.key)
      if (kind === "q") queue.push(item)
      else loadedDead.push(item)
    }
    queue.sort(internal.bySeq)
    loadedDead.sort((a, b) => deadAtOf(a) - deadAtOf(b) || a.seq - b.seq)
    for (const item of loadedDead) dead.set(item.key, item)

    const lock = new Lock()
    const wake = yield* Latch.make(queue.length > 0)
    const empty = yield* Latch.make(queue.length === 0)

    const write = (kind: internal.Kind, item: internal.Item): Effect.Effect<void, DeferredDeliveryError> => {
      const { seq, ...record } = item
      return encodeRecord(record).pipe(
        Effect.mapError((error) => fail("BadMessage", error.message, { key: item.key, field: "message" })),
        Effect.flatMap((text) =>
          Effect.mapError(store.set(internal.keyOf(name, kind, seq), text), storeError(item.key))
        )
      )
    }

    const removeLogged = (kind: internal.Kind, item: internal.Item): Effect.Effect<void> =>
      store.remove(internal.keyOf(name, kind, item.seq)).pipe(
        Effect.catch((error) =>
          Effect.logWarning(
            `Deferred delivery "${name}": could not remove a journal entry of ${JSON.stringify(item.key)}; ` +
              `it comes back after a restart: ${messageOf(error)}`
          )
        )
      )

    // Takes out of memory the dead letters past `maxDeadLetters` or `deadLetterRetention` at `now`, oldest first (and
    // the dead letter `key`, if it is past the retention), freeing their keys, and gives what removes their journal
    // entries; undefined when none is. Only the oldest is looked at when none is: a dead letter added costs no scan.
    // Run under the lock. A journal entry that cannot be removed comes back at the next start, where it is dropped
    // again; a later message of the same key has a larger sequence number and wins over it.
    const trim = (now: number, key?: string): Effect.Effect<void> | undefined => {
      const victims: Array<readonly [internal.Item, string]> = []
      const take = (item: internal.Item, why: string) => {
        dead.delete(item.key)
        keys.delete(item.key)
        stats.deadLettersDropped++
        victims.push([item, why])
      }
      const expired = (item: internal.Item) => now - deadAtOf(item) >= retentionMillis
      // Deleting the entry a `Map` iteration is at is safe: it goes on with the next.
      for (const item of dead.values()) {
        if (dead.size > maxDeadLetters) take(item, `more than maxDeadLetters (${maxDeadLetters}) held`)
        else if (expired(item)) take(item, retentionWhy)
        else break
      }
      const keyed = key === undefined ? undefined : dead.get(key)
      if (keyed !== undefined && expired(keyed)) take(keyed, retentionWhy)
      if (victims.length === 0) return undefined
      return Effect.forEach(victims, ([item, why]) =>
        Effect.andThen(
          removeLogged("d", item),
          Effect.logWarning(`Deferred delivery "${name}": dropped the dead letter ${JSON.stringify(item.key)}: ${why}`)
        ), { discard: true })
    }
    // At the start: a journal written with larger bounds, or long closed, is brought within them.
    yield* (trim(yield* Clock.currentTimeMillis) ?? Effect.void)

    const enqueue = (item: Omit<internal.Item, "seq">) =>
      Effect.suspend(() => {
        if (queue.length >= maxDepth) {
          return Effect.fail(
            fail("QueueFull", `${queue.length} messages are queued, the most maxDepth allows`, {
              key: item.key,
              field: "maxDepth"
            })
          )
        }
        const queued: internal.Item = { ...item, seq: nextSeq++ }
        return Effect.andThen(
          write("q", queued),
          Effect.sync(() => {
            queue.push(queued)
            keys.add(queued.key)
            stats.enqueued++
            wake.openUnsafe()
            empty.closeUnsafe()
            return queue.length
          })
        )
      })

    // Moves the head to the dead letters: written as dead first, then removed from the queue, so a crash in between
    // leaves it dead (see the loading above). A dead letter that cannot be written stays queued.
    const deadLetter = (head: internal.Item, lastError: string, now: number): Effect.Effect<Step> => {
      const item: internal.Item = { ...head, lastError, deadAt: now }
      return write("d", item).pipe(
        Effect.andThen(removeLogged("q", head)),
        Effect.andThen(Effect.sync(() => {
          queue.shift()
          dead.set(item.key, item)
          stats.deadLettered++
        })),
        Effect.andThen(
          Effect.logWarning(`Deferred delivery "${name}": dead-lettered ${JSON.stringify(head.key)}: ${lastError}`)
        ),
        // One more dead letter may put the oldest past `maxDeadLetters`: dropped before `awaitEmpty` returns.
        Effect.andThen(Effect.suspend(() => trim(now) ?? Effect.void)),
        Effect.andThen(Effect.sync((): Step => {
          if (queue.length === 0) empty.openUnsafe()
          return 0
        })),
        Effect.catch((error) =>
          Effect.as(
            Effect.logError(`Deferred delivery "${name}": could not dead-letter, kept queued: ${error.message}`),
            retryMillis
          )
        )
      )
    }

    // Right after a failed delivery: was the sink healthy, so that the message is to blame? The health check says,
    // when there is one; otherwise the breaker does (still admitting calls after the failure).
    const healthCheck = options.healthCheck
    const sinkHealthy: Effect.Effect<boolean> = healthCheck === undefined
      ? Effect.map(breaker.state, blamesMessage)
      : Effect.map(Effect.exit(Effect.provideContext(healthCheck, context)), Exit.isSuccess)

    // One delivery through the breaker, classified. Run under the lock with interruption masked: `restore` lets the
    // sink and the health check be interrupted, and an interruption of this fiber (the caller's, or the scope closing)
    // becomes `Interrupted`, so that the message is still in hand to queue or keep. Its interruption stays pending and
    // takes effect once the mask ends. Run in the context `make` was given (the drainer is forked in it, `send` sets it
    // once): the sink's services are there. A sink that throws instead of returning an effect has failed the delivery
    // with a defect, as one that dies has. `then` takes the outcome: a delivery costs one step more than the sink's.
    const attempt = <X, EX, RX>(
      restore: Restore,
      message: S["Type"],
      delivery: Delivery,
      then: (outcome: Outcome) => Effect.Effect<X, EX, RX>
    ): Effect.Effect<X, EX, R | RX> =>
      Effect.matchCauseEffect(restore(breaker.protect(callUser(() => sink(message, delivery)))), {
        onSuccess: () => then(delivered),
        onFailure: (cause) => Effect.flatMap(outcomeOf(restore, cause, delivery), then)
      })
    // What a failed delivery says: interrupted, rejected here, or failed (permanently, or counted against it).
    const outcomeOf = (restore: Restore, cause: Cause.Cause<unknown>, delivery: Delivery): Effect.Effect<Outcome> => {
      if (Cause.hasInterruptsOnly(cause)) {
        // This fiber's interruption, or the sink's effect ending interrupted on its own (it joined a fiber that
        // something else interrupted): only this fiber's interruption is still pending, and shows here.
        return Effect.matchCauseEffect(restore(Effect.void), {
          onFailure: () => Effect.succeed(interrupted),
          onSuccess: () => failed(restore, false, "the sink ended interrupted (a fiber it waited on was interrupted)")
        })
      }
      const error = Cause.findErrorOption(cause)
      if (Option.isSome(error) && isLocalRejection(error.value)) {
        return Effect.succeed({ _tag: "Rejected", retryAfterMillis: retryAfterOf(error.value) })
      }
      let permanent = false
      if (Option.isSome(error) && options.isPermanent !== undefined) {
        try {
          permanent = options.isPermanent(error.value as E)
        } catch (defect) {
          // A bug in the predicate must not stop the queue: the failure counts as one that a retry may fix, and
          // the dead letter it may end as says why.
          return Effect.andThen(
            Effect.logError(
              `Deferred delivery "${name}": isPermanent threw on a failure of ${delivery.key}`,
              defect
            ),
            failed(restore, false, `${describe(cause)} (isPermanent threw ${show(defect)})`)
          )
        }
      }
      return failed(restore, permanent, describe(cause))
    }
    const failed = (
      restore: Restore,
      permanent: boolean,
      error: string
    ): Effect.Effect<Outcome> =>
      Effect.matchCause(restore(sinkHealthy), {
        onFailure: () => interrupted,
        onSuccess: (healthy): Outcome => ({ _tag: "Failed", counted: permanent || healthy, permanent, error })
      })

    // Delivers the head once, under the lock.
    const step: Effect.Effect<Step, never, R | S["DecodingServices"]> = Effect.uninterruptibleMask((restore) =>
      lock.withLock(restore, () => {
        const head = queue[0]
        if (head === undefined) {
          // Closed under the lock: an enqueue after this opens it again.
          wake.closeUnsafe()
          if (dead.size === 0) return Effect.succeed<Step>("Idle")
          return Effect.flatMap(Clock.currentTimeMillis, (now) => Effect.as(trim(now) ?? Effect.void, "Idle" as const))
        }
        return Effect.flatMap(Clock.currentTimeMillis, (now) => {
          // Dead letters past their retention go at each step (only the oldest is looked at, usually).
          const trimming = trim(now)
          if (trimming !== undefined) return Effect.as(trimming, 0)
          if (head.attempts >= maxAttempts) return deadLetter(head, head.lastError ?? "no error recorded", now)
          return Effect.flatMap(breaker.state, (state): Effect.Effect<Step, never, R | S["DecodingServices"]> => {
            // An open circuit is still tried: the breaker lets the first call after its open time through as the
            // probe, and turns the others away at no cost. Forced open, nothing gets through until a reset.
            if (state === "ForcedOpen") return Effect.succeed(retryMillis)
            // A message that does not decode is dead-lettered at once, rather than tried at the head for good.
            return Effect.flatMap(decodeStored(head.message), (decoded) => {
              if (decoded._tag === "Failure") {
                if (Cause.hasInterruptsOnly(decoded.cause)) {
                  // Decoding runs with interruption masked: this interruption is the schema's own (a fiber of a
                  // decoding service interrupted elsewhere), which says nothing about the stored text.
                  return Effect.as(
                    Effect.logError(
                      `Deferred delivery "${name}": decoding ${JSON.stringify(head.key)} was interrupted; retrying`,
                      decoded.cause
                    ),
                    retryMillis
                  )
                }
                const error = Cause.findErrorOption(decoded.cause)
                const why = Option.isSome(error) ? error.value.message : describe(decoded.cause)
                return deadLetter(head, `does not decode: ${why}`, now)
              }
              const delivery: Delivery = { key: head.key, attempt: head.attempts + 1, enqueuedAt: head.enqueuedAt }
              return attempt(restore, decoded.value, delivery, (outcome): Effect.Effect<Step> => {
                switch (outcome._tag) {
                  case "Interrupted":
                    // The scope is closing: the head stays as it is, to be delivered by the next process.
                    return Effect.succeed(retryMillis)
                  case "Delivered":
                    return Effect.as(
                      Effect.andThen(
                        removeLogged("q", head),
                        Effect.sync(() => {
                          queue.shift()
                          keys.delete(head.key)
                          stats.delivered++
                          if (queue.length === 0) empty.openUnsafe()
                        })
                      ),
                      0
                    )
                  case "Rejected":
                    stats.rejected++
                    return Effect.succeed(Math.max(retryMillis, outcome.retryAfterMillis))
                  case "Failed": {
                    stats.failed++
                    // A failure that opened the breaker says the sink is down: the failures before it, counted while
                    // it stayed closed, were most likely the same outage, and are forgiven.
                    const attempts = outcome.permanent ? maxAttempts : outcome.counted ? head.attempts + 1 : 0
                    const next: internal.Item = { ...head, attempts, lastError: outcome.error }
                    queue[0] = next
                    // Judged by when the failure came, not when the attempt started: a slow sink's failure may come
                    // after the message has waited `maxAge`.
                    return Effect.flatMap(Clock.currentTimeMillis, (failedAt): Effect.Effect<Step> => {
                      if (attempts >= maxAttempts) return deadLetter(next, outcome.error, failedAt)
                      if (failedAt - head.enqueuedAt >= maxAgeMillis) {
                        return deadLetter(
                          next,
                          `still failing after ${Duration.format(Duration.millis(maxAgeMillis))}: ${outcome.error}`,
                          failedAt
                        )
                      }
                      // The count survives a restart only if written; a failed write costs an extra attempt later.
                      return attempts === head.attempts
                        ? Effect.succeed(retryMillis)
                        : Effect.as(Effect.ignore(write("q", next)), retryMillis)
                    })
                  }
                }
              })
            })
          })
        })
      })
    )

    // A defect (in the journal, the breaker) must not stop delivery for good: it is logged, and the head tried again
    // after `retryInterval`. The sink's own defects never get here: they are failed attempts; nor the decoder's, which
    // dead-letter the message.
    const guardedStep: Effect.Effect<Step, never, R | S["DecodingServices"]> = Effect.catchCause(step, (cause) =>
      Cause.hasInterruptsOnly(cause)
        ? Effect.failCause(cause)
        : Effect.as(Effect.logError(`Deferred delivery "${name}": the drainer failed; retrying`, cause), retryMillis))
    const drainer: Effect.Effect<never, never, R | S["DecodingServices"]> = Effect.forever(
      Effect.andThen(
        wake.await,
        Effect.flatMap(guardedStep, (next) => typeof next === "number" && next > 0 ? Effect.sleep(next) : Effect.void)
      )
    )
    yield* Effect.forkScoped(drainer)

    // A message that took the lock, queued: its receipt once the journal has it.
    const queued = (
      key: string,
      encoded: unknown,
      enqueuedAt: number,
      attempts: number,
      lastError: string | undefined
    ): Effect.Effect<Receipt, DeferredDeliveryError> =>
      Effect.map(
        enqueue({ key, message: encoded, enqueuedAt, attempts, ...(lastError === undefined ? {} : { lastError }) }),
        (depth) => ({ _tag: "Queued", key, depth })
      )
    // The receipt of a message that took the lock, once its direct delivery ended with `outcome`.
    const afterDirect = (
      key: string,
      encoded: unknown,
      enqueuedAt: number,
      outcome: Outcome
    ): Effect.Effect<Receipt, DeferredDeliveryError> => {
      switch (outcome._tag) {
        case "Interrupted":
          // The caller gave up, not the message: the sink may or may not have it, so it is queued (the consumer
          // drops a duplicate by its key), and the caller is interrupted once it is written.
          return queued(key, encoded, enqueuedAt, 0, "interrupted during a direct delivery")
        case "Delivered":
          stats.delivered++
          stats.deliveredDirect++
          return Effect.succeed({ _tag: "Delivered", key })
        case "Rejected":
          stats.rejected++
          return queued(key, encoded, enqueuedAt, 0, undefined)
        case "Failed":
          stats.failed++
          return queued(
            key,
            encoded,
            enqueuedAt,
            outcome.permanent ? maxAttempts : outcome.counted ? 1 : 0,
            outcome.error
          )
      }
    }

    // Under the lock: a duplicate, a direct delivery when nothing is queued and the sink is not to blame, else the
    // journal. Written with combinators, not a generator: every `send` of a request path runs it.
    const readState = stateReaders.get(breaker)
    const deliverOrQueue = (
      restore: Restore,
      fiber: Fiber.Fiber<unknown, unknown>,
      message: S["Type"],
      key: string,
      encoded: unknown,
      enqueuedAt: number
    ): Effect.Effect<Receipt, DeferredDeliveryError, R> => {
      if (keys.has(key)) {
        // The key of a dead letter past its retention is freed here, however idle the queue has been: this is a
        // new message. Not on the way of a `send` whose key is free.
        const trimming = dead.has(key) ? trim(enqueuedAt, key) : undefined
        if (trimming !== undefined) {
          return Effect.andThen(
            trimming,
            Effect.suspend(() => deliverOrQueue(restore, fiber, message, key, encoded, enqueuedAt))
          )
        }
        stats.duplicates++
        return Effect.succeed({ _tag: "Duplicate", key })
      }
      if (queue.length !== 0) return queued(key, encoded, enqueuedAt, 0, undefined)
      const decide = (state: CircuitBreaker.State): Effect.Effect<Receipt, DeferredDeliveryError, R> =>
        blamesMessage(state)
          ? attempt(
            restore,
            message,
            { key, attempt: 1, enqueuedAt },
            (outcome) => afterDirect(key, encoded, enqueuedAt, outcome)
          )
          : queued(key, encoded, enqueuedAt, 0, undefined)
      // Read synchronously on this package's breakers: the direct delivery pays a function call, not an effect.
      return readState === undefined
        ? Effect.flatMap(breaker.state, decide)
        : decide(readState(fiber))
    }

    // The usual `send`: the lock free, nothing queued, the breaker's circuit closed with nothing to publish. The lock
    // is taken and the breaker admits the call with no effect step of either (what `lock.withLock` and
    // `breaker.protect` would take: about a third of a `send`), and the delivery settles both in one handler.
    // Undefined, with nothing taken, for any other `send`: it goes through `deliverOrQueue`.
    const admission = admissions.get(breaker)
    const direct = (
      restore: Restore,
      fiber: Fiber.Fiber<unknown, unknown>,
      message: S["Type"],
      key: string,
      encoded: unknown,
      enqueuedAt: number
    ): Effect.Effect<Receipt, DeferredDeliveryError, R> | undefined => {
      if (admission === undefined || queue.length !== 0 || keys.has(key) || !lock.tryHold()) return undefined
      const admitted = admission.admit(fiber)
      if (admitted === undefined) {
        lock.release()
        return undefined
      }
      // Masked from here to the handler: the lock and the admission are given back whatever ends the delivery.
      const delivery = { key, attempt: 1, enqueuedAt }
      const failedWith = (cause: Cause.Cause<unknown>) =>
        Effect.flatMap(outcomeOf(restore, cause, delivery), (outcome) => afterDirect(key, encoded, enqueuedAt, outcome))
      // What the breaker publishes runs first, and a predicate of the user's that threw there fails the delivery, as
      // it fails a protected call.
      const publishing = (after: Effect.Effect<void>, exit: Exit.Exit<unknown, unknown>) =>
        Effect.matchCauseEffect(Effect.ensuring(exit, after), {
          onSuccess: () => afterDirect(key, encoded, enqueuedAt, delivered),
          onFailure: failedWith
        })
      return Effect.onExitPrimitive(
        Effect.matchCauseEffect(restore(callUser(() => sink(message, delivery))), {
          onSuccess: (value) => {
            const exit = Exit.succeed(value)
            const after = admitted.exit(fiber, exit)
            return after === undefined ? afterDirect(key, encoded, enqueuedAt, delivered) : publishing(after, exit)
          },
          onFailure: (cause) => {
            const exit = Exit.failCause(cause)
            const after = admitted.exit(fiber, exit)
            return after === undefined ? failedWith(cause) : publishing(after, exit)
          }
        }),
        lock.release,
        true
      )
    }

    // The bytes of the journal entry a message would take, as `RecordJson` writes it (the message is JSON already),
    // without a second encoding; 0 when it is certainly under the cap.
    const entryBytes = (key: string, encoded: unknown, enqueuedAt: number): number => {
      // The bound of the whole entry is the envelope's plus the key's and the message's: no entry is built for it.
      const message = internal.jsonBytesBound(encoded)
      if (message !== undefined && envelopeBound + 6 * key.length + message <= maxMessageBytes) return 0
      const record = { key, message: encoded, enqueuedAt, attempts: maxAttempts, lastError: "" }
      const entry = JSON.stringify(record)
      // A UTF-16 unit takes at most 3 bytes: a short entry needs no byte count.
      return entry.length * 3 <= maxMessageBytes ? 0 : internal.byteLength(entry)
    }

    // A direct delivery runs in the context `make` was given, as a drained one does, under the caller's span. Set,
    // not merged with the caller's: a merge copies both contexts into a new map, tens of thousands of instructions
    // on every `send`, a request's largest single cost here.
    const makeSpan = Context.getOrUndefined(context, Tracer.ParentSpan)
    const inMakeContext = <A, X>(effect: Effect.Effect<A, X, R | S["EncodingServices"]>): Effect.Effect<A, X> =>
      Effect.updateContext(effect, (caller: Context.Context<never>) => {
        const span = Context.getOrUndefined(caller, Tracer.ParentSpan)
        return span === undefined || span === makeSpan ? context : Context.add(context, Tracer.ParentSpan, span)
      })

    const send = (
      message: S["Type"],
      sendOptions?: { readonly key?: string | undefined }
    ): Effect.Effect<Receipt, DeferredDeliveryError> =>
      // In the context `make` was given, set once for the encoding and the direct delivery (see `inMakeContext`), and
      // masked for the lock (see `Lock`): the key, the clock and (for a schema that needs no effect, the usual one) the
      // encoding are read, and the lock taken when free, in one step.
      inMakeContext(Effect.uninterruptibleMask((restore) => {
        const fiber = Fiber.getCurrent()!
        const key = sendOptions?.key ?? randomKey(fiber)
        if (key.length === 0 || internal.byteLength(key) > MAX_KEY_BYTES) {
          return Effect.fail(
            fail("BadMessage", `Expected a non-empty key of at most ${MAX_KEY_BYTES} bytes`, { key, field: "key" })
          )
        }
        const clock = fiber.getRef(Clock.Clock)
        const accept = (encoded: unknown): Effect.Effect<Receipt, DeferredDeliveryError, R> => {
          const enqueuedAt = clock.currentTimeMillisUnsafe()
          // Measured before anything is tried, so that a message is refused or accepted whatever the sink's health.
          // A message certainly under the cap (the usual one) is not even encoded: see `entryBytes`.
          const bytes = entryBytes(key, encoded, enqueuedAt)
          if (bytes > maxMessageBytes) {
            return Effect.fail(
              fail("TooLarge", `the entry takes ${bytes} bytes, more than maxMessageBytes (${maxMessageBytes})`, {
                key,
                field: "maxMessageBytes"
              })
            )
          }
          return direct(restore, fiber, message, key, encoded, enqueuedAt) ??
            lock.withLock(restore, () => deliverOrQueue(restore, fiber, message, key, encoded, enqueuedAt))
        }
        const encoding = encodeMessage(message)
        return isSucceeded(encoding)
          ? accept(encoding.value)
          : Effect.flatMap(
            restore(Effect.mapError(encoding, (error) => fail("BadMessage", error.message, { key, field: "message" }))),
            accept
          )
      }))

    const replay = (key: string): Effect.Effect<boolean, DeferredDeliveryError> =>
      Effect.uninterruptibleMask((restore) =>
        lock.withLock(restore, () => {
          const item = dead.get(key)
          if (item === undefined) return Effect.succeed(false)
          return Effect.flatMap(Clock.currentTimeMillis, (now) =>
            Effect.gen(function*() {
              // Queued first, then the dead letter removed: a crash in between keeps the queued one (the later).
              keys.delete(key)
              yield* Effect.onError(
                enqueue({ key, message: item.message, enqueuedAt: now, attempts: 0 }),
                () => Effect.sync(() => keys.add(key))
              )
              dead.delete(key)
              yield* removeLogged("d", item)
              return true
            }))
        })
      )

    const drop = (key: string): Effect.Effect<boolean, DeferredDeliveryError> =>
      Effect.uninterruptibleMask((restore) =>
        lock.withLock(restore, () => {
          const item = dead.get(key)
          if (item === undefined) return Effect.succeed(false)
          return Effect.as(
            Effect.andThen(
              Effect.mapError(store.remove(internal.keyOf(name, "d", item.seq)), storeError(key)),
              Effect.sync(() => {
                dead.delete(key)
                keys.delete(key)
              })
            ),
            true
          )
        })
      )

    const deadLetters: Effect.Effect<ReadonlyArray<DeadLetter<S["Type"]>>> = Effect.suspend(() =>
      Effect.forEach(
        [...dead.values()].sort(internal.bySeq),
        (item) =>
          Effect.map(
            Effect.provideContext(decodeStored(item.message), context),
            (decoded): DeadLetter<S["Type"]> => ({
              key: item.key,
              message: Exit.isSuccess(decoded) ? Option.some(decoded.value) : Option.none(),
              attempts: item.attempts,
              lastError: item.lastError ?? "",
              enqueuedAt: item.enqueuedAt,
              deadAt: deadAtOf(item)
            })
          )
      )
    )

    const oldestAge = (now: number): number | null => queue.length === 0 ? null : Math.max(0, now - queue[0].enqueuedAt)

    const snapshot: Effect.Effect<Snapshot> = Effect.map(Clock.currentTimeMillis, (now) => {
      const head = queue[0]
      return {
        name,
        depth: queue.length,
        oldestAgeMillis: oldestAge(now),
        enqueued: stats.enqueued,
        delivered: stats.delivered,
        deliveredDirect: stats.deliveredDirect,
        failedAttempts: stats.failed,
        rejectedAttempts: stats.rejected,
        deadLettered: stats.deadLettered,
        deadLetters: dead.size,
        deadLettersDropped: stats.deadLettersDropped,
        duplicates: stats.duplicates,
        head: head === undefined ? null : { key: head.key, attempts: head.attempts, lastError: head.lastError ?? null }
      }
    })

    const clock = yield* Clock.Clock
    const by = { policy: name }
    const attemptsTotal = (outcome: string, get: () => number) =>
      metrics.counter("deferred_delivery_attempts_total", "Delivery attempts, by outcome", { ...by, outcome }, get)
    yield* metrics.register([
      metrics.gauge("deferred_delivery_depth", "Messages queued", by, () => queue.length),
      metrics.gauge(
        "deferred_delivery_oldest_age_seconds",
        "Age of the oldest queued message (0 when empty)",
        by,
        () => (oldestAge(clock.currentTimeMillisUnsafe()) ?? 0) / 1000
      ),
      attemptsTotal("Delivered", () => stats.delivered),
      attemptsTotal("Failed", () => stats.failed),
      attemptsTotal("Rejected", () => stats.rejected),
      metrics.gauge("deferred_delivery_dead_letters", "Dead letters held", by, () => dead.size),
      metrics.counter(
        "deferred_delivery_dead_letters_dropped_total",
        "Dead letters dropped past maxDeadLetters or deadLetterRetention",
        by,
        () => stats.deadLettersDropped
      ),
      metrics.counter("deferred_delivery_enqueued_total", "Messages queued", by, () => stats.enqueued)
    ])

    return {
      [TypeId]: TypeId,
      name,
      send,
      snapshot,
      deadLetters,
      replay,
      drop,
      awaitEmpty: empty.await
    } satisfies DeferredDelivery<S["Type"]>
  })
