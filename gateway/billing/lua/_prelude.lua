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
