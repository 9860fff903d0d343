/**
 * The fleet's Lua scripts. Each runs atomically in Redis and answers with the key's state after it ran, so that one
 * round trip both changes the fleet and tells the caller where it stands.
 *
 * Layout, under the store's prefix (`b` is the breaker name and `k` the key, URI-encoded, or `%u` and the UTF-16 code
 * units in hex for a string that is not well-formed; `*` is breaker-wide):
 * - `cb:<b>:<k>` hash: `epoch`, `mode`, `phase`, `openedAt`, `openUntil`, `openings`, `lastOpenMillis`,
 *   `closedAt`, `origin`, `reason` (JSON), `successes` (probe successes this epoch), `streak` (global counting),
 *   `manualAt` (when the key's last manual control, its own or breaker-wide, was made);
 * - `cb:<b>` set: the encoded keys that have a hash;
 * - `cb:<b>:<k>:leases:<epoch>` sorted set: probe leases by expiry; `cb:<b>:<k>:votes` sorted set: quorum votes
 *   by time; `cb:<b>:<k>:w<i>:<epoch>` (and `:n`): the windows of global counting, fresh with every epoch;
 * - `fleet:instances` sorted set: instances by last heartbeat; `fleet:events` channel: every accepted change, as
 *   `[breaker, key, reply]`.
 *
 * Every reply is `[verdict, epoch, mode, phase, openedAt, openUntil, openings, lastOpenMillis, closedAt, origin,
 * reason]`. Times are the callers' `Clock` milliseconds, never Redis' `TIME`, so that instances agree with their own
 * clocks (and tests can use `TestClock`).
 *
 * @internal
 */
import * as Redis from "effect/persistence/Redis"

/** @internal */
export type Reply = ReadonlyArray<string>

// Common to every script: KEYS[1] is the key's hash, ARGV[1..3] the channel, the breaker and the encoded key.
const prelude = `
local h = KEYS[1]
local function reply(verdict, hash)
  local s = redis.call('HMGET', hash, 'epoch', 'mode', 'phase', 'openedAt', 'openUntil', 'openings',
    'lastOpenMillis', 'closedAt', 'origin', 'reason')
  return {verdict, s[1] or '0', s[2] or 'Live', s[3] or 'Closed', s[4] or '-1', s[5] or '0', s[6] or '0',
    s[7] or '0', s[8] or '0', s[9] or '', s[10] or ''}
end
-- Accepts a change: a new epoch, fresh probe and streak counts, listed under the breaker, published.
local function commit(fields, listed)
  redis.call('HINCRBY', h, 'epoch', 1)
  redis.call('HSET', h, 'successes', 0, 'streak', 0, unpack(fields))
  if listed then redis.call('SADD', KEYS[2], ARGV[3]) end
  local r = reply('applied', h)
  redis.call('PUBLISH', ARGV[1], cjson.encode({ARGV[2], ARGV[3], r}))
  return r
end
`

const script = (lua: string) =>
  Redis.script(
    (keys: ReadonlyArray<string>, args: ReadonlyArray<string | number>) => [...keys, ...args],
    { numberOfKeys: (keys) => keys.length, lua: prelude + lua }
  ).withReturnType<Reply>()

/**
 * A change made on an instance. KEYS: hash, keys set, votes, instances. ARGV[4..]: kind, base epoch, origin, reason,
 * mode, phase, openedAt, openUntil, openings, lastOpenMillis, closedAt, now, counting, quorum instances, quorum
 * share, quorum window, liveness, hash prefix of the breaker's keys, the time the change was made.
 *
 * Manual controls win over the breaker's own decisions (the operator's intent), and among themselves the last one
 * made wins: one is accepted onto the epoch the instance last saw, and on a stale epoch (made during an outage, say)
 * unless the key's last manual control was made after it. A breaker-wide one rewrites every key, as it does locally,
 * but for a key whose own manual control is newer; it publishes each rewritten key's state before its own, and each
 * kept key's after it. A trip is accepted onto the epoch the instance last saw; made on a stale epoch, it is accepted
 * unless the fleet holds a newer decision: it is accepted onto a circuit closed before the trip was made, and onto an
 * opening that has elapsed and began before the trip; it is rejected by a manual control, an opening still in force,
 * or a close made after it. With quorum counting a trip is a vote instead, and opens the fleet once the quorum holds.
 * A close is accepted only onto the epoch the instance saw: otherwise the fleet moved on, and the fleet wins. The
 * instances' clocks decide which of two changes was made first.
 *
 * @internal
 */
