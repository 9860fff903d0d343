/**
 * `ResilientRedis`' storage formats and Lua scripts: the journal entry, the fallback's copy of a value and of a
 * remove (its tombstone), and the scripts that stamp each Redis write with its time so that a replay applies only
 * what Redis holds nothing newer than.
 *
 * Layout in Redis, beside each value key `k` (under the store's prefix): `<service prefix>at:<k>`, the write time
 * (epoch milliseconds from the writer's `Clock`) of the value, with the value's TTL; after a remove, the remove's
 * time with a TTL of `tombstoneMillis`, so that an older replayed write does not bring the key back.
 *
 * @internal
 */
import * as Option from "effect/Option"
import * as Redis from "effect/persistence/Redis"
import * as Schema from "effect/Schema"
import { ErrorReply } from "redis"

/** A journaled write. @internal */
export const Entry = Schema.Struct({
  op: Schema.Literals(["set", "remove"]),
  key: Schema.String,
  value: Schema.NullOr(Schema.String),
  /** Epoch milliseconds, or null for no expiry. */
  expiresAt: Schema.NullOr(Schema.Number),
  at: Schema.Number
})

/** @internal */
export type Entry = typeof Entry.Type

const EntryJson = Schema.fromJsonString(Entry)

/** @internal */
export const encodeEntry = Schema.encodeSync(EntryJson)

/** @internal */
export const decodeEntry = Schema.decodeUnknownOption(EntryJson)

/**
 * The fallback's copy of a value: the value, its write time and expiry, and the journal seq of the write when it
 * was journaled (null when Redis took it directly). The seq ties a copy to its journal entry, so that a lost entry
 * can be rebuilt from the copy.
 *
 * @internal
 */
export const Copy = Schema.Struct({
  copy: Schema.String,
  at: Schema.Number,
  expiresAt: Schema.NullOr(Schema.Number),
  seq: Schema.NullOr(Schema.Number)
})

/** @internal */
export type Copy = typeof Copy.Type

const CopyJson = Schema.fromJsonString(Copy)

/** @internal */
export const encodeCopy = Schema.encodeSync(CopyJson)

const decodeCopyOption = Schema.decodeUnknownOption(CopyJson)

/** A stored copy; a plain string (written by 0.1) is the value itself, with no time. @internal */
export const decodeCopy = (stored: string): Copy =>
  Option.getOrElse(decodeCopyOption(stored), () => ({ copy: stored, at: 0, expiresAt: null, seq: null }))

/**
 * The fallback's record of a remove, kept (under its own prefix, beside the copies) as long as Redis keeps the
 * remove's time, so that a re-seed replays the remove and another instance's older copy does not bring the key back.
 * A key of its own rather than a kind of copy: a copy of an earlier version would serve it as a value.
 *
 * @internal
 */
export const Tombstone = Schema.Struct({
  at: Schema.Number,
  /** The journal seq of the remove when it was journaled, null when Redis took it directly. */
  seq: Schema.NullOr(Schema.Number)
})

/** @internal */
export type Tombstone = typeof Tombstone.Type

const TombstoneJson = Schema.fromJsonString(Tombstone)

/** @internal */
export const encodeTombstone = Schema.encodeSync(TombstoneJson)

/** @internal */
export const decodeTombstone = Schema.decodeUnknownOption(TombstoneJson)

const seqWidth = 16

/**
 * The journal entry's name: the padded seq (names sort by seq), then the key, so a damaged entry still names it.
 *
 * @internal
 */
export const entryName = (journalPrefix: string, seq: number, key: string): string =>
  `${journalPrefix}${String(seq).padStart(seqWidth, "0")}:${key}`

/** The seq and key of an entry's name (names of 0.1 carry no key). @internal */
export const parseName = (
  journalPrefix: string,
  name: string
): { readonly seq: number; readonly key: string | undefined } => {
  const rest = name.slice(journalPrefix.length)
  const colon = rest.indexOf(":")
  return colon < 0
    ? { seq: Number(rest), key: undefined }
    : { seq: Number(rest.slice(0, colon)), key: rest.slice(colon + 1) }
}

/** A copy's expiry: epoch milliseconds, and the key. @internal */
export type Expiry = readonly [at: number, key: string]

/** Adds `item` to `heap`, a binary heap of expiries, soonest first. @internal */
export const heapPush = (heap: Array<Expiry>, item: Expiry): void => {
  let i = heap.push(item) - 1
  while (i > 0) {
    const parent = (i - 1) >> 1
    if (heap[parent]![0] <= item[0]) break
    heap[i] = heap[parent]!
    i = parent
  }
  heap[i] = item
}

/** Takes the soonest expiry out of `heap`. @internal */
export const heapPop = (heap: Array<Expiry>): Expiry | undefined => {
  const top = heap[0]
  const last = heap.pop()
  if (last === undefined || heap.length === 0) return top
  let i = 0
  for (;;) {
    const left = 2 * i + 1
    if (left >= heap.length) break
    const child = left + 1 < heap.length && heap[left + 1]![0] < heap[left]![0] ? left + 1 : left
    if (heap[child]![0] >= last[0]) break
    heap[i] = heap[child]!
    i = child
  }
  heap[i] = last
  return top
}

