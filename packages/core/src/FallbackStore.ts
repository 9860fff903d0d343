/**
 * A key-value store of last good values for degraded responses: strings by key, with a TTL, kept on the local disk
 * so that they survive a restart, written atomically, checksummed, and bounded in size. `layerMemory` has the same
 * semantics in memory, for tests.
 *
 * **Details**
 *
 * - One file per key in `directory` (default `.data`, created with mode 0700 if missing). The file name is `k`
 *   followed by the lower-case hex of the key's UTF-8 bytes when they are at most 100, and `h` followed by the hex
 *   SHA-256 of those bytes for longer keys. Names hold only `[0-9a-fhk]`: no key can name a path outside the
 *   directory (`../../etc/passwd`, `a/b`, NUL), names are at most 201 characters, and two keys never share a file
 *   (inline names are injective, even on case-insensitive file systems; hashed names would need a SHA-256
 *   collision, and the full key stored in the entry is checked on every read anyway). Every string is a valid key,
 *   `""` included. Strings are encoded as WTF-8 (UTF-8 that also encodes lone surrogates), so any JavaScript string,
 *   key or value, comes back exactly as it went in.
 * - File content: the header `FBS1 <crc32> <expiresAt|-> <writtenAt> <key bytes> <value bytes>\n`, then the key,
 *   `\n`, and the value. `crc32` (8 hex digits, IEEE CRC-32) covers everything after it; times are epoch
 *   milliseconds from `Clock`. A CRC-32 detects every burst error up to 32 bits and all but 1 in 4 billion others,
 *   which is what accidental corruption (a torn page, a flipped bit) needs. The CRC-32 (`crc-32`) and the SHA-256
 *   of long keys (`@noble/hashes`, audited) come from pure JavaScript libraries, so core needs no `node:crypto` and
 *   no asynchronous Web Crypto call on each read.
 * - Writes are atomic: the entry goes to a temporary file in the same directory (`tmp-*.tmp`, created exclusively,
 *   mode 0600), is flushed with `fsync`, then renamed over the entry, and the directory is synced (best effort). A
 *   reader sees the old entry or the new one, never part of one. A failed or interrupted write removes its
 *   temporary file and leaves the old entry as it was; interruption takes effect between the steps, never inside a
 *   system call. Temporary files left by a crash are removed when the store starts.
 * - Reads verify everything: an entry with a bad checksum, a bad header, the wrong length (truncated) or another
 *   key's name is corrupt. It is not served (`get` gives `None`), it is removed, and it is reported with a warning
 *   log and the `fallback_store_corrupt_total` metric. Corrupt entries found when the store starts are handled the
 *   same way.
 * - Expiry: `set` with `ttl` stores `expiresAt = now + ttl` in the entry; from that instant on (inclusive) the entry
 *   is not served nor listed. A background fiber (interrupted with the layer's scope) removes expired entries every
 *   `sweepInterval` (default 1 minute); `sweep` does it at once. Without `ttl` an entry never expires.
 * - Size cap: `maxEntries` and `maxBytes` (bytes of entry files, header and key included) bound the store. After a
 *   `set`, while the store is over either cap, entries are evicted: expired ones first, then the ones closest to
 *   expiry (entries without a TTL last), then the least recently written; never the entry just written. An entry
 *   larger than `maxBytes` on its own fails with `TooLarge`. The new entry is written before others are evicted, so
 *   a failed write evicts nothing.
 * - Errors are typed: `FallbackStoreError` with `reason` `DiskFull` (ENOSPC, EDQUOT), `ReadOnly` (EROFS),
 *   `PermissionDenied` (EACCES, EPERM, e.g. an immutable directory), `TooLarge`, `BadArgument` (a ttl that is not a
 *   positive duration, a `directory` that is not a directory), `Locked` (see below) or `Io`, and the key; the
 *   message names the file, or the directory for `DiskFull` and `ReadOnly`. `keys` and `size` cannot fail. Storage
 *   trouble (`DiskFull`, `ReadOnly`, `PermissionDenied`, `Io`) is also logged by the store as a warning (annotated
 *   `fallbackStore`, `reason`), since callers of a cache often drop a failed write: once per reason and minute at
 *   most, the next warning counting the failures in between.
 * - One store per directory: `make` takes an exclusive lock on the directory before it touches anything in it, a file
 *   `.fallback-store.lock` holding the process id, written whole and then hard-linked into place (so never seen half
 *   written), and removes it when the scope closes. Another store on the directory, in this process or another, fails
 *   at once with `Locked`, `holder` being the process that holds it. A lock whose process is gone (a crash, a
 *   SIGKILL) is stale: it is taken over, with a warning log. So is a lock that names this process but none of its
 *   open stores: an earlier process with the same id left it (a container's PID 1, restarted after a SIGKILL). On a
 *   read-only file system no lock is taken: nothing can write there.
 *
 * **Gotchas**
 *
 * - The lock tells a live holder by its process id on this machine: do not share a directory across machines (a
 *   network file system) or between containers, whose process ids are their own. A dead holder's id reused by an
 *   unrelated process keeps the lock held until that process ends; remove the `.fallback-store.lock` file by hand
 *   then.
 * - The store keeps an index of its entries (key, expiry, size), loaded when it starts: `keys`, `size`, the cap and
 *   misses use it.
 * - Expiry is stored in the entry and read from `Clock`, never from file times, so a `TestClock` drives it; after
 *   a restart an entry expires when the clock passes the time stored in it.
 * - `clear` removes the store's own files (entries and temporary files) and leaves anything else in the directory.
 *
 * **Example** (Serving the last good price while the pricing service is down)
 *
 * ```ts
 * import { FallbackStore } from "@effect-resilience/core"
 * import { Data, Effect, Option } from "effect"
 *
 * class PricingDown extends Data.TaggedError("PricingDown") {}
 *
 * const price = (sku: string, fetch: Effect.Effect<string, PricingDown>) =>
 *   Effect.gen(function*() {
 *     const store = yield* FallbackStore.FallbackStore
 *     return yield* fetch.pipe(
 *       Effect.tap((fresh) => store.set(`price:${sku}`, fresh, { ttl: "1 day" })),
 *       Effect.catchTag("PricingDown", (e) =>
 *         store.get(`price:${sku}`).pipe(
 *           Effect.flatMap(Option.match({ onNone: () => Effect.fail(e), onSome: Effect.succeed }))
 *         ))
 *     )
 *   })
 * ```
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import * as Config from "effect/Config"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FileSystem from "effect/FileSystem"
import { dual } from "effect/Function"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Path from "effect/Path"
import type { PlatformError } from "effect/PlatformError"
import * as Random from "effect/Random"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Semaphore from "effect/Semaphore"
import * as internal from "./internal/fallbackStore.ts"
import * as metrics from "./internal/metrics.ts"
import {
  decode,
  DurationInput,
  millisOf,
  orDefault,
  type PolicyConfigError,
  PositiveInt,
  withVariables
} from "./PolicyConfig.ts"

/**
 * The brand every fallback store carries.
 *
 * @example
 * ```ts
 * import { FallbackStore } from "@effect-resilience/core"
 *
 * const isStore = (u: object) => FallbackStore.TypeId in u
 * ```
 *
 * @since 0.1.0
 * @category type IDs
 */
