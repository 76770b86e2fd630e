-- money_move_v3: move cash into or out of a wallet, once per order id.
--
-- KEYS[1] wallet hash   KEYS[2] the order's key (hash)   KEYS[3] transactions stream
-- KEYS[4] ledger stream
-- ARGV[1] kind: "topup" | "refund"
-- ARGV[2] amount, positive integer nanodollars
-- ARGV[3] order id
-- ARGV[4] note (free text, may be empty)
-- ARGV[5] ledger retention s (the transactions and ledger entries are trimmed past it)
-- ARGV[6] order retention s (how long a replay of the order id answers with its transaction)
-- The move is written to the transactions stream (the money flow the wallet lists) and as a
-- ledger entry. The order's own key keeps the transaction, so a replay is answered from it,
-- not from the stream (v2 read the stream entry back, so the stream could never be trimmed).
-- Returns {status, transaction id, fields...}
--   status 1: applied;  0: replay of an existing order (fields of that order);
--   -1: refund exceeds the unspent cash;  -2: balance would exceed what the wallet can hold
local MAX = 9007199254740991  -- 2^53 - 1: integers above it are not exact in Lua

if not string.find(ARGV[5], '^%d+$') or not string.find(ARGV[6], '^%d+$') then
  return redis.error_reply('money_move_v3: malformed arguments')
end
local existing = redis.call('HGETALL', KEYS[2])
if #existing > 0 then
  local out = {0}
  for _, v in ipairs(existing) do out[#out + 1] = v end
  return out
end

local amount = tonumber(ARGV[2])
local cash = tonumber(redis.call('HGET', KEYS[1], 'cash') or '0')
local held = tonumber(redis.call('HGET', KEYS[1], 'held') or '0')

if ARGV[1] == 'refund' then
  if amount > cash - held then
    return {-1, fmt(cash - held)}
  end
  cash = redis.call('HINCRBY', KEYS[1], 'cash', -amount)
  redis.call('HINCRBY', KEYS[1], 'refunds', amount)
else
  if cash + amount > MAX then
    return {-2, fmt(cash - held)}
  end
  cash = redis.call('HINCRBY', KEYS[1], 'cash', amount)
  redis.call('HINCRBY', KEYS[1], 'topups', amount)
end

local fields = {
  'type', ARGV[1], 'amount', ARGV[2], 'order_id', ARGV[3],
  'balance', fmt(cash - held), 'ts', fmt(now_ms()), 'note', ARGV[4],
}
local cutoff = fmt(math.max(now_ms() - ARGV[5] * 1000, 0))
local id = redis.call('XADD', KEYS[3], 'MINID', '~', cutoff, 'LIMIT', '100', '*',
  unpack(fields))
redis.call('XADD', KEYS[4], 'MINID', '~', cutoff, 'LIMIT', '100', '*',
  't', ARGV[1], 'r', ARGV[3], 'a', ARGV[2], 's', '0,0,' .. ARGV[2], 'b', fmt(cash - held),
  'n', ARGV[4])
redis.call('HSET', KEYS[2], 'id', id, unpack(fields))
redis.call('EXPIRE', KEYS[2], ARGV[6])
local out = {1, 'id', id}
for _, v in ipairs(fields) do out[#out + 1] = v end
return out