/** One write for `apply`: `s` (set) or `d` (remove), value, write time, TTL in milliseconds (0: none). @internal */
export interface Write {
  readonly op: "s" | "d"
  readonly key: string
  readonly value: string
  readonly at: number
  readonly ttl: number
}

/**
 * Applies writes in order, each only when the key's stored time is not newer than the write's: one atomic compare
 * and set per batch. KEYS: value key, time key, per write. ARGV[1]: tombstone millis, then op, value, time, TTL per
 * write. Answers `[applied, stale]`; when Redis fails a write (an error reply, or a Lua error such as a time key
 * that is not a number), `[applied, stale, i, error]`: the writes before the i-th (1-based) were applied or stale,
 * the i-th was not applied (at most its value, when the SET of its time failed), and the rest were not tried. A
 * script does not roll back what it wrote before an error: stopping there, rather than failing the whole script,
 * says exactly what Redis took, so that the caller applies nothing twice and can tell which write failed.
 *
 * @internal
 */
export const apply = Redis.script(
  (keys: ReadonlyArray<string>, args: ReadonlyArray<string | number>) => [...keys, ...args],
  {
    numberOfKeys: (keys) => keys.length,
    lua: `
local function write(i)
  local vk, ak = KEYS[2 * i - 1], KEYS[2 * i]
  local op, value, at, ttl = ARGV[4 * i - 2], ARGV[4 * i - 1], ARGV[4 * i], ARGV[4 * i + 1]
  local current = redis.call('GET', ak)
  if current and tonumber(current) > tonumber(at) then
    return false
  end
  if op == 's' then
    if tonumber(ttl) > 0 then
      redis.call('SET', vk, value, 'PX', ttl)
      redis.call('SET', ak, at, 'PX', ttl)
    else
      redis.call('SET', vk, value)
      redis.call('SET', ak, at)
    end
  else
    redis.call('DEL', vk)
    redis.call('SET', ak, at, 'PX', ARGV[1])
  end
  return true
end
local applied, stale = 0, 0
for i = 1, #KEYS / 2 do
  local ok, result = pcall(write, i)
  if not ok then
    return {applied, stale, i, type(result) == 'table' and result.err or tostring(result)}
  end
  if result then applied = applied + 1 else stale = stale + 1 end
end
return {applied, stale}
`
  }
).withReturnType<[number, number] | [number, number, number, string]>()

// Replies that say Redis takes no writes at the moment, whatever the write: out of memory (maxmemory with
// noeviction), a replica, a master without enough replicas (min-replicas-to-write), a failed save
// (stop-writes-on-bgsave-error), a busy script, loading, a cluster that is down, lost authentication.
const unavailable = /^(OOM|READONLY|MASTERDOWN|NOREPLICAS|MISCONF|BUSY|LOADING|CLUSTERDOWN|TRYAGAIN|NOAUTH)\b/

/**
 * Whether Redis' error for one write of `apply` says Redis takes no writes now (out of memory, read-only...), so
 * the write must wait as when Redis is down; any other error is about that write (a time key of another type, say)
 * and would come back every time.
 *
 * @internal
 */
export const isUnavailable = (error: string): boolean => unavailable.test(error)

/**
 * A write made now, straight to Redis: applied whatever the stored time (arrival order among live writes), and
 * stamped. KEYS: value key, time key. ARGV: op, value, time, TTL, tombstone millis. Answers 1 when a remove found
 * the key.
 *
 * @internal
 */
export const write = Redis.script(
  (keys: ReadonlyArray<string>, args: ReadonlyArray<string | number>) => [...keys, ...args],
  {
    numberOfKeys: (keys) => keys.length,
    lua: `
if ARGV[1] == 's' then
  if tonumber(ARGV[4]) > 0 then
    redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[4])
    redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[4])
  else
    redis.call('SET', KEYS[1], ARGV[2])
    redis.call('SET', KEYS[2], ARGV[3])
  end
  return 0
end
local found = redis.call('DEL', KEYS[1])
redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[5])
return found
`
  }
).withReturnType<number>()

/**
 * The data marker: set once, lost with Redis' data. KEYS: marker. ARGV[1]: a new id, used when none is set. A
 * marker that changed means Redis lost what it held. Answers the marker.
 *
 * @internal
 */
export const marker = Redis.script(
  (key: string, candidate: string) => [key, candidate],
  {
    numberOfKeys: 1,
    lua: `
local v = redis.call('GET', KEYS[1])
if not v then
  redis.call('SET', KEYS[1], ARGV[1])
  v = ARGV[1]
end
return v
`
  }
).withReturnType<string>()

/**
 * Whether a failed command was answered by Redis with an error about the command itself (`WRONGTYPE`: another client
 * made the key a list, say), which says Redis is up: it is not a failure of Redis, unless the error says Redis takes
 * no writes now (`isUnavailable`). `error` is a `RedisStoreError`, whose `cause` is the `RedisError`.
 *
 * @internal
 */
export const isRefusal = (error: { readonly cause?: unknown }): boolean =>
  error.cause instanceof Redis.RedisError && error.cause.cause instanceof ErrorReply &&
  !isUnavailable(error.cause.cause.message)