export const TypeId: TypeId = "~@effect-resilience/core/FallbackStore"

/**
 * The type of `TypeId`.
 *
 * @example
 * ```ts
 * import type { FallbackStore } from "@effect-resilience/core"
 *
 * type Id = FallbackStore.TypeId // "~@effect-resilience/core/FallbackStore"
 * ```
 *
 * @since 0.1.0
 * @category type IDs
 */
export type TypeId = "~@effect-resilience/core/FallbackStore"

// -----------------------------------------------------------------------------
// models
// -----------------------------------------------------------------------------

/**
 * Options of one `set`.
 *
 * @example
 * ```ts
 * import type { FallbackStore } from "@effect-resilience/core"
 *
 * const oneHour: FallbackStore.SetOptions = { ttl: "1 hour" }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface SetOptions {
  /** How long the entry is served (a positive duration; `Duration.infinity` for ever). Default: no expiry. */
  readonly ttl?: Duration.Input | undefined
}

/**
 * Options of the in-memory store (`makeMemory`, `layerMemory`).
 *
 * @example
 * ```ts
 * import type { FallbackStore } from "@effect-resilience/core"
 *
 * const options: FallbackStore.MemoryOptions = { maxEntries: 100, sweepInterval: "10 seconds" }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface MemoryOptions {
  /** Names the store in logs and in the `policy` attribute of its metrics. Default: `"memory"`. */
  readonly name?: string | undefined
  /** At most this many entries (a positive integer). Default: no limit. */
  readonly maxEntries?: number | undefined
  /** At most this many bytes of entries, counted as the file store stores them (a positive integer). No limit by default. */
  readonly maxBytes?: number | undefined
  /** How often the background fiber removes expired entries (positive). Default: 1 minute. */
  readonly sweepInterval?: Duration.Input | undefined
}

/**
 * Options of the file store (`make`, `layer`).
 *
 * @example
 * ```ts
 * import type { FallbackStore } from "@effect-resilience/core"
 *
 * const options: FallbackStore.Options = { directory: "/var/lib/app/fallback", maxBytes: 50 * 1024 * 1024 }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Options extends Omit<MemoryOptions, "name"> {
  /**
   * The directory of the entries, created if missing, locked for this store while it is open; relative paths
   * resolve once, at start. Default (when `undefined`; `null` is rejected): `".data"`.
   */
  readonly directory?: string | undefined
  /** Names the store in logs and in the `policy` attribute of its metrics. Default: the directory as given. */
  readonly name?: string | undefined
}

/**
 * A fallback store. See the module docs for the semantics.
 *
 * @example
 * ```ts
 * import type { FallbackStore } from "@effect-resilience/core"
 * import { Effect, Option } from "effect"
 *
 * const lastGood = (store: FallbackStore.FallbackStore, key: string) =>
 *   store.get(key).pipe(Effect.map(Option.getOrElse(() => "unknown")))
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface FallbackStore {
  readonly [TypeId]: TypeId
  readonly name: string
  /** The live value of `key`: `None` if absent, expired or corrupt (a corrupt entry is also removed and reported). */
  readonly get: (key: string) => Effect.Effect<Option.Option<string>, FallbackStoreError>
  /** Stores `value` under `key` atomically, replacing any entry; may evict others to stay within the caps. */
  readonly set: (key: string, value: string, options?: SetOptions) => Effect.Effect<void, FallbackStoreError>
  /** Removes `key`; removing an absent key succeeds. */
  readonly remove: (key: string) => Effect.Effect<void, FallbackStoreError>
  /** Whether `get(key)` would give a value (it reads and verifies the entry). */
  readonly has: (key: string) => Effect.Effect<boolean, FallbackStoreError>
  /** The keys of the live entries, in no particular order. */
  readonly keys: Effect.Effect<ReadonlyArray<string>>
  /** The number of live entries. */
  readonly size: Effect.Effect<number>
  /** Removes every entry. */
  readonly clear: Effect.Effect<void, FallbackStoreError>
  /** Removes expired entries now, as the background fiber does every `sweepInterval`; gives how many it removed. */
  readonly sweep: Effect.Effect<number>
}

/**
 * The `FallbackStore` in context.
 *
 * @example
 * ```ts
 * import { FallbackStore } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * const program = Effect.gen(function*() {
 *   const store = yield* FallbackStore.FallbackStore
 *   yield* store.set("greeting", "hello")
 *   return yield* store.get("greeting")
 * }).pipe(Effect.provide(FallbackStore.layerMemory()))
 * ```
 *
 * @since 0.1.0
 * @category services
 */
export const FallbackStore: Context.Service<FallbackStore, FallbackStore> = Context.Service<FallbackStore>(
  "@effect-resilience/core/FallbackStore"
)

// -----------------------------------------------------------------------------
// errors
// -----------------------------------------------------------------------------

