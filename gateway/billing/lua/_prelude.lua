-- _prelude: helpers prepended to every script by gateway.billing.lua_scripts (Lua has no import).

-- Arithmetic converts a numeric string with one strtod; tonumber() takes two (lua_isnumber and
-- lua_tonumber), a measurable share of these short scripts. Hence "s + 0" on the hot path,
-- where s is known to be a number (a Redis reply, or an argument already checked).

local function redis_ms()
  local t = redis.call('TIME')
  return t[1] * 1000 + math.floor(t[2] / 1000)
end

-- The wallet's clock (ms). A script that takes a clock argument sets CLOCK from it before
-- anything reads the time: 0 (production) is Redis's TIME; a test drives the wallet's time
-- (grant ends, hold deadlines, the month) with anything else. Stream entry ids, and so the
-- trimming of streams (trim_cutoff), stay on Redis's clock whatever CLOCK says.
local CLOCK = 0

local function now_ms()
  if CLOCK > 0 then return CLOCK end
  return redis_ms()
end

-- The UTC calendar date (year, month, day) of a time in ms since the epoch, by the
-- days-to-civil algorithm (Lua in Redis has no os.date).
local function civil(ms)
  local z = math.floor(ms / 86400000) + 719468
  local era = math.floor(z / 146097)
  local doe = z - era * 146097
  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524)
    - math.floor(doe / 146096)) / 365)
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local d = doy - math.floor((153 * mp + 2) / 5) + 1
  local m = mp < 10 and mp + 3 or mp - 9
  return yoe + era * 400 + (m <= 2 and 1 or 0), m, d
end

-- "YYYY-MM" of a time in ms since the epoch (UTC).
local function month_of(ms)
  local y, m = civil(ms)
  return string.format('%04d-%02d', y, m)
end

-- RFC 3339 (UTC, whole seconds) of a time in ms since the epoch.
local function utc(ms)
  local y, m, d = civil(ms)
  local t = math.floor(ms / 1000) % 86400
  return string.format('%04d-%02d-%02dT%02d:%02d:%02dZ', y, m, d, math.floor(t / 3600),
    math.floor(t % 3600 / 60), t % 60)
end

local function fmt(n)
  return string.format('%d', n)
end

-- The MINID below which a stream kept ``retention_s`` seconds is trimmed. ``now`` is
-- now_ms()'s; when CLOCK drives it, Redis's own clock is read instead: entry ids are Redis's
-- time, and a driven clock far ahead must not trim real entries.
local function trim_cutoff(now, retention_s)
  local real = CLOCK > 0 and redis_ms() or now
  return fmt(math.max(real - retention_s * 1000, 0))
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
        local cutoff = trim_cutoff(now, retention_s)
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

-- Guards (docs/guards.md) -------------------------------------------------------------------

-- ``n`` (integer nanodollars) as the API shows USD: "12.50", "0.0000042", "-3.00".
local function usd(n)
  local sign = n < 0 and '-' or ''
  n = math.abs(n)
  local frac = n % 1000000000
  local s = string.gsub(string.format('%d.%09d', (n - frac) / 1000000000, frac), '0+$', '')
  local decimals = #s - string.find(s, '.', 1, true)
  if decimals < 2 then s = s .. string.rep('0', 2 - decimals) end
  return sign .. s
end

-- An event: a ledger entry of type "event" (name ``name``, cause ``cause``, ``data`` a table of
-- strings), delivered by the dispatcher from the ledger feed. Returns its entry id.
local function emit(ledger, retention_s, now, name, cause, data)
  local cutoff = trim_cutoff(now, retention_s)
  return redis.call('XADD', ledger, 'MINID', '~', cutoff, 'LIMIT', '100', '*',
    't', 'event', 'e', name, 'r', cause, 'd', cjson.encode(data), 'a', '0')
end

-- Balance alerts: each threshold in ``alerts`` ("t1,t2": nanodollars) fires one balance_alert
-- when the settled ``total`` is below it and it is armed, and is re-armed once the total is at
-- or above it again. ``off`` lists the thresholds disarmed ("" or nil: none).
local function check_alerts(wallet, ledger, retention_s, now, total, alerts, off)
  local was = off or ''
  local low = {}
  for t in string.gmatch(alerts, '%d+') do
    if total < t + 0 then
      if not string.find(',' .. was .. ',', ',' .. t .. ',', 1, true) then
        emit(ledger, retention_s, now, 'balance_alert', t,
          {threshold = usd(t + 0), balance = usd(total)})
      end
      low[#low + 1] = t
    end
  end
  local now_off = table.concat(low, ',')
  if now_off ~= was then
    if now_off == '' then
      redis.call('HDEL', wallet, 'alerts_off')
    else
      redis.call('HSET', wallet, 'alerts_off', now_off)
    end
  end
end

-- Auto top-up: below the rule's threshold, with none pending, past the back-off and within the
-- day's count, ask for one top-up (wallet_balance_low, with the order id it must use).
-- ``auto`` is "threshold,amount,target,max a day,pending ms"; ``pending`` "order id|until ms".
local function check_auto(wallet, ledger, retention_s, now, total, auto, pending)
  local threshold, amount, target, most, pending_ms = string.match(auto,
    '^(%d+),(%d+),(%d+),(%d+),(%d+)$')
  if not threshold or total >= threshold + 0 then return end
  if pending then
    local ends = string.match(pending, '|(%d+)$')
    if ends and now < ends + 0 then return end
  end
  local s = redis.call('HMGET', wallet, 'auto_day', 'auto_count', 'auto_retry_at')
  local day = math.floor(now / 86400000)
  local count = (s[1] and s[1] + 0 == day) and (s[2] or 0) + 0 or 0
  if count >= most + 0 or now < (s[3] or 0) + 0 then return end
  local want = amount + 0
  if want == 0 then  -- refill to the target, rounded up to the cent
    want = target - total
    want = want + (10000000 - want % 10000000) % 10000000
  end
  if want <= 0 then return end
  local order = 'auto_' .. fmt(redis.call('HINCRBY', wallet, 'auto_seq', 1))
  redis.call('HSET', wallet, 'auto_pending', order .. '|' .. fmt(now + pending_ms),
    'auto_day', fmt(day), 'auto_count', fmt(count + 1))
  emit(ledger, retention_s, now, 'wallet_balance_low', order, {threshold = usd(threshold + 0),
    action = 'auto_top_up', amount = usd(want), order_id = order, balance = usd(total)})
end

-- The monthly limit's event, once a month: ``spend`` (this month's, held included where the
-- caller counts it) has reached ``limit``.
local function limit_reached(wallet, ledger, retention_s, now, month, spend, limit, action)
  redis.call('HSET', wallet, 'limit_notified', month)
  emit(ledger, retention_s, now, 'monthly_limit_reached', month, {limit = usd(limit),
    month_spend = usd(spend), action = action, month = month})
end
