-- delivery_v1: record a try of an account's event, as the holder of its delivery lock.
--
-- KEYS[1] the account's delivery hash (gateway.events.delivery_state)
-- KEYS[2] its delivery lock (string: the holder's token)
-- ARGV[1] the caller's token   ARGV[2] 'done' or 'retry'   ARGV[3] the event's ledger entry id
-- done:  ARGV[4] state (delivered | failed | no_webhook)   ARGV[5] attempts   ARGV[6] last error
--        ARGV[7] records of events older than this (unix ms) may be pruned
-- retry: ARGV[4] attempts   ARGV[5] failures   ARGV[6] first try (ms)   ARGV[7] next try (ms)
--        ARGV[8] "1" once the handlers ran   ARGV[9] last error
-- Only the lock's holder writes: a dispatcher that paused past its lock writes nothing, so a
-- finished event is never made the head again. The cursor only moves forward. Records are
-- pruned when the hash has doubled since the last prune (amortised: one HKEYS per doubling).
-- Returns 1 when written, 0 when the caller does not hold the lock.
local PRUNE_FLOOR = 1024

local function parts(id)
  local ms, seq = string.match(id or '', '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end

local function after(a, b)  -- entry id a is later than b
  local a_ms, a_seq = parts(a)
  local b_ms, b_seq = parts(b)
  if not b_ms then return true end
  return a_ms > b_ms or (a_ms == b_ms and a_seq > b_seq)
end

if redis.call('GET', KEYS[2]) ~= ARGV[1] then
  return 0
end
local hash, entry = KEYS[1], ARGV[3]
if not parts(entry) then
  return redis.error_reply('delivery_v1: malformed entry id')
end

if ARGV[2] == 'retry' then
  redis.call('HSET', hash, 'head', entry, 'attempts', ARGV[4], 'failures', ARGV[5],
    'first_ms', ARGV[6], 'next_ms', ARGV[7], 'handled', ARGV[8], 'error', ARGV[9])
  return 1
end

redis.call('HSET', hash, 's:' .. entry, ARGV[4] .. '|' .. ARGV[5] .. '|' .. ARGV[6])
if after(entry, redis.call('HGET', hash, 'cursor')) then
  redis.call('HSET', hash, 'cursor', entry)
end
if redis.call('HGET', hash, 'head') == entry then
  redis.call('HDEL', hash, 'head', 'attempts', 'failures', 'first_ms', 'next_ms', 'handled',
    'error')
end
local size = redis.call('HLEN', hash)
local kept = tonumber(redis.call('HGET', hash, 'kept') or '0')
if size > math.max(PRUNE_FLOOR, 2 * kept) then
  local cutoff = tonumber(ARGV[7])
  for _, name in ipairs(redis.call('HKEYS', hash)) do
    local ms = tonumber(string.match(name, '^s:(%d+)-'))
    if ms and ms < cutoff then
      redis.call('HDEL', hash, name)
    end
  end
  redis.call('HSET', hash, 'kept', redis.call('HLEN', hash))
end
return 1