/**
 * Why a store operation failed.
 *
 * @example
 * ```ts
 * import type { FallbackStore } from "@effect-resilience/core"
 *
 * const worthAlerting = (reason: FallbackStore.ErrorReason) => reason === "DiskFull" || reason === "ReadOnly"
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export type ErrorReason = "DiskFull" | "ReadOnly" | "PermissionDenied" | "TooLarge" | "BadArgument" | "Locked" | "Io"

/**
 * A store operation that failed, with no harm done: a failed `set` leaves the old entry and no temporary file.
 * `reason` says why (see `ErrorReason`), `operation` what was attempted (`open` is the store starting), `key`
 * which entry, `holder` (with `Locked`) the process that holds the directory.
 *
 * @example
 * ```ts
 * import { FallbackStore } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * const remember = (store: FallbackStore.FallbackStore, key: string, value: string) =>
 *   store.set(key, value).pipe(
 *     Effect.catchTag("FallbackStoreError", (e) => Effect.logWarning(`not cached (${e.reason}): ${e.message}`))
 *   )
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export class FallbackStoreError extends Schema.TaggedError<FallbackStoreError>()("FallbackStoreError", {
  reason: Schema.Literals(["DiskFull", "ReadOnly", "PermissionDenied", "TooLarge", "BadArgument", "Locked", "Io"]),
  operation: Schema.Literals(["open", "get", "set", "remove", "clear"]),
  key: Schema.optional(Schema.String),
  /** With `Locked`: the id of the process whose store holds the directory. */
  holder: Schema.optional(Schema.Number),
  description: Schema.String,
  cause: Schema.optional(Schema.Defect())
}) {
  override get message(): string {
    const what = this.key === undefined ? this.operation : `${this.operation} ${JSON.stringify(preview(this.key))}`
    return `Fallback store could not ${what}: ${this.description}`
  }
}

// Keys can be 10,000 characters long; messages and logs show their start.
const preview = (key: string): string => key.length > 80 ? `${key.slice(0, 80)}…` : key

type Operation = FallbackStoreError["operation"]

const codeOf = (error: PlatformError): string | undefined => {
  const cause = error.reason.cause
  if (typeof cause !== "object" || cause === null || !("code" in cause)) return undefined
  return typeof cause.code === "string" ? cause.code : undefined
}

// Platform errors name the file (which holds the directory); a full or read-only disk is the directory's, named here,
// so that of several stores the operator can tell whose.
const errorOf =
  (directory: string, operation: Operation, key?: string) => (error: PlatformError): FallbackStoreError => {
    const code = codeOf(error)
    const reason: ErrorReason = code === "ENOSPC" || code === "EDQUOT"
      ? "DiskFull"
      : code === "EROFS"
      ? "ReadOnly"
      : code === "EACCES" || code === "EPERM" || error.reason._tag === "PermissionDenied"
      ? "PermissionDenied"
      : "Io"
    const description = reason === "DiskFull"
      ? `the disk is full (${code}) in directory ${JSON.stringify(directory)}`
      : reason === "ReadOnly"
      ? `the file system is read-only (${code}) in directory ${JSON.stringify(directory)}`
      : reason === "PermissionDenied"
      ? `permission denied${code === undefined ? "" : ` (${code})`}: ${error.message}`
      : error.message
    return new FallbackStoreError({
      reason,
      operation,
      ...(key === undefined ? {} : { key }),
      description,
      cause: error
    })
  }

// -----------------------------------------------------------------------------
// typed view
// -----------------------------------------------------------------------------

/**
 * A view of a store that keeps values of a Schema as JSON.
 *
 * @example
 * ```ts
 * import type { FallbackStore } from "@effect-resilience/core"
 * import { Schema } from "effect"
 *
 * const Prices = Schema.Record(Schema.String, Schema.Number)
 *
 * type PriceStore = FallbackStore.SchemaStore<typeof Prices>
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface SchemaStore<S extends Schema.Constraint> {
  /** The live value of `key`, decoded; a value that no longer decodes fails with `SchemaError`. */
  readonly get: (
    key: string
  ) => Effect.Effect<Option.Option<S["Type"]>, FallbackStoreError | Schema.SchemaError, S["DecodingServices"]>
  readonly set: (
    key: string,
    value: S["Type"],
    options?: SetOptions
  ) => Effect.Effect<void, FallbackStoreError | Schema.SchemaError, S["EncodingServices"]>
  readonly remove: (key: string) => Effect.Effect<void, FallbackStoreError>
  readonly has: (key: string) => Effect.Effect<boolean, FallbackStoreError>
  readonly keys: Effect.Effect<ReadonlyArray<string>>
  readonly size: Effect.Effect<number>
  readonly clear: Effect.Effect<void, FallbackStoreError>
}

/**
 * Views a store through a Schema: values are encoded to JSON by `set` and decoded by `get`, like
 * `KeyValueStore.toSchemaStore`.
 *
 * @example
 * ```ts
 * import { FallbackStore } from "@effect-resilience/core"
 * import { Effect, Schema } from "effect"
 *
 * const Quote = Schema.Struct({ sku: Schema.String, cents: Schema.Int })
 *
 * const program = Effect.gen(function*() {
 *   const quotes = FallbackStore.toSchemaStore(yield* FallbackStore.FallbackStore, Quote)
 *   yield* quotes.set("sku-1", { sku: "sku-1", cents: 1999 }, { ttl: "1 day" })
 *   return yield* quotes.get("sku-1") // Option.some({ sku: "sku-1", cents: 1999 })
 * })
 * ```
 *
 * @since 0.1.0
 * @category combinators
 */
export const toSchemaStore: {
  <S extends Schema.Constraint>(schema: S): (self: FallbackStore) => SchemaStore<S>
  <S extends Schema.Constraint>(self: FallbackStore, schema: S): SchemaStore<S>
} = dual(2, <S extends Schema.Constraint>(self: FallbackStore, schema: S): SchemaStore<S> => {
  const json = Schema.fromJsonString(Schema.toCodecJson(schema))
  const decodeValue = Schema.decodeEffect(json)
  const encode = Schema.encodeEffect(json)
  return {
    get: (key) =>
      Effect.flatMap(
        self.get(key),
        Option.match({ onNone: () => Effect.succeedNone, onSome: (value) => Effect.asSome(decodeValue(value)) })
      ),
    set: (key, value, options) => Effect.flatMap(encode(value), (encoded) => self.set(key, encoded, options)),
    remove: self.remove,
    has: self.has,
    keys: self.keys,
    size: self.size,
    clear: self.clear
  }
})

// -----------------------------------------------------------------------------
// validation
// -----------------------------------------------------------------------------

const NoNul = Schema.makeFilter((s: string) => s.includes("\0") ? "Expected a path without NUL characters" : undefined)

const OptionsSchema = Schema.Struct({
  name: Schema.NonEmptyString,
  directory: Schema.NonEmptyString.check(NoNul),
  maxEntries: Schema.optional(PositiveInt),
  maxBytes: Schema.optional(PositiveInt),
  sweepInterval: DurationInput({ positive: true })
})

interface Settings {
  readonly name: string
  readonly directory: string
  readonly maxEntries: number
  readonly maxBytes: number
  readonly sweepMillis: number
}