export const announce = script(`
local kind = ARGV[4]
local now = tonumber(ARGV[15])
local epoch = tonumber(redis.call('HGET', h, 'epoch') or '0')
local mode = redis.call('HGET', h, 'mode') or 'Live'
local phase = redis.call('HGET', h, 'phase') or 'Closed'
local base = tonumber(ARGV[5])
local at = tonumber(ARGV[22])
local fields = {'mode', ARGV[8], 'phase', ARGV[9], 'openedAt', ARGV[10], 'openUntil', ARGV[11], 'openings', ARGV[12],
  'lastOpenMillis', ARGV[13], 'closedAt', ARGV[14], 'origin', ARGV[6], 'reason', ARGV[7]}
-- The last manual control made wins, not the last to arrive: one made while cut off gives way to a newer one.
local function older(hash) return at < tonumber(redis.call('HGET', hash, 'manualAt') or '0') end
if kind == 'manual' then
  -- On the epoch the instance saw, the control was made after the key's last one, whatever the clocks say.
  if epoch ~= base and older(h) then return reply('rejected', h) end
  table.insert(fields, 'manualAt')
  table.insert(fields, ARGV[22])
  if ARGV[3] == '*' then
    local restart = ARGV[8] == 'Live' or ARGV[8] == 'Disabled'
    local kept = {}
    for _, k in ipairs(redis.call('SMEMBERS', KEYS[2])) do
      local kh = ARGV[21] .. k
      -- Each key's epoch moves: published, or every instance's next outcome on it would be fenced off as late.
      redis.call('HINCRBY', kh, 'epoch', 1)
      redis.call('HSET', kh, 'successes', 0, 'streak', 0)
      if older(kh) then
        table.insert(kept, k)
      else
        local was = redis.call('HGET', kh, 'mode') or 'Live'
        redis.call('HSET', kh, 'mode', ARGV[8], 'origin', ARGV[6], 'reason', ARGV[7], 'manualAt', ARGV[22])
        if restart or was == 'Disabled' then
          redis.call('HSET', kh, 'phase', 'Closed', 'openings', 0, 'lastOpenMillis', 0, 'closedAt', now)
        end
        redis.call('PUBLISH', ARGV[1], cjson.encode({ARGV[2], k, reply('applied', kh)}))
      end
    end
    local r = commit(fields, false)
    -- A key with a newer control of its own keeps its state, published after the breaker-wide one (which every
    -- instance, the sender too, applies to all its keys) so that every instance takes it back.
    for _, k in ipairs(kept) do
      redis.call('PUBLISH', ARGV[1], cjson.encode({ARGV[2], k, reply('applied', ARGV[21] .. k)}))
    end
    return r
  end
  return commit(fields, true)
end
if ARGV[16] == 'quorum' and kind == 'trip' then
  local openUntil = tonumber(redis.call('HGET', h, 'openUntil') or '0')
  if phase ~= 'Closed' and mode == 'Live' and now < openUntil then return reply('current', h) end
  local window = tonumber(ARGV[19])
  redis.call('ZADD', KEYS[3], now, ARGV[6])
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - window)
  redis.call('PEXPIRE', KEYS[3], math.max(window, 1000))
  local votes = redis.call('ZCARD', KEYS[3])
  local live = redis.call('ZCOUNT', KEYS[4], now - tonumber(ARGV[20]), '+inf')
  if live < votes then live = votes end
  local needed, share = tonumber(ARGV[17]), tonumber(ARGV[18])
  -- The share of votes, not votes against share * live: 0.14 * 50 rounds above 7 (as a breaker's rate threshold).
  if (needed > 0 and votes >= needed) or (share > 0 and votes / live >= share) then
    redis.call('DEL', KEYS[3])
    fields[18] = cjson.encode({_tag = 'Quorum', votes = votes, live = live})
    return commit(fields, true)
  end
  return reply('pending', h)
end
if ARGV[16] == 'quorum' and kind == 'close' then redis.call('ZREM', KEYS[3], ARGV[6]) end
if kind == 'trip' then
  if epoch == base then return commit(fields, true) end
  -- A stale epoch: the trip still wins over a decision older than itself (a close before it, an opening that has
  -- elapsed and started before it), never over a manual control or an opening still in force.
  if mode == 'Live' then
    local s = redis.call('HMGET', h, 'closedAt', 'openedAt', 'openUntil')
    if phase == 'Closed' and at >= tonumber(s[1] or '0') then return commit(fields, true) end
    if phase ~= 'Closed' and now >= tonumber(s[3] or '0') and at >= tonumber(s[2] or '0') then
      return commit(fields, true)
    end
  end
  return reply('rejected', h)
end
if kind == 'close' and epoch == base and phase ~= 'Closed' then return commit(fields, true) end
return reply('rejected', h)
`)

