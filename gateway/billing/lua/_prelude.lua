-- _prelude: helpers prepended to every script by gateway.billing.lua_scripts (Lua has no import).

-- Arithmetic converts a numeric string with one strtod; tonumber() takes two (lua_isnumber and
-- lua_tonumber), a measurable share of these short scripts. Hence "s + 0" on the hot path,
-- where s is known to be a number (a Redis reply, or an argument already checked).

local function now_ms()
  local t = redis.call('TIME')
  return t[1] * 1000 + math.floor(t[2] / 1000)
end

-- "YYYY-MM" of a time in ms since the epoch (UTC), by the days-to-civil algorithm (Lua in
-- Redis has no os.date).
local function month_of(ms)
  local z = math.floor(ms / 86400000) + 719468
  local era = math.floor(z / 146097)
  local doe = z - era * 146097
  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524)
    - math.floor(doe / 146096)) / 365)
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local m = mp < 10 and mp + 3 or mp - 9
  local y = yoe + era * 400 + (m <= 2 and 1 or 0)
  return string.format('%04d-%02d', y, m)
end

local function fmt(n)
  return string.format('%d', n)
end

-- Holds past their deadline belong to requests whose gateway died: release each exactly once.
-- ``now_s`` is the time in ms as a string. Returns the number released.
local function release_expired(wallet, holds, amounts, now_s)
  local stale = redis.call('ZRANGEBYSCORE', holds, '-inf', now_s, 'LIMIT', '0', '100')
  for _, rid in ipairs(stale) do
    local amt = redis.call('HGET', amounts, rid)
    if amt then
      redis.call('HINCRBY', wallet, 'held', -tonumber(amt))
      redis.call('HDEL', amounts, rid)
    end
    redis.call('ZREM', holds, rid)
  end
  return #stale
end

-- Credit grants (docs/wallet.md). ``grants``: hash, grant id -> remaining (nanodollars).
-- ``order``: zset, every score 0, members "<9999 - priority:4><end ms:13><created ms:13>:<id>"
-- so that the lexicographic order is the drain order: priority high first, then the sooner
-- end (no end: NEVER, last), then the older. A grant past its end is "ending": it backs no new
-- hold, but requests admitted before its end may still draw on it; once no such request is
-- open it is finalised, its remainder leaving through one credit_expired ledger entry.
local NEVER = '9999999999999'

local function grant_end(member)
  local e = string.sub(member, 5, 17)
  return e == NEVER and 0 or tonumber(e)
end

local function grant_id(member)
  return string.sub(member, 32)
end

-- The admission time (ms) of the oldest open hold; nil when none is open. A request id carries
-- its admission time: "req_" and 11 hex digits.
local function oldest_hold(amounts)
  local oldest
  for _, rid in ipairs(redis.call('HKEYS', amounts)) do
    local ms = tonumber(string.sub(rid, 5, 15), 16)
    if ms and (not oldest or ms < oldest) then
      oldest = ms
    end
  end
  return oldest
end

-- Spendable now, as holds see it: cash, the AI free quota, and credits not ending.
local function spendable(w, ending)
  return (w.cash or 0) + (w.free_ai or 0) + (w.credits or 0) - ending
end

-- Finalise the grants whose end has passed and that no open request admitted before it can
-- draw on; keep ``credits_next_end`` (the soonest end still to act on). Returns what the grants
-- still ending hold. ``k`` names the keys: wallet, amounts, grants, order, ledger, txs.
local function end_grants(k, now, retention_s)
  local ending, next_end, oldest, looked = 0, 0, nil, false
  for _, member in ipairs(redis.call('ZRANGE', k.order, 0, -1)) do
    local ends = grant_end(member)
    if ends > 0 and ends <= now then
      if not looked then
        oldest, looked = oldest_hold(k.amounts), true
      end
      local id = grant_id(member)
      local left = tonumber(redis.call('HGET', k.grants, id) or '0')
      if oldest and oldest < ends then  -- a request admitted before its end is still open
        ending = ending + left
        if next_end == 0 or ends < next_end then next_end = ends end
      else
        redis.call('HDEL', k.grants, id)
        redis.call('ZREM', k.order, member)
        local credits = redis.call('HINCRBY', k.wallet, 'credits', '-' .. fmt(left))
        redis.call('HINCRBY', k.wallet, 'expired', fmt(left))
        local w = redis.call('HMGET', k.wallet, 'cash', 'held', 'free_ai')
        local balance = fmt((w[1] or 0) + (w[3] or 0) + credits - (w[2] or 0))
        local cutoff = fmt(math.max(now - retention_s * 1000, 0))
        redis.call('XADD', k.ledger, 'MINID', '~', cutoff, 'LIMIT', '100', '*',
          't', 'credit_expired', 'r', id, 'a', fmt(left), 's', '0,' .. fmt(left) .. ',0',
          'b', balance, 'n', '')
        redis.call('XADD', k.txs, 'MINID', '~', cutoff, 'LIMIT', '100', '*',
          'type', 'credit_expired', 'amount', fmt(left), 'order_id', id, 'balance', balance,
          'ts', fmt(now), 'note', '')
      end
    elseif ends > now and (next_end == 0 or ends < next_end) then
      next_end = ends
    end
  end
  if next_end > 0 then
    redis.call('HSET', k.wallet, 'credits_next_end', fmt(next_end))
  else
    redis.call('HDEL', k.wallet, 'credits_next_end')
  end
  return ending
end