const DEFAULT_DIRECTORY = ".data"

const resolve = (options: Options): Effect.Effect<Settings, PolicyConfigError> => {
  const directory = orDefault(options.directory, DEFAULT_DIRECTORY)
  // A bad directory is reported once, on `directory`, not again on the name it would have given (an empty one
  // would make an empty name).
  const name = orDefault(options.name, String(directory) || "(no directory)")
  const raw = {
    name,
    directory,
    ...(options.maxEntries === undefined ? {} : { maxEntries: options.maxEntries }),
    ...(options.maxBytes === undefined ? {} : { maxBytes: options.maxBytes }),
    sweepInterval: orDefault(options.sweepInterval, "1 minute")
  }
  return decode(OptionsSchema, raw, { kind: "fallback store", policy: String(name) }).pipe(
    Effect.map((decoded): Settings => ({
      name: decoded.name,
      directory: decoded.directory,
      maxEntries: decoded.maxEntries ?? Infinity,
      maxBytes: decoded.maxBytes ?? Infinity,
      sweepMillis: millisOf(decoded.sweepInterval as Duration.Input)
    }))
  )
}

// The expiry of an entry written at `now`: Infinity without a TTL (or one too far to store), undefined if invalid.
const expiryOf = (ttl: Duration.Input | undefined, now: number): number | undefined => {
  if (ttl === undefined) return Infinity
  const duration = Duration.fromInput(ttl)
  if (Option.isNone(duration)) return undefined
  const millis = Duration.toMillis(duration.value)
  if (!(millis > 0)) return undefined
  const expiresAt = now + Math.ceil(millis)
  return expiresAt > Number.MAX_SAFE_INTEGER ? Infinity : expiresAt
}

// -----------------------------------------------------------------------------
// the store, over a backend
// -----------------------------------------------------------------------------

type Read = { readonly _tag: "Missing" } | internal.Decoded

const MISSING: Read = { _tag: "Missing" }

type Restore = <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>

/** Where the entries live: files, or a map. The store serialises every call but `read`. */
interface Backend {
  readonly read: (key: string) => Effect.Effect<Read, FallbackStoreError>
  /** Writes all of `entry` or nothing; `restore` marks the points where the write may be interrupted. */
  readonly write: (entry: internal.Entry, restore: Restore) => Effect.Effect<void, FallbackStoreError>
  readonly remove: (key: string, operation: Operation) => Effect.Effect<void, FallbackStoreError>
  readonly clear: Effect.Effect<void, FallbackStoreError>
}

class Stats {
  corrupt = 0
  expired = 0
  capacity = 0
  hits = 0
  misses = 0
}

// The reasons that are the storage's (not the caller's) and how often each is logged.
const STORAGE_TROUBLE: ReadonlySet<ErrorReason> = new Set(["DiskFull", "ReadOnly", "PermissionDenied", "Io"])
const TROUBLE_LOG_MILLIS = 60_000

const reportCorrupt = (name: string, key: string, reason: string, removed: boolean): Effect.Effect<void> =>
  Effect.logWarning(
    `Fallback store "${name}": corrupt entry for ${JSON.stringify(preview(key))} (${reason}) ${
      removed ? "removed" : "could not be removed; not served"
    }`
  ).pipe(Effect.annotateLogs({ fallbackStore: name, reason }))