/**
 * A probe asks for a lease. KEYS: hash. ARGV[4..]: now, max probes, max probe millis, lease id. `local` when the
 * fleet is not open for this key (the instance decides alone), `denied` before the opening elapses or when the
 * fleet's probes are all out.
 *
 * @internal
 */
export const lease = script(`
local s = redis.call('HMGET', h, 'epoch', 'mode', 'phase', 'openUntil')
if not s[1] or s[2] ~= 'Live' or (s[3] or 'Closed') == 'Closed' then return reply('local', h) end
local now = tonumber(ARGV[4])
if s[3] == 'Open' and now < tonumber(s[4] or '0') then return reply('denied', h) end
local leases = h .. ':leases:' .. s[1]
redis.call('ZREMRANGEBYSCORE', leases, '-inf', now)
if redis.call('ZCARD', leases) >= tonumber(ARGV[5]) then return reply('denied', h) end
redis.call('ZADD', leases, now + tonumber(ARGV[6]), ARGV[7])
redis.call('PEXPIRE', leases, math.max(2 * tonumber(ARGV[6]), 60000))
return reply('granted', h)
`)

/**
 * A leased probe's outcome. KEYS: hash. ARGV[4..]: lease epoch, lease id, outcome, now, open millis, origin,
 * success threshold. `fenced` when the lease expired or the epoch moved on: a late outcome changes nothing.
 *
 * @internal
 */
export const settle = script(`
local leases = h .. ':leases:' .. ARGV[4]
local expiry = redis.call('ZSCORE', leases, ARGV[5])
redis.call('ZREM', leases, ARGV[5])
local now = tonumber(ARGV[7])
if not expiry or (redis.call('HGET', h, 'epoch') or '0') ~= ARGV[4] or tonumber(expiry) <= now then
  return reply('fenced', h)
end
if ARGV[6] == 'ignored' then return reply('ignored', h) end
if ARGV[6] == 'failure' then
  local openings = tonumber(redis.call('HGET', h, 'openings') or '0') + 1
  return commit({'phase', 'Open', 'openedAt', now, 'openUntil', now + tonumber(ARGV[8]), 'openings', openings,
    'lastOpenMillis', ARGV[8], 'origin', ARGV[9], 'reason', '{"_tag":"ProbeFailed"}'}, false)
end
local successes = redis.call('HINCRBY', h, 'successes', 1)
if successes >= tonumber(ARGV[10]) then
  return commit({'phase', 'Closed', 'closedAt', now, 'origin', ARGV[9],
    'reason', cjson.encode({_tag = 'ProbesSucceeded', successes = successes})}, false)
end
return reply('counted', h)
`)

/**
 * One outcome under global counting. KEYS: hash, keys set. ARGV[4..]: epoch at admission, outcome, duration, now,
 * open millis, origin, trip policy (JSON). The same trip rules as the local machine: a consecutive streak, count
 * windows (a list and its counts) and time windows (aligned buckets in a hash), fresh with every epoch.
 *
 * @internal
 */
