-- sweep_v3: release the expired holds of one account, and finalise its credit grants whose end
-- has passed (when nothing admitted before their end is open; see end_grants).
--
-- KEYS[1] wallet hash   KEYS[2] holds zset   KEYS[3] hold amounts hash
-- KEYS[4] credit grants hash   KEYS[5] grant order zset   KEYS[6] ledger stream
-- KEYS[7] transactions stream
-- ARGV[1] ledger retention s
-- ARGV[2] the clock, unix ms ("0": Redis's TIME; tests drive the wallet's time with it: hold
--         deadlines and grant ends; the ledger is trimmed by Redis's clock)
-- Returns {released count, spendable balance, held}
if not string.find(ARGV[1], '^%d+$') or not string.find(ARGV[2] or '', '^%d+$') then
  return redis.error_reply('sweep_v3: malformed arguments')
end
CLOCK = ARGV[2] + 0
local now = now_ms()
local released = release_expired(KEYS[1], KEYS[2], KEYS[3], fmt(now))
local ending = 0
local next_end = redis.call('HGET', KEYS[1], 'credits_next_end')
if next_end and now >= next_end + 0 then
  ending = end_grants({wallet = KEYS[1], amounts = KEYS[3], grants = KEYS[4], order = KEYS[5],
                      ledger = KEYS[6], txs = KEYS[7]}, now, tonumber(ARGV[1]))
end
local w = redis.call('HMGET', KEYS[1], 'cash', 'held', 'free_ai', 'credits')
local held = (w[2] or 0) + 0
local spend = (w[1] or 0) + (w[3] or 0) + (w[4] or 0) - ending - held
return {released, fmt(spend), fmt(held)}
