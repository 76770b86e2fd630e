-- settle_v5: charge a finished request its actual cost and release its hold, exactly once.
--
-- KEYS[1] wallet hash        KEYS[2] holds zset       KEYS[3] hold amounts hash
-- KEYS[4] request record     KEYS[5] charges stream
-- KEYS[6] key tpm bucket     KEYS[7] account tpm bucket
-- ARGV[1] request id         ARGV[2] cost (nanodollars, 0 <= cost < 2^53)
-- ARGV[3] tombstone ttl s (how long a release that found no admission keeps the id used)
-- ARGV[4] actual tokens      ARGV[5] key tpm limit   ARGV[6] account tpm limit (0 = none)
-- ARGV[7] record ttl s       ARGV[8] policy: "strict" | "postpaid"
-- ARGV[9..] record fields as name, value pairs
-- Under "strict" the charge never takes the balance below zero: a cost above what the wallet
-- can pay (its own hold included) is cut to that, and the cut is recorded as "shortfall".
-- The request's own hold is always payable: it was set aside for it at admission, and paying
-- up to it never lowers the balance.
-- The month the spend counts in ("spend:YYYY-MM") comes from Redis's clock, like every other
-- time in these scripts (v4 took it from the calling host's clock).
-- A settle that finds no admission (its admission's reply was lost, or it has not arrived
-- yet) leaves a tombstone: the request id counts as used, so an admission arriving later
-- places no hold (admit answers "-3") and nothing waits for the hold to expire (v4 did
-- nothing, so a late admission's hold stayed until its deadline).
-- A pending record has no expiry (admit_v3), so a settle replayed from a gateway's journal
-- however late still finds its request; the record expires ARGV[7] seconds after the settle.
-- Every check comes before the first write: a script error must not leave half a settle.
-- Returns one string of space-separated integers:
--   "1 <balance after> <cost charged> <shortfall>"  settled now
--   "0 <balance now> <cost charged> <shortfall>"    already settled earlier: nothing changed
--   "-1"                                            no such request: nothing charged, the id
--                                                   is now used (tombstone)
local MAX = 9007199254740991
local cost = tonumber(ARGV[2])
if not cost or cost < 0 or cost > MAX or cost ~= math.floor(cost) then
  return redis.error_reply('settle_v5: cost out of range: ' .. tostring(ARGV[2]))
end
-- The arguments used after the first write are checked here too (only a caller's bug can
-- make them wrong, but then the script must fail before it writes anything).
local limited = ARGV[5] ~= '0' or ARGV[6] ~= '0'
local tokens, key_tpm, acct_tpm = 0, 0, 0
if limited then
  tokens, key_tpm, acct_tpm = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
end
if not (tokens and key_tpm and acct_tpm) or not string.find(ARGV[7], '^%d+$')
    or not string.find(ARGV[3], '^%d+$') or #ARGV % 2 == 1 then
  return redis.error_reply('settle_v5: malformed arguments')
end
local rec = redis.call('HMGET', KEYS[4], 'status', 'est_tokens')
local status = rec[1]
local w = redis.call('HMGET', KEYS[1], 'cash', 'held')
local cash = (w[1] or 0) + 0
local held = (w[2] or 0) + 0
if not status then
  redis.call('HSET', KEYS[4], 'status', 'released', 'cost', '0', 'shortfall', '0')
  redis.call('EXPIRE', KEYS[4], ARGV[3])
  return '-1'
end
if status ~= 'pending' then
  local done = redis.call('HMGET', KEYS[4], 'cost', 'shortfall')
  return '0 ' .. fmt(cash - held) .. ' ' .. (done[1] or '0') .. ' ' .. (done[2] or '0')
end

-- The rate limiter counted the estimate at admission; the settle gives back (or takes) the
-- difference.
local delta = limited and (rec[2] or 0) - tokens or 0

local hold_s = redis.call('HGET', KEYS[3], ARGV[1])  -- digits, as admit wrote them
local hold = (hold_s or 0) + 0
local shortfall = 0
if ARGV[8] == 'strict' then
  local can_pay = math.max(cash - (held - hold), hold)
  if cost > can_pay then
    shortfall = cost - can_pay
    cost = can_pay
  end
end

-- Numbers handed to redis.call are formatted by Redis with "%.17g" (slow): each one is
-- formatted here once, as an exact integer, and reused.
local cost_s = fmt(cost)
local shortfall_s = shortfall == 0 and '0' or fmt(shortfall)
if hold > 0 then
  held = redis.call('HINCRBY', KEYS[1], 'held', '-' .. hold_s)
  redis.call('HDEL', KEYS[3], ARGV[1])
end
redis.call('ZREM', KEYS[2], ARGV[1])

local balance_s
if cost > 0 then
  cash = redis.call('HINCRBY', KEYS[1], 'cash', '-' .. cost_s)
  redis.call('HINCRBY', KEYS[1], 'charges', cost_s)
  redis.call('HINCRBY', KEYS[1], 'spend:' .. month_of(now_ms()), cost_s)
  balance_s = fmt(cash - held)
  redis.call('XADD', KEYS[5], '*', 'request_id', ARGV[1], 'amount', cost_s,
    'balance', balance_s)
end

if delta ~= 0 then
  local caps = {key_tpm, acct_tpm}
  for i = 6, 7 do
    local cap = caps[i - 5]
    if cap > 0 then
      local level = redis.call('HGET', KEYS[i], 'level')  -- nil: the bucket expired
      if level then
        redis.call('HSET', KEYS[i], 'level', tostring(math.min(cap, level + delta)))
      end
    end
  end
end

redis.call('HSET', KEYS[4], 'cost', cost_s, 'shortfall', shortfall_s, unpack(ARGV, 9))
redis.call('EXPIRE', KEYS[4], ARGV[7])
return '1 ' .. (balance_s or fmt(cash - held)) .. ' ' .. cost_s .. ' ' .. shortfall_s