export const record = script(`
local s = redis.call('HMGET', h, 'epoch', 'mode', 'phase', 'closedAt', 'lastOpenMillis', 'openings')
local epoch = s[1] or '0'
if epoch ~= ARGV[4] or (s[3] or 'Closed') ~= 'Closed' then return reply('fenced', h) end
local now = tonumber(ARGV[7])
local failed = ARGV[5] == 'failure'
local trip = cjson.decode(ARGV[10])
local reason = nil
local streak = 0
if failed then streak = redis.call('HINCRBY', h, 'streak', 1) else redis.call('HSET', h, 'streak', 0) end
if trip.consecutive > 0 and streak >= trip.consecutive then
  reason = {_tag = 'ConsecutiveFailures', failures = streak}
end
for i, rate in ipairs(trip.rates) do
  local hit = failed
  if rate._tag == 'SlowCallRate' then hit = tonumber(ARGV[6]) > rate.slowMillis end
  local w = h .. ':w' .. i .. ':' .. epoch
  local calls, hits = 0, 0
  if rate.window._tag == 'Count' then
    local n = w .. ':n'
    redis.call('RPUSH', w, hit and 1 or 0)
    calls = redis.call('HINCRBY', n, 'calls', 1)
    hits = redis.call('HINCRBY', n, 'hits', hit and 1 or 0)
    if calls > rate.window.size then
      local old = redis.call('LPOP', w)
      calls = redis.call('HINCRBY', n, 'calls', -1)
      if old == '1' then hits = redis.call('HINCRBY', n, 'hits', -1) end
    end
    redis.call('PEXPIRE', w, 3600000)
    redis.call('PEXPIRE', n, 3600000)
  else
    local b = math.floor(now / rate.window.bucketMillis)
    redis.call('HINCRBY', w, b .. ':c', 1)
    if hit then redis.call('HINCRBY', w, b .. ':h', 1) end
    local all = redis.call('HGETALL', w)
    for j = 1, #all, 2 do
      local field = all[j]
      local sep = string.find(field, ':')
      if tonumber(string.sub(field, 1, sep - 1)) <= b - rate.window.buckets then
        redis.call('HDEL', w, field)
      elseif string.sub(field, sep + 1) == 'c' then
        calls = calls + tonumber(all[j + 1])
      else
        hits = hits + tonumber(all[j + 1])
      end
    end
    redis.call('PEXPIRE', w, math.max(3600000, 2 * rate.window.buckets * rate.window.bucketMillis))
  end
  -- The rate, not hits against threshold * calls: 0.55 * 100 rounds above 55 (as in core's breaker).
  if reason == nil and calls >= rate.minimumCalls and hits / calls >= rate.threshold then
    reason = {_tag = rate._tag, rate = hits / calls, threshold = rate.threshold, calls = calls}
  end
end
if reason ~= nil and s[2] ~= 'Disabled' then
  local openings = 1
  if now - tonumber(s[4] or '0') < tonumber(s[5] or '0') then openings = tonumber(s[6] or '0') + 1 end
  return commit({'phase', 'Open', 'openedAt', now, 'openUntil', now + tonumber(ARGV[8]), 'openings', openings,
    'lastOpenMillis', ARGV[8], 'origin', ARGV[9], 'reason', cjson.encode(reason)}, true)
end
return reply('counted', h)
`)

/**
 * Every state the fleet holds for a breaker: the breaker-wide one first. KEYS: hash of `*`, keys set. ARGV[4]: hash
 * prefix of the breaker's keys. Answers `[key, reply, key, reply, ...]`.
 *
 * @internal
 */
export const states = script(`
local out = {}
local function add(k)
  local kh = ARGV[4] .. k
  if redis.call('EXISTS', kh) == 1 then
    table.insert(out, k)
    table.insert(out, reply('state', kh))
  end
end
add('*')
for _, k in ipairs(redis.call('SMEMBERS', KEYS[2])) do add(k) end
return out
`)

/**
 * An instance says it is alive. KEYS: instances, incarnation. ARGV[4..]: now, instance, liveness. Answers the live
 * count and the incarnation (`""` when none is set: Redis lost its data), so that an instance learns of a restart
 * within a heartbeat.
 *
 * @internal
 */
export const heartbeat = script(`
local now = tonumber(ARGV[4])
redis.call('ZADD', h, now, ARGV[5])
redis.call('ZREMRANGEBYSCORE', h, '-inf', now - 10 * tonumber(ARGV[6]))
return {'live', tostring(redis.call('ZCOUNT', h, now - tonumber(ARGV[6]), '+inf')), redis.call('GET', KEYS[2]) or ''}
`)

/**
 * An instance leaves. KEYS: instances. ARGV[4]: instance.
 *
 * @internal
 */
export const leave = script(`
redis.call('ZREM', h, ARGV[4])
return {'left'}
`)

/**
 * The fleet's incarnation: set once, lost with Redis' data. KEYS: incarnation. ARGV[4]: a new id, used when none is
 * set. A changed incarnation means epochs started again, so instances forget the epochs they saw.
 *
 * @internal
 */
export const incarnation = script(`
local v = redis.call('GET', h)
if not v then
  redis.call('SET', h, ARGV[4])
  v = ARGV[4]
end
return {v}
`)

/**
 * The live instances with their last heartbeat. KEYS: instances. ARGV[4..]: now, liveness. Answers
 * `[instance, time, instance, time, ...]`.
 *
 * @internal
 */
export const live = script(`
return redis.call('ZRANGEBYSCORE', h, tonumber(ARGV[4]) - tonumber(ARGV[5]), '+inf', 'WITHSCORES')
`)
