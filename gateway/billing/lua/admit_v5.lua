-- admit_v5: admit one request: expire stale holds, check rate limits, funds and the monthly
-- limits, place a hold.
--
-- KEYS[1] wallet hash        KEYS[2] holds zset (request id -> deadline ms)
-- KEYS[3] hold amounts hash  KEYS[4] request record hash
-- KEYS[5] key rpm bucket     KEYS[6] key tpm bucket
-- KEYS[7] account rpm bucket KEYS[8] account tpm bucket
-- KEYS[9] credit grants hash KEYS[10] grant order zset
-- KEYS[11] ledger stream     KEYS[12] transactions stream (for credit_expired, rarely)
-- KEYS[13] key spend hash (key id|month -> spend)
-- ARGV[1] request id         ARGV[2] hold wanted (nanodollars, worst-case cost)
-- ARGV[3] hold ttl ms        ARGV[4] policy: "strict" | "postpaid"
-- ARGV[5] estimated tokens   ARGV[6..9] limits for KEYS[5..8] (0 = unlimited; per minute)
-- ARGV[10] record ttl s      ARGV[11] ledger retention s
-- ARGV[12] the key's monthly spend cap (nanodollars; 0: none)   ARGV[13] the key's id
-- ARGV[14] the clock, unix ms ("0": Redis's TIME; tests drive the wallet's time with it: the
--          hold's deadline, grant ends, the month, the buckets; the ledger is trimmed by
--          Redis's clock whatever it says)
-- ARGV[15..] record fields as name, value pairs
-- v4: the funds are cash, the AI free quota and credits (docs/wallet.md); grants past their
-- end back no new hold, and are finalised here when nothing admitted before their end is open.
-- v5 (docs/guards.md): the account's monthly limit under "pause" refuses a hold that would take
-- the month's spend plus what is held past it (the first refusal of a month emits
-- monthly_limit_reached); a key's monthly cap refuses a hold past the key's month spend.
-- Returns one string of space-separated integers (v1 returned them as an array: a script's
-- array reply costs Redis a separate reply block, and Redis 6.2 one write() each):
--   "1 <available after hold> <hold placed> <now ms> <remaining x4> <reset ms x4>"
--   "-1 <available>"                       funds do not cover the hold
--   "-2 <bucket index 1..4> <retry ms>"    a rate limit is exhausted (retry -1: never fits)
--   "-3"                                   request id already used (or released: settle_v5's
--                                          tombstone for a release that came first)
--   "-4 <limit> <month spend + held>"      the account's monthly limit
--   "-5 <cap> <the key's month spend>"     the key's monthly cap
-- The pending record has no expiry (v2 gave it the record ttl, so a request outliving it
-- was settled as "no such request", free): settle_v5 sets the expiry once it is charged.
-- The arguments used after the first write are checked before it (only a caller's bug can
-- make them wrong, but then the script must fail before it writes anything).
if not string.find(ARGV[10], '^%d+$') or not string.find(ARGV[11], '^%d+$')
    or not string.find(ARGV[12], '^%d+$') or not string.find(ARGV[14] or '', '^%d+$')
    or #ARGV % 2 == 1 then
  return redis.error_reply('admit_v5: malformed arguments')
end
CLOCK = ARGV[14] + 0
local now = now_ms()
local now_s = fmt(now)
local deadline_s = fmt(now + ARGV[3])
local w = redis.call('HMGET', KEYS[1], 'cash', 'held', 'free_ai', 'credits', 'credits_next_end',
  'limit', 'limit_action', 'limit_notified')
local cash = (w[1] or 0) + 0
local held = (w[2] or 0) + 0
local others = (w[3] or 0) + (w[4] or 0)  -- free quota and credits, as the wallet holds them
-- held is the sum of this account's holds: with none outstanding there is nothing to expire.
if held > 0 and release_expired(KEYS[1], KEYS[2], KEYS[3], now_s) > 0 then
  held = tonumber(redis.call('HGET', KEYS[1], 'held') or '0')
