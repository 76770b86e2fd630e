-- money_move_v2: move cash into or out of a wallet, once per order id.
--
-- KEYS[1] wallet hash   KEYS[2] orders hash   KEYS[3] transactions stream   KEYS[4] ledger
-- ARGV[1] kind: "topup" | "refund"
-- ARGV[2] amount, positive integer nanodollars
-- ARGV[3] order id
-- ARGV[4] note (free text, may be empty)
-- ARGV[5] ledger retention s
-- The move is written to the transactions stream (the money flow the wallet lists) and as an
-- entry of the ledger (type, order id as "r", amount, "s" the cash moved, balance after, note),
-- which v1 did not do: the ledger holds every money movement next to every charge.
-- Returns {status, stream entry id, fields...}
--   status 1: applied;  0: replay of an existing order (fields of that order);
--   -1: refund exceeds the unspent cash;  -2: balance would exceed what the wallet can hold
local MAX = 9007199254740991  -- 2^53 - 1: integers above it are not exact in Lua

local existing = redis.call('HGET', KEYS[2], ARGV[3])
if existing then
  local entry = redis.call('XRANGE', KEYS[3], existing, existing)
  local out = {0, existing}
  if entry[1] then
    for _, v in ipairs(entry[1][2]) do out[#out + 1] = v end
  end
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
local id = redis.call('XADD', KEYS[3], '*', unpack(fields))
local now = now_ms()
redis.call('XADD', KEYS[4], 'MINID', '~', fmt(math.max(now - ARGV[5] * 1000, 0)), 'LIMIT', '100', '*',
  't', ARGV[1], 'r', ARGV[3], 'a', ARGV[2], 's', '0,0,' .. ARGV[2], 'b', fmt(cash - held),
  'n', ARGV[4])
redis.call('HSET', KEYS[2], ARGV[3], id)
local out = {1, id}
for _, v in ipairs(fields) do out[#out + 1] = v end
return out
