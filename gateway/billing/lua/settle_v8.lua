-- settle_v8: charge a finished request its actual cost, release its hold, and write its one
-- ledger entry, exactly once; then apply the account's guards (docs/guards.md).
--
-- KEYS[1] wallet hash        KEYS[2] holds zset       KEYS[3] hold amounts hash
-- KEYS[4] request record     KEYS[5] ledger stream
-- KEYS[6] key tpm bucket     KEYS[7] account tpm bucket
-- KEYS[8] credit grants hash KEYS[9] grant order zset KEYS[10] transactions stream
-- KEYS[11] key spend hash (key id|month -> spend; for keys with a monthly cap)
-- v8: the guards: balance alerts, the auto top-up's request, the monthly limit's event, each an
-- event entry in the ledger after the charge's; a capped key's month spend.
-- v7: the charge drains the AI free quota, then credits in the grant order (a grant that ended
-- before this request was admitted is passed over), then cash (docs/wallet.md); the entry's
-- "s" is that split and "g" the grants drawn ("id:amount;..."). Grants past their end are
-- finalised here once nothing admitted before their end is open.
-- ARGV[1] request id         ARGV[2] cost (nanodollars, 0 <= cost < 2^53)
-- ARGV[3] settle window s: how long the request id stays known once settled (replays of the
--         same settle change nothing) or released before its admission (tombstone)
-- ARGV[4] actual tokens      ARGV[5] key tpm limit   ARGV[6] account tpm limit (0 = none)
-- ARGV[7] ledger retention s ARGV[8] policy: "strict" | "postpaid"
-- ARGV[9] usage "u"          ARGV[10] outcome "y" (see gateway/billing/ledger.py)
-- ARGV[11] the clock, unix ms ("0": Redis's TIME; tests drive the wallet's time with it: the
--          finalising of grants, the spend month; the ledger is trimmed by Redis's clock)
-- The pending record (admit_v3) carries the request's key "k", project "p", model "m" and
-- admission facts "x"; they go into the ledger entry with the usage, the outcome, the cost,
-- its split by source ("s": free quota, credits, cash) and the balance after ("b"). The entry
-- is the request's record from then on: the pending record is replaced by a marker (the
-- entry's id, the cost and the cut) that lives ARGV[3] seconds. A ledger entry older than
-- ARGV[7] seconds is trimmed as new ones are added (a bounded amount of work per call).
-- Under "strict" the charge never takes the balance below zero: a cost above what the wallet
-- can pay (its own hold included) is cut to that, and the cut is recorded as the shortfall.
-- The request's own hold is always payable: it was set aside for it at admission.
-- The spend month is the clock's (ARGV[11]; Redis's in production). A settle that finds no admission leaves a tombstone, so
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
  return redis.error_reply('settle_v8: cost out of range: ' .. tostring(ARGV[2]))
end
local limited = ARGV[5] ~= '0' or ARGV[6] ~= '0'
local tokens, key_tpm, acct_tpm = 0, 0, 0
if limited then
  tokens, key_tpm, acct_tpm = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
end
if not (tokens and key_tpm and acct_tpm) or not string.find(ARGV[7], '^%d+$')
    or not string.find(ARGV[3], '^%d+$') or #ARGV ~= 11
    or not string.find(ARGV[11], '^%d+$') then
  return redis.error_reply('settle_v8: malformed arguments')
end
CLOCK = ARGV[11] + 0
local rec = redis.call('HMGET', KEYS[4], 'status', 'est_tokens', 'e', 'c', 'f', 'k', 'p', 'm',
  'x', 'created_ms', 'kc')
local status = rec[1]
local w = redis.call('HMGET', KEYS[1], 'cash', 'held', 'free_ai', 'credits', 'credits_next_end',
  'free_cloud', 'alerts', 'alerts_off', 'auto', 'auto_pending', 'limit', 'limit_action',
  'limit_notified')
local cash = (w[1] or 0) + 0
local held = (w[2] or 0) + 0
local free = (w[3] or 0) + 0
local credits = (w[4] or 0) + 0
if rec[3] then  -- settled earlier: its marker
  return '0 ' .. fmt(cash + free + credits - held) .. ' ' .. rec[4] .. ' ' .. rec[5] .. ' '
    .. rec[3]
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

