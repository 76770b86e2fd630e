-- _prelude: helpers prepended to every script by gateway.billing.lua_scripts (Lua has no import).

-- Arithmetic converts a numeric string with one strtod; tonumber() takes two (lua_isnumber and
-- lua_tonumber), a measurable share of these short scripts. Hence "s + 0" on the hot path,
-- where s is known to be a number (a Redis reply, or an argument already checked).

local function now_ms()
  local t = redis.call('TIME')
  return t[1] * 1000 + math.floor(t[2] / 1000)
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
