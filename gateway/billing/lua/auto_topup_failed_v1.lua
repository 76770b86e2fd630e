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