const assemble = Effect.fnUntraced(function*(
  settings: Settings,
  backend: Backend,
  index: internal.Index,
  stats: Stats
) {
  const { maxBytes, maxEntries, name } = settings
  const lock = yield* Semaphore.make(1)

  const removeLogged = (key: string, what: string): Effect.Effect<boolean> =>
    backend.remove(key, "remove").pipe(
      Effect.as(true),
      Effect.catch((error) =>
        Effect.as(Effect.logWarning(`Fallback store "${name}": could not remove ${what}: ${error.message}`), false)
      )
    )

  // Under the lock: drops the entry a read found missing or corrupt, unless a write replaced it since (`seq`).
  const discard = (key: string, seq: number, corrupt: string | undefined): Effect.Effect<void> =>
    lock.withPermit(Effect.uninterruptible(Effect.suspend(() => {
      const meta = index.entries.get(key)
      if (meta === undefined || meta.seq !== seq) return Effect.void
      index.delete(key)
      if (corrupt === undefined) return Effect.void
      stats.corrupt++
      return Effect.flatMap(
        removeLogged(key, "a corrupt entry"),
        (removed) => reportCorrupt(name, key, corrupt, removed)
      )
    })))

  const get = (key: string): Effect.Effect<Option.Option<string>, FallbackStoreError> =>
    Effect.withFiber((fiber) => {
      const meta = index.entries.get(key)
      if (meta === undefined) {
        stats.misses++
        return Effect.succeedNone
      }
      const now = fiber.getRef(Clock.Clock).currentTimeMillisUnsafe()
      if (internal.isExpired(meta, now)) {
        stats.misses++
        return Effect.succeedNone
      }
      return Effect.flatMap(backend.read(key), (read): Effect.Effect<Option.Option<string>> => {
        if (read._tag === "Valid" && read.entry.key === key) {
          if (internal.isExpired(read.entry, now)) {
            stats.misses++
            return Effect.succeedNone
          }
          stats.hits++
          return Effect.succeedSome(read.entry.value)
        }
        stats.misses++
        const corrupt = read._tag === "Missing"
          ? undefined
          : read._tag === "Corrupt"
          ? read.reason
          : `holds the key ${JSON.stringify(preview(read.entry.key))}`
        return Effect.as(discard(key, meta.seq, corrupt), Option.none())
      })
    })

  // While over a cap: evicts (see `Index.victim`), never `keep`. An entry that cannot be removed is forgotten
  // anyway, with a warning: it is no longer served, and it comes back only if the store restarts.
  const evict = (now: number, keep: string | undefined): Effect.Effect<void> =>
    Effect.suspend(() => {
      const victim = index.victim(maxEntries, maxBytes, keep)
      if (victim === undefined) return Effect.void
      const expired = internal.isExpired(index.entries.get(victim)!, now)
      index.delete(victim)
      if (expired) stats.expired++
      else stats.capacity++
      return Effect.andThen(removeLogged(victim, "an evicted entry"), evict(now, keep))
    })

  const set = (key: string, value: string, options?: SetOptions): Effect.Effect<void, FallbackStoreError> =>
    lock.withPermit(Effect.uninterruptibleMask((restore) =>
      Effect.flatMap(Clock.currentTimeMillis, (millis) => {
        const now = Math.floor(millis)
        const expiresAt = expiryOf(options?.ttl, now)
        if (expiresAt === undefined) {
          return Effect.fail(
            new FallbackStoreError({
              reason: "BadArgument",
              operation: "set",
              key,
              description: `Expected ttl to be a positive duration, got ${String(options?.ttl)}`
            })
          )
        }
        const entry: internal.Entry = { key, value, expiresAt, writtenAt: now }
        const bytes = internal.entryLength(entry)
        if (bytes > maxBytes) {
          return Effect.fail(
            new FallbackStoreError({
              reason: "TooLarge",
              operation: "set",
              key,
              description: `the entry takes ${bytes} bytes, more than maxBytes (${maxBytes})`
            })
          )
        }
        return backend.write(entry, restore).pipe(
          Effect.andThen(Effect.suspend(() => {
            index.put(key, { expiresAt, writtenAt: now, seq: index.nextSeq(), bytes })
            return evict(now, key)
          }))
        )
      })
    ))

  const remove = (key: string): Effect.Effect<void, FallbackStoreError> =>
    lock.withPermit(Effect.uninterruptible(
      Effect.andThen(backend.remove(key, "remove"), Effect.sync(() => index.delete(key)))
    ))

  // Removes what it can; an entry that cannot be removed stays in the index (expired, so never served) and the
  // next sweep tries again.
  const sweep: Effect.Effect<number> = lock.withPermit(Effect.uninterruptible(
    Effect.flatMap(
      Clock.currentTimeMillis,
      (now) =>
        Effect.reduce(
          index.expired(now),
          () => 0,
          (removed, key) =>
            Effect.map(removeLogged(key, "an expired entry"), (ok) => {
              if (!ok) {
                return removed
              }
              index.delete(key)
              stats.expired++
              return removed + 1
            })
        )
    )
  ))

  // Storage trouble is the operator's to fix, and callers often drop the error (a cache write must not fail the
  // request): the store logs it itself, once per reason and `TROUBLE_LOG_MILLIS` at most, counting the rest.
  const warned = new Map<ErrorReason, { readonly at: number; suppressed: number }>()
  const reportTrouble = (error: FallbackStoreError): Effect.Effect<void> =>
    !STORAGE_TROUBLE.has(error.reason) ? Effect.void : Effect.flatMap(Clock.currentTimeMillis, (now) => {
      const last = warned.get(error.reason)
      if (last !== undefined && now - last.at < TROUBLE_LOG_MILLIS) {
        last.suppressed++
        return Effect.void
      }
      warned.set(error.reason, { at: now, suppressed: 0 })
      const what = error.key === undefined
        ? error.operation
        : `${error.operation} ${JSON.stringify(preview(error.key))}`
      const more = last !== undefined && last.suppressed > 0
        ? `; ${last.suppressed} more ${error.reason} failures since the last warning`
        : ""
      return Effect.logWarning(
        `Fallback store "${name}" could not ${what}: ${error.description} (${error.reason}${more})`
      ).pipe(Effect.annotateLogs({ fallbackStore: name, reason: error.reason }))
    })

  const store: FallbackStore = {
    [TypeId]: TypeId,
    name,
    get: (key) => Effect.tapError(get(key), reportTrouble),
    set: (key, value, options) => Effect.tapError(set(key, value, options), reportTrouble),
    remove: (key) => Effect.tapError(remove(key), reportTrouble),
    has: (key) => Effect.map(Effect.tapError(get(key), reportTrouble), Option.isSome),
    keys: Effect.map(Clock.currentTimeMillis, (now) => index.live(now)),
    size: Effect.map(Clock.currentTimeMillis, (now) => index.live(now).length),
    clear: lock.withPermit(Effect.uninterruptible(Effect.andThen(backend.clear, Effect.sync(() => index.clear()))))
      .pipe(
        Effect.tapError(reportTrouble)
      ),
    sweep
  }

  // Caps may have shrunk since the entries were written.
  yield* Effect.flatMap(Clock.currentTimeMillis, (now) => lock.withPermit(evict(now, undefined)))
  yield* Effect.forkScoped(Effect.forever(Effect.andThen(Effect.sleep(settings.sweepMillis), sweep)))

  // Pull-based metrics: the registry reads these counters when it exports.
  const by = { policy: name }
  yield* metrics.register([
    metrics.counter(
      "fallback_store_corrupt_total",
      "Corrupt entries found, not served, removed",
      by,
      () => stats.corrupt
    ),
    metrics.counter(
      "fallback_store_evictions_total",
      "Entries removed for expiry or to stay within the caps",
      { ...by, reason: "Expired" },
      () => stats.expired
    ),
    metrics.counter(
      "fallback_store_evictions_total",
      "Entries removed for expiry or to stay within the caps",
      { ...by, reason: "Capacity" },
      () => stats.capacity
    ),
    metrics.counter("fallback_store_reads_total", "Reads, by outcome", { ...by, outcome: "Hit" }, () => stats.hits),
    metrics.counter("fallback_store_reads_total", "Reads, by outcome", { ...by, outcome: "Miss" }, () => stats.misses),
    metrics.gauge(
      "fallback_store_entries",
      "Entries held, expired ones not yet swept included",
      by,
      () => index.entries.size
    ),
    metrics.gauge("fallback_store_bytes", "Bytes of the entries held", by, () => index.bytes)
  ])
  return store
})

// -----------------------------------------------------------------------------
// constructors
// -----------------------------------------------------------------------------