end
if w[5] and now >= w[5] + 0 then  -- a grant's end has passed: rarely
  local k = {wallet = KEYS[1], amounts = KEYS[3], grants = KEYS[9], order = KEYS[10],
             ledger = KEYS[11], txs = KEYS[12]}
  local ending = end_grants(k, now, ARGV[11] + 0)
  local c = redis.call('HMGET', KEYS[1], 'free_ai', 'credits')
  others = (c[1] or 0) + (c[2] or 0) - ending
end

if redis.call('EXISTS', KEYS[4]) == 1 then
  return '-3'
end

-- Token buckets: capacity = limit, refilled continuously at limit per minute. The tables are
-- made only when a limit is set (most keys have none).
local levels, remaining, resets
for i = 1, 4 do
  local cap = ARGV[5 + i] == '0' and 0 or tonumber(ARGV[5 + i])
  if cap > 0 then
    if not levels then
      levels, remaining, resets = {}, {-1, -1, -1, -1}, {0, 0, 0, 0}
    end
    local need = i % 2 == 1 and 1 or tonumber(ARGV[5])
    local b = redis.call('HMGET', KEYS[4 + i], 'level', 'ts')
    local level = tonumber(b[1]) or cap
    local ts = tonumber(b[2]) or now
    if now > ts then
      level = math.min(cap, level + (now - ts) * cap / 60000)
    end
    if need > cap then
      return string.format('-2 %d -1', i)
    end
    if level < need then
      return string.format('-2 %d %d', i, math.ceil((need - level) * 60000 / cap))
    end
    levels[i] = level - need
    remaining[i] = math.floor(levels[i])
    resets[i] = math.ceil((cap - levels[i]) * 60000 / cap)
  end
end

local available = cash + others - held
local hold = tonumber(ARGV[2])
if available <= 0 then
  return '-1 ' .. fmt(available)
end
if hold > available then
  if ARGV[4] == 'postpaid' then
    hold = available
  else
    return '-1 ' .. fmt(available)
  end
end

-- The monthly limits count what is held: concurrent requests pass them by one request at most.
if (w[6] and w[7] ~= 'notify') or ARGV[12] ~= '0' then
  local month = month_of(now)
  if w[6] and w[7] ~= 'notify' then
    local spend = (redis.call('HGET', KEYS[1], 'spend:' .. month) or 0) + held
    if spend + hold > w[6] + 0 then
      if w[8] ~= month then
        limit_reached(KEYS[1], KEYS[11], ARGV[11] + 0, now, month, spend, w[6] + 0, 'pause')
      end
      return '-4 ' .. w[6] .. ' ' .. fmt(spend)
    end
  end
  if ARGV[12] ~= '0' then
    local spent = (redis.call('HGET', KEYS[13], ARGV[13] .. '|' .. month) or 0) + 0
    if spent + hold > ARGV[12] + 0 then
      return '-5 ' .. ARGV[12] .. ' ' .. fmt(spent)
    end
  end
end

-- Numbers handed to redis.call are formatted by Redis with "%.17g" (slow): each one is
-- formatted here once, as an exact integer, and reused.
if levels then
  for i = 1, 4 do
    if levels[i] then
      redis.call('HSET', KEYS[4 + i], 'level', tostring(levels[i]), 'ts', now_s)
      redis.call('PEXPIRE', KEYS[4 + i], '120000')
    end
  end
end

local hold_s = fmt(hold)
if hold > 0 then
  redis.call('HINCRBY', KEYS[1], 'held', hold_s)
  redis.call('HSET', KEYS[3], ARGV[1], hold_s)
  redis.call('ZADD', KEYS[2], deadline_s, ARGV[1])
end
redis.call('HSET', KEYS[4], 'status', 'pending', 'hold', hold_s,
  'est_tokens', ARGV[5], 'created_ms', now_s, 'deadline_ms', deadline_s, unpack(ARGV, 15))
if ARGV[12] ~= '0' then  -- settle adds the charge to the key's month spend
  redis.call('HSET', KEYS[4], 'kc', '1')
end

if not levels then
  return '1 ' .. fmt(available - hold) .. ' ' .. hold_s .. ' ' .. now_s .. ' -1 -1 -1 -1 0 0 0 0'
end
return string.format('1 %d %s %s %d %d %d %d %d %d %d %d', available - hold, hold_s, now_s,
  remaining[1], remaining[2], remaining[3], remaining[4],
  resets[1], resets[2], resets[3], resets[4])
