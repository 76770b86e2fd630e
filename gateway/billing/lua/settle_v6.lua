-- settle_v6: charge a finished request its actual cost, release its hold, and write its one
-- ledger entry, exactly once.
--
-- KEYS[1] wallet hash        KEYS[2] holds zset       KEYS[3] hold amounts hash
-- KEYS[4] request record     KEYS[5] ledger stream
-- KEYS[6] key tpm bucket     KEYS[7] account tpm bucket
-- ARGV[1] request id         ARGV[2] cost (nanodollars, 0 <= cost < 2^53)
-- ARGV[3] settle window s: how long the request id stays known once settled (replays of the
--         same settle change nothing) or released before its admission (tombstone)
-- ARGV[4] actual tokens      ARGV[5] key tpm limit   ARGV[6] account tpm limit (0 = none)
-- ARGV[7] ledger retention s ARGV[8] policy: "strict" | "postpaid"
-- ARGV[9] usage "u"          ARGV[10] outcome "y" (see gateway/billing/ledger.py)
-- The pending record (admit_v3) carries the request's key "k", project "p", model "m" and
-- admission facts "x"; they go into the ledger entry with the usage, the outcome, the cost,
-- its split by source ("s": free quota, credits, cash) and the balance after ("b"). The entry
-- is the request's record from then on: the pending record is replaced by a marker (the
-- entry's id, the cost and the cut) that lives ARGV[3] seconds. A ledger entry older than
-- ARGV[7] seconds is trimmed as new ones are added (a bounded amount of work per call).
-- Under "strict" the charge never takes the balance below zero: a cost above what the wallet
-- can pay (its own hold included) is cut to that, and the cut is recorded as the shortfall.
-- The request's own hold is always payable: it was set aside for it at admission.
-- The spend month is Redis's clock's. A settle that finds no admission leaves a tombstone, so
-- an admission arriving later places no hold (admit answers "-3").
-- Every check comes before the first write: a script error must not leave half a settle.
-- Returns one string of space-separated integers (and the entry id):
--   "1 <balance after> <cost charged> <shortfall> <entry id>"  settled now
--   "0 <balance now> <cost charged> <shortfall> <entry id>"    settled earlier: nothing changed
--   "-1"                                                       no such request: nothing
--                                                              charged, the id is now used
local MAX = 9007199254740991
local cost = tonumber(ARGV[2])
if not cost or cost < 0 or cost > MAX or cost ~= math.floor(cost) then
  return redis.error_reply('settle_v6: cost out of range: ' .. tostring(ARGV[2]))
end
local limited = ARGV[5] ~= '0' or ARGV[6] ~= '0'
local tokens, key_tpm, acct_tpm = 0, 0, 0
if limited then
  tokens, key_tpm, acct_tpm = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
end
if not (tokens and key_tpm and acct_tpm) or not string.find(ARGV[7], '^%d+$')
    or not string.find(ARGV[3], '^%d+$') or #ARGV ~= 10 then
  return redis.error_reply('settle_v6: malformed arguments')
end
local rec = redis.call('HMGET', KEYS[4], 'status', 'est_tokens', 'e', 'c', 'f', 'k', 'p', 'm',
  'x', 'created_ms')
local status = rec[1]
local w = redis.call('HMGET', KEYS[1], 'cash', 'held')
local cash = (w[1] or 0) + 0
local held = (w[2] or 0) + 0
if rec[3] then  -- settled earlier: its marker
  return '0 ' .. fmt(cash - held) .. ' ' .. rec[4] .. ' ' .. rec[5] .. ' ' .. rec[3]
end
if not status then
  redis.call('HSET', KEYS[4], 'status', 'released')
  redis.call('EXPIRE', KEYS[4], ARGV[3])
  return '-1'
end
if status ~= 'pending' then  -- a tombstone: released before it was ever admitted
  return '-1'
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

local now = now_ms()
if cost > 0 then
  cash = redis.call('HINCRBY', KEYS[1], 'cash', '-' .. cost_s)
  redis.call('HINCRBY', KEYS[1], 'charges', cost_s)
  redis.call('HINCRBY', KEYS[1], 'spend:' .. month_of(now), cost_s)
end
local balance_s = fmt(cash - held)

-- Free quota and credits come with the wallet issue; until then every unit is cash.
local entry = redis.call('XADD', KEYS[5], 'MINID', '~', fmt(math.max(now - ARGV[7] * 1000, 0)), 'LIMIT',
  '100', '*', 't', 'charge', 'r', ARGV[1], 'k', rec[6] or '', 'p', rec[7] or '',
  'm', rec[8] or '', 'u', ARGV[9], 'x', (rec[9] or '') .. '|' .. (rec[10] or '') .. '|' .. (hold_s or '0'),
  'y', ARGV[10] .. '|' .. shortfall_s, 'a', cost_s, 's', '0,0,' .. cost_s, 'b', balance_s)

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

redis.call('DEL', KEYS[4])
redis.call('HSET', KEYS[4], 'e', entry, 'c', cost_s, 'f', shortfall_s)
redis.call('EXPIRE', KEYS[4], ARGV[3])
return '1 ' .. balance_s .. ' ' .. cost_s .. ' ' .. shortfall_s .. ' ' .. entry