/**
 * Makes a store in memory with the semantics of the file store (TTL, caps, sweeping, metrics), for tests and for
 * programs that need no persistence. Entry sizes count as the file store would store them.
 *
 * @example
 * ```ts
 * import { FallbackStore } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * const program = Effect.gen(function*() {
 *   const store = yield* FallbackStore.makeMemory({ maxEntries: 2 })
 *   yield* store.set("a", "1")
 *   yield* store.set("b", "2")
 *   yield* store.set("c", "3") // evicts "a", the least recently written
 *   return yield* store.keys // ["b", "c"]
 * }).pipe(Effect.scoped)
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeMemory: (
  options?: MemoryOptions
) => Effect.Effect<FallbackStore, PolicyConfigError, Scope.Scope> = Effect.fnUntraced(
  function*(options: MemoryOptions = {}) {
    const settings = yield* resolve({ ...options, name: orDefault(options.name, "memory") })
    const entries = new Map<string, internal.Entry>()
    const backend: Backend = {
      read: (key) =>
        Effect.sync((): Read => {
          const entry = entries.get(key)
          return entry === undefined ? MISSING : { _tag: "Valid", entry }
        }),
      write: (entry) => Effect.sync(() => void entries.set(entry.key, entry)),
      remove: (key) => Effect.sync(() => void entries.delete(key)),
      clear: Effect.sync(() => entries.clear())
    }
    return yield* assemble(settings, backend, new internal.Index(), new Stats())
  }
)

// -----------------------------------------------------------------------------
// the directory lock
// -----------------------------------------------------------------------------

const unknownCode = (error: unknown): string | undefined =>
  typeof error === "object" && error !== null && "code" in error && typeof error.code === "string"
    ? error.code
    : undefined

// `kill(pid, 0)` sends nothing and tells whether the process exists: ESRCH is the only answer that means gone (EPERM
// is a live process of another user). Without a host process to ask, a holder counts as alive.
const isAlive = (pid: number): Effect.Effect<boolean> => {
  const host = internal.hostProcess
  if (host === undefined) return Effect.succeed(true)
  return Effect.try({ try: () => host.kill(pid, 0), catch: unknownCode }).pipe(
    Effect.as(true),
    Effect.catch((code) => Effect.succeed(code !== "ESRCH"))
  )
}

/**
 * Takes the directory's lock for the scope: the lock file names this process and store. It is written whole to a
 * file of its own, then hard-linked as the lock, which fails if one exists: the lock file is never seen half
 * written. An existing lock whose process is gone (a crash, a SIGKILL) is stale: it is moved aside and the link
 * tried again. Of two openers racing for one stale lock, one takes it; of three or more in a tight race, two
 * could in theory both believe they hold it. The lock is removed when the scope closes, if it is still this store's.
 */
const lockDirectory = (
  fs: FileSystem.FileSystem,
  path: Path.Path,
  directory: string,
  name: string,
  instance: string
): Effect.Effect<void, FallbackStoreError, Scope.Scope> => {
  const lockFile = path.join(directory, internal.LOCK_NAME)
  const self: internal.LockHolder = { pid: internal.hostProcess?.pid ?? 0, instance }
  const content = internal.encodeLock(self)
  const temp = path.join(directory, `${internal.LOCK_TEMP_PREFIX}${instance}.tmp`)
  const aside = path.join(directory, `${internal.LOCK_TEMP_PREFIX}${instance}.stale`)
  const readLock = fs.readFileString(lockFile).pipe(
    Effect.map(Option.some),
    Effect.catch((error) => error.reason._tag === "NotFound" ? Effect.succeedNone : Effect.fail(error))
  )
  const link = Effect.gen(function*() {
    yield* fs.writeFileString(temp, content, { flag: "wx", mode: 0o600 })
    return yield* fs.link(temp, lockFile).pipe(
      Effect.as(true),
      Effect.catch((error) => error.reason._tag === "AlreadyExists" ? Effect.succeed(false) : Effect.fail(error))
    )
  }).pipe(Effect.ensuring(Effect.ignore(fs.remove(temp, { force: true }))))

  // Each round either takes the lock, fails, or removes a stale lock (or sees one released): a few rounds suffice
  // unless other openers keep racing for the same stale lock.
  const attempt = (round: number): Effect.Effect<void, FallbackStoreError> =>
    Effect.gen(function*() {
      if (round >= 5) {
        return yield* new FallbackStoreError({
          reason: "Locked",
          operation: "open",
          description: `directory ${JSON.stringify(directory)}: other stores kept taking its lock; gave up`
        })
      }
      const linked = yield* link.pipe(
        Effect.catch((error): Effect.Effect<boolean | "full", PlatformError> => {
          const code = codeOf(error)
          // Nothing can write to a read-only directory, so there is nothing to lock: the store opens to serve reads.
          if (code === "EROFS") return Effect.succeed(true)
          // A full disk has no room for the lock: unless a live store holds it, the store opens without it, so that
          // what it holds can be served (and a queue's messages delivered, which frees room).
          return code === "ENOSPC" ? Effect.succeed("full") : Effect.fail(error)
        })
      )
      if (linked === true) return
      const existing = yield* readLock
      const holder = Option.isNone(existing) ? undefined : internal.decodeLock(existing.value)
      const alive = holder !== undefined &&
        (holder.pid === self.pid ? internal.openInstances.has(holder.instance) : yield* isAlive(holder.pid))
      if (linked === "full" && !alive) {
        return yield* Effect.logWarning(
          `Fallback store "${name}": the disk is full, so ${directory} is open without its lock until this store closes`
        )
      }
      if (Option.isNone(existing)) return yield* attempt(round + 1)
      if (alive) {
        return yield* new FallbackStoreError({
          reason: "Locked",
          operation: "open",
          holder: holder.pid,
          description: `directory ${JSON.stringify(directory)} is locked by process ${holder.pid}${
            holder.pid === self.pid ? " (this process)" : ""
          }, which has a store open on it; one store per directory (the lock is ${JSON.stringify(lockFile)})`
        })
      }
      // Moves the stale lock aside (a rename: of two openers, one moves it), then looks at what it moved: another
      // opener may have replaced the stale lock with its own meanwhile, which goes back.
      const moved = yield* fs.rename(lockFile, aside).pipe(
        Effect.as(true),
        Effect.catch((error) => error.reason._tag === "NotFound" ? Effect.succeed(false) : Effect.fail(error))
      )
      if (moved) {
        if ((yield* fs.readFileString(aside)) === existing.value) {
          yield* Effect.logWarning(
            `Fallback store "${name}": took over the stale lock of process ${holder?.pid ?? "unknown"} on ${directory}`
          )
        } else {
          yield* Effect.ignore(fs.link(aside, lockFile))
        }
      }
      return yield* attempt(round + 1)
    }).pipe(
      Effect.ensuring(Effect.ignore(fs.remove(aside, { force: true }))),
      Effect.mapError((error) => error instanceof FallbackStoreError ? error : errorOf(directory, "open")(error))
    )

  const release = readLock.pipe(
    Effect.flatMap((current) =>
      Option.isSome(current) && current.value === content ? fs.remove(lockFile, { force: true }) : Effect.void
    ),
    Effect.ignore
  )
  // Known as open from its first attempt, so that a second store of this process racing for the lock sees it held.
  const forget = Effect.sync(() => internal.openInstances.delete(instance))
  return Effect.asVoid(Effect.acquireRelease(
    Effect.suspend(() => {
      internal.openInstances.add(instance)
      return Effect.onError(attempt(0), () => forget)
    }),
    () => Effect.andThen(release, forget)
  ))
}

