-- auto_topup_failed_v1: an automatic top-up's payment failed; release the request for it.
--
-- KEYS[1] wallet hash   KEYS[2] ledger stream
-- ARGV[1] the auto top-up's order id (the wallet_balance_low event's)
-- ARGV[2] why it failed (the payment provider's words, may be empty)
-- ARGV[3] ledger retention s
--
-- Only while the wallet's pending auto top-up ("auto_pending", "<order id>|<until ms>") is this
-- order's: it is cleared, and the next request waits for a back-off ("auto_retry_at", read by
-- the settle's check_auto), which starts at 1 h and doubles with each failure up to 24 h
-- ("auto_backoff"); the top-up that finally arrives clears both (money_move_v6). One
-- auto_topup_failed event says so (docs/guards.md).
-- Returns 1 when released; 0 when the order is not the pending one (a repeat, or a late
-- answer after its time ran out): nothing changes.
local FIRST_MS, MOST_MS = 3600000, 86400000

if ARGV[1] == '' or not string.find(ARGV[3], '^%d+$') then
  return redis.error_reply('auto_topup_failed_v1: malformed arguments')
end

-- RFC 3339 (UTC, seconds) of a time in ms since the epoch, by the days-to-civil algorithm
-- (as month_of in the prelude; Lua in Redis has no os.date).
local function utc(ms)
  local s = math.floor(ms / 1000)
  local z = math.floor(s / 86400) + 719468
  local t = s % 86400
  local era = math.floor(z / 146097)
  local doe = z - era * 146097
  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524)
    - math.floor(doe / 146096)) / 365)
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local d = doy - math.floor((153 * mp + 2) / 5) + 1
  local m = mp < 10 and mp + 3 or mp - 9
  local y = yoe + era * 400 + (m <= 2 and 1 or 0)
  return string.format('%04d-%02d-%02dT%02d:%02d:%02dZ', y, m, d, math.floor(t / 3600),
    math.floor(t % 3600 / 60), t % 60)
end

local w = redis.call('HMGET', KEYS[1], 'auto_pending', 'auto_backoff')
if not w[1] or string.sub(w[1], 1, #ARGV[1] + 1) ~= ARGV[1] .. '|' then
  return 0
end
local now = now_ms()
local backoff = tonumber(w[2] or '') or FIRST_MS
local retry_at = now + backoff
redis.call('HDEL', KEYS[1], 'auto_pending')
redis.call('HSET', KEYS[1], 'auto_retry_at', fmt(retry_at),
  'auto_backoff', fmt(math.min(backoff * 2, MOST_MS)))
emit(KEYS[2], ARGV[3] + 0, now, 'auto_topup_failed', ARGV[1],
  {order_id = ARGV[1], reason = ARGV[2], retry_at = utc(retry_at)})
return 1