-- The grants this request may draw on, in drain order: {member, id, left}. Its admission time
-- is the one its id carries, as end_grants reads it for open holds: one clock for both, so a
-- grant is either still drawable by this request or finalised, never both (the record's
-- created_ms is Redis's clock, which may differ from the gateway's by a few ms).
local admitted = tonumber(string.sub(ARGV[1], 5, 15), 16) or (rec[10] or 0) + 0
local drawable, usable = {}, 0
if credits > 0 then
  for _, member in ipairs(redis.call('ZRANGE', KEYS[9], 0, -1)) do
    local ends = grant_end(member)
    if ends == 0 or ends > admitted then
      local id = grant_id(member)
      local left = (redis.call('HGET', KEYS[8], id) or 0) + 0
      drawable[#drawable + 1] = {member, id, left}
      usable = usable + left
    end
  end
end

local shortfall = 0
if ARGV[8] == 'strict' then
  local can_pay = math.max(cash + free + usable - (held - hold), hold)
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
local split, drawn = '0,0,' .. cost_s, ''
local month, month_spend = nil, nil
if cost > 0 then
  local rest = cost
  local from_free, from_credits = 0, 0
  if free > 0 then
    from_free = math.min(free, rest)
    rest = rest - from_free
    free = redis.call('HINCRBY', KEYS[1], 'free_ai', '-' .. fmt(from_free))
    redis.call('HINCRBY', KEYS[1], 'charges_free', fmt(from_free))
  end
  local parts = {}
  for _, g in ipairs(drawable) do
    if rest == 0 then break end
    local take = math.min(g[3], rest)
    if take > 0 then
      rest = rest - take
      from_credits = from_credits + take
      parts[#parts + 1] = g[2] .. ':' .. fmt(take)
      if take == g[3] then
        redis.call('HDEL', KEYS[8], g[2])
        redis.call('ZREM', KEYS[9], g[1])
      else
        redis.call('HSET', KEYS[8], g[2], fmt(g[3] - take))
      end
    end
  end
  if from_credits > 0 then
    credits = redis.call('HINCRBY', KEYS[1], 'credits', '-' .. fmt(from_credits))
    redis.call('HINCRBY', KEYS[1], 'charges_credits', fmt(from_credits))
    drawn = table.concat(parts, ';')
  end
  if rest > 0 then  -- the usual case: all of it, as a string formatted once
    cash = redis.call('HINCRBY', KEYS[1], 'cash', '-' .. (rest == cost and cost_s or fmt(rest)))
  end
  redis.call('HINCRBY', KEYS[1], 'charges', cost_s)
  month = month_of(now)
  month_spend = redis.call('HINCRBY', KEYS[1], 'spend:' .. month, cost_s)
  if rec[11] then  -- a key with a monthly cap: its own spend, per month
    redis.call('HINCRBY', KEYS[11], (rec[6] or '') .. '|' .. month, cost_s)
  end
  if from_free > 0 or from_credits > 0 then
    split = fmt(from_free) .. ',' .. fmt(from_credits) .. ',' .. fmt(rest)
  end
end
local balance_s = fmt(cash + free + credits - held)

local entry = redis.call('XADD', KEYS[5], 'MINID', '~', trim_cutoff(now, ARGV[7]), 'LIMIT',
  '100', '*', 't', 'charge', 'r', ARGV[1], 'k', rec[6] or '', 'p', rec[7] or '',
  'm', rec[8] or '', 'u', ARGV[9], 'x', (rec[9] or '') .. '|' .. (rec[10] or '') .. '|' .. (hold_s or '0'),
  'y', ARGV[10] .. '|' .. shortfall_s, 'a', cost_s, 's', split, 'g', drawn, 'b', balance_s)

if w[5] and now >= w[5] + 0 then  -- a grant's end has passed, and this hold is gone: rarely
  end_grants({wallet = KEYS[1], amounts = KEYS[3], grants = KEYS[8], order = KEYS[9],
              ledger = KEYS[5], txs = KEYS[10]}, now, ARGV[7] + 0)
end

-- The guards watch the settled total (holds given back): a hold is not spend.
if w[7] or w[9] or (w[11] and month_spend) then
  local total = cash + free + credits + (w[6] or 0)
  if w[7] then check_alerts(KEYS[1], KEYS[5], ARGV[7] + 0, now, total, w[7], w[8]) end
  if w[9] then check_auto(KEYS[1], KEYS[5], ARGV[7] + 0, now, total, w[9], w[10]) end
  if w[11] and month_spend and month_spend >= w[11] + 0 and w[13] ~= month then
    limit_reached(KEYS[1], KEYS[5], ARGV[7] + 0, now, month, month_spend, w[11] + 0,
      w[12] or 'pause')
  end
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

redis.call('DEL', KEYS[4])
redis.call('HSET', KEYS[4], 'e', entry, 'c', cost_s, 'f', shortfall_s)
redis.call('EXPIRE', KEYS[4], ARGV[3])
return '1 ' .. balance_s .. ' ' .. cost_s .. ' ' .. shortfall_s .. ' ' .. entry