/**
 * Makes a store on the local disk, in `directory` (default `.data`). It creates the directory if missing, locks it
 * (failing with `Locked` if another store holds it), removes temporary files left by a crash, loads the index of
 * the entries, and removes the corrupt and expired ones. The lock, the background sweeper and the metrics live as
 * long as the scope.
 *
 * @example
 * ```ts
 * import { NodeServices } from "@effect/platform-node"
 * import { FallbackStore } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * const program = Effect.gen(function*() {
 *   const store = yield* FallbackStore.make({ directory: ".data/quotes", maxEntries: 10_000 })
 *   yield* store.set("sku-1", "19.99", { ttl: "1 day" })
 *   return yield* store.get("sku-1") // Option.some("19.99"), after a restart too
 * }).pipe(Effect.scoped, Effect.provide(NodeServices.layer))
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: (
  options?: Options
) => Effect.Effect<
  FallbackStore,
  PolicyConfigError | FallbackStoreError,
  FileSystem.FileSystem | Path.Path | Scope.Scope
> = Effect.fnUntraced(function*(options: Options = {}) {
  const settings = yield* resolve(options)
  const fs = yield* FileSystem.FileSystem
  const path = yield* Path.Path
  const directory = path.resolve(settings.directory)
  const index = new internal.Index()
  const stats = new Stats()

  // Node's recursive mkdir reports any failure below an existing directory as ENOENT (a read-only file system
  // included): on failure, creating the first missing directory alone tells the real cause.
  const firstMissing = (dir: string): Effect.Effect<string, PlatformError> => {
    const parent = path.dirname(dir)
    return parent === dir
      ? Effect.succeed(dir)
      : Effect.flatMap(fs.exists(parent), (exists) => exists ? Effect.succeed(dir) : firstMissing(parent))
  }
  yield* Effect.mapError(
    Effect.flatMap(
      fs.exists(directory),
      (exists) =>
        exists ? Effect.void : fs.makeDirectory(directory, { recursive: true, mode: 0o700 }).pipe(
          Effect.catch((error) =>
            error.reason._tag === "NotFound"
              ? Effect.andThen(
                Effect.flatMap(firstMissing(directory), (dir) => fs.makeDirectory(dir, { mode: 0o700 })),
                fs.makeDirectory(directory, { recursive: true, mode: 0o700 })
              )
              : Effect.fail(error)
          )
        )
    ),
    errorOf(directory, "open")
  )

  const info = yield* Effect.mapError(fs.stat(directory), errorOf(directory, "open"))
  if (info.type !== "Directory") {
    return yield* new FallbackStoreError({
      reason: "BadArgument",
      operation: "open",
      description: `directory ${JSON.stringify(directory)} (option \`directory\`) is not a directory (it is a ${
        info.type === "File" ? "file" : info.type
      })`
    })
  }

  const fileOf = (key: string): string => path.join(directory, internal.fileNameOf(key))

  // Temporary files are unique to this store (a random instance id) and to each write (a counter).
  const instance = Math.floor((yield* Random.next) * 0x100000000).toString(16).padStart(8, "0")
  let writes = 0

  // Taken before anything in the directory is touched: the scan below removes temporary files, which would be
  // another store's writes in flight.
  yield* lockDirectory(fs, path, directory, settings.name, instance)

  const syncDirectory = Effect.ignoreCause(
    Effect.scoped(Effect.flatMap(fs.open(directory, { flag: "r" }), (dir) => dir.sync))
  )

  const write = (entry: internal.Entry, restore: Restore): Effect.Effect<void, FallbackStoreError> => {
    const temp = path.join(directory, `${internal.TEMP_PREFIX}${instance}-${++writes}.tmp`)
    const writeTemp = Effect.scoped(Effect.gen(function*() {
      // `wx`: created here, never an existing file (nor a planted symlink).
      const file = yield* fs.open(temp, { flag: "wx", mode: 0o600 })
      yield* file.writeAll(internal.encodeEntry(entry))
      yield* file.sync
    }))
    return writeTemp.pipe(
      // The only point where an interruption lands: the entry is complete in the temporary file, not yet visible.
      Effect.andThen(restore(Effect.void)),
      Effect.andThen(fs.rename(temp, fileOf(entry.key))),
      Effect.mapError(errorOf(directory, "set", entry.key)),
      // Closing a file dies on error in the Node implementation; a write must fail, never crash.
      Effect.catchDefect((defect) =>
        Effect.fail(
          new FallbackStoreError({
            reason: "Io",
            operation: "set",
            key: entry.key,
            description: `unexpected failure: ${String(defect)}`,
            cause: defect
          })
        )
      ),
      Effect.onExit((exit) => Exit.isSuccess(exit) ? syncDirectory : Effect.ignoreCause(fs.remove(temp)))
    )
  }

  const removeFile = (file: string) => fs.remove(file, { force: true })

  const backend: Backend = {
    read: (key) =>
      fs.readFile(fileOf(key)).pipe(
        Effect.map((bytes): Read => internal.decodeEntry(bytes)),
        Effect.catch((error) =>
          error.reason._tag === "NotFound"
            ? Effect.succeed(MISSING)
            : Effect.fail(errorOf(directory, "get", key)(error))
        )
      ),
    write,
    remove: (key, operation) => Effect.mapError(removeFile(fileOf(key)), errorOf(directory, operation, key)),
    clear: fs.readDirectory(directory).pipe(
      Effect.flatMap((names) =>
        Effect.forEach(
          names.filter((name) => internal.isEntryName(name) || internal.isTempName(name)),
          (name) => removeFile(path.join(directory, name)),
          { discard: true, concurrency: 16 }
        )
      ),
      Effect.mapError(errorOf(directory, "clear"))
    )
  }

  // Loads the index: temporary files go, entries are verified, corrupt and expired ones removed.
  const now = yield* Clock.currentTimeMillis
  const names = yield* Effect.mapError(fs.readDirectory(directory), errorOf(directory, "open"))
  const unread: Array<string> = []
  const load = (name: string) => {
    const file = path.join(directory, name)
    return fs.readFile(file).pipe(
      Effect.flatMap((bytes) => {
        const decoded = internal.decodeEntry(bytes)
        if (decoded._tag === "Corrupt" || internal.fileNameOf(decoded.entry.key) !== name) {
          stats.corrupt++
          const [key, reason] = decoded._tag === "Corrupt"
            ? [name, decoded.reason]
            : [decoded.entry.key, `the file ${name} holds it but is not its file`]
          return Effect.flatMap(
            Effect.as(removeFile(file), true).pipe(Effect.orElseSucceed(() => false)),
            (removed) => reportCorrupt(settings.name, key, reason, removed)
          )
        }
        const entry = decoded.entry
        if (internal.isExpired(entry, now)) {
          stats.expired++
          return Effect.ignore(removeFile(file))
        }
        index.put(entry.key, {
          expiresAt: entry.expiresAt,
          writtenAt: entry.writtenAt,
          seq: index.nextSeq(),
          bytes: bytes.length
        })
        return Effect.void
      })
    )
  }
  yield* Effect.forEach(names, (name) => {
    if (internal.isTempName(name)) return Effect.ignoreCause(removeFile(path.join(directory, name)))
    if (!internal.isEntryName(name)) return Effect.void
    // A read that fails here (too many open files, a passing I/O error) is tried again below, alone: left out of the
    // index, its key would look free, and a queue's next write could take that file's place.
    return Effect.catch(load(name), () => Effect.sync(() => void unread.push(name)))
  }, { discard: true, concurrency: 16 })
  yield* Effect.forEach(unread, (name) =>
    load(name).pipe(
      // Unreadable twice, the entry is left alone and not served; a `set` of its key replaces it.
      Effect.catch((error) =>
        Effect.logWarning(`Fallback store "${settings.name}": skipped unreadable ${name}: ${error.message}`)
      )
    ), { discard: true })

  index.resequence()
  return yield* assemble(settings, backend, index, stats)
})

// -----------------------------------------------------------------------------
// layers
// -----------------------------------------------------------------------------

/**
 * Provides a `FallbackStore` on the local disk; needs `FileSystem` and `Path` (`NodeServices.layer` from
 * `@effect/platform-node`).
 *
 * @example
 * ```ts
 * import { NodeServices } from "@effect/platform-node"
 * import { FallbackStore } from "@effect-resilience/core"
 * import { Layer } from "effect"
 *
 * const FallbackStoreLive = FallbackStore.layer({ directory: ".data", maxBytes: 100 * 1024 * 1024 }).pipe(
 *   Layer.provide(NodeServices.layer)
 * )
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  options: Options = {}
): Layer.Layer<FallbackStore, PolicyConfigError | FallbackStoreError, FileSystem.FileSystem | Path.Path> =>
  Layer.effect(FallbackStore, make(options))

/**
 * Provides a `FallbackStore` in memory, with the semantics of the file store; for tests.
 *
 * @example
 * ```ts
 * import { FallbackStore } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * const program = FallbackStore.FallbackStore.use((store) => store.get("k")).pipe(
 *   Effect.provide(FallbackStore.layerMemory({ maxEntries: 100 }))
 * )
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerMemory = (options: MemoryOptions = {}): Layer.Layer<FallbackStore, PolicyConfigError> =>
  Layer.effect(FallbackStore, makeMemory(options))

/**
 * The file store's options from configuration: `FALLBACK_STORE_DIR` (default `.data`),
 * `FALLBACK_STORE_MAX_ENTRIES` (an integer), `FALLBACK_STORE_MAX_BYTES` (a number of bytes or a size such as
 * `50MiB`), `FALLBACK_STORE_SWEEP_INTERVAL` (a duration such as `30 seconds`, default 1 minute); all optional.
 *
 * @example
 * ```ts
 * import { FallbackStore } from "@effect-resilience/core"
 * import { Config } from "effect"
 *
 * const options = FallbackStore.config.pipe(Config.map((o) => ({ ...o, name: "quotes" })))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const config: Config.Config<Options> = Config.all({
  directory: Config.String("FALLBACK_STORE_DIR").pipe(Config.withDefault(DEFAULT_DIRECTORY)),
  maxEntries: Config.Int("FALLBACK_STORE_MAX_ENTRIES").pipe(Config.option),
  maxBytes: Config.ByteSize("FALLBACK_STORE_MAX_BYTES").pipe(
    Config.orElse(() => Config.Int("FALLBACK_STORE_MAX_BYTES")),
    Config.map(Number),
    Config.option
  ),
  sweepInterval: Config.Duration("FALLBACK_STORE_SWEEP_INTERVAL").pipe(Config.option)
}).pipe(Config.map(({ directory, maxBytes, maxEntries, sweepInterval }): Options => ({
  directory,
  maxEntries: Option.getOrUndefined(maxEntries),
  maxBytes: Option.getOrUndefined(maxBytes),
  sweepInterval: Option.getOrUndefined(sweepInterval)
})))

/**
 * Provides a `FallbackStore` on the local disk with options from configuration (`config` by default, which reads
 * `FALLBACK_STORE_*`). A value that does not parse fails with `ConfigError`, one out of range with
 * `PolicyConfigError`.
 *
 * @example
 * ```ts
 * import { NodeServices } from "@effect/platform-node"
 * import { FallbackStore } from "@effect-resilience/core"
 * import { Layer } from "effect"
 *
 * // FALLBACK_STORE_DIR=/var/lib/app/fallback FALLBACK_STORE_MAX_BYTES=50MiB node main.js
 * const FallbackStoreLive = FallbackStore.layerConfig().pipe(Layer.provide(NodeServices.layer))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = (
  options: Config.Config<Options> = config
): Layer.Layer<
  FallbackStore,
  Config.ConfigError | PolicyConfigError | FallbackStoreError,
  FileSystem.FileSystem | Path.Path
> =>
  Layer.effect(
    FallbackStore,
    Effect.flatMap(options, (read) =>
      options === config
        // Read from the environment: an option out of range is reported under the variable the operator set.
        ? Effect.catchTag(make(read), "PolicyConfigError", (error) => Effect.fail(withVariables(error, variables)))
        : make(read))
  )

const variables = {
  directory: "FALLBACK_STORE_DIR",
  maxEntries: "FALLBACK_STORE_MAX_ENTRIES",
  maxBytes: "FALLBACK_STORE_MAX_BYTES",
  sweepInterval: "FALLBACK_STORE_SWEEP_INTERVAL"
}
