-- money_move_v4: move money into or out of a wallet, once per order id.
--
-- KEYS[1] wallet hash   KEYS[2] the order's key (hash)   KEYS[3] transactions stream
-- KEYS[4] ledger stream KEYS[5] credit grants hash       KEYS[6] grant order zset
-- ARGV[1] kind: "topup" | "refund" | "credit" | "free_quota"
-- ARGV[2] amount, positive integer nanodollars
-- ARGV[3] order id (a credit's grant id)
-- ARGV[4] note (free text, may be empty)
-- ARGV[5] ledger retention s (the transactions and ledger entries are trimmed past it)
-- ARGV[6] order retention s (how long a replay of the order id answers with its transaction)
-- ARGV[7] a credit's end, unix ms (0: none)   ARGV[8] a credit's priority, 0..9999
-- ARGV[9] a free quota's category: "ai" | "cloud" (free quota is not money in: the ledger
--         has it, the transactions stream does not)
-- The move is written to the transactions stream (the money flow the wallet lists) and as a
-- ledger entry ("s": free quota, credits, cash). The order's own key keeps the transaction, so
-- a replay is answered from it. v4: credits (grants, docs/wallet.md); a refund returns cash
-- only, and never what open holds rely on.
-- Returns {status, transaction id, fields...}
--   status 1: applied;  0: replay of an existing order (fields of that order);
--   -1: refund exceeds the unspent cash;  -2: balance would exceed what the wallet can hold
local MAX = 9007199254740991  -- 2^53 - 1: integers above it are not exact in Lua

if not string.find(ARGV[5], '^%d+$') or not string.find(ARGV[6], '^%d+$')
    or not string.find(ARGV[7], '^%d+$') or not string.find(ARGV[8], '^%d+$')
    or tonumber(ARGV[8]) > 9999 or (ARGV[9] ~= 'ai' and ARGV[9] ~= 'cloud') then
  return redis.error_reply('money_move_v4: malformed arguments')
end
local existing = redis.call('HGETALL', KEYS[2])
if #existing > 0 then
  local out = {0}
  for _, v in ipairs(existing) do out[#out + 1] = v end
  return out
end

local amount = tonumber(ARGV[2])
local w = redis.call('HMGET', KEYS[1], 'cash', 'held', 'free_ai', 'credits', 'free_cloud')
local cash, held = (w[1] or 0) + 0, (w[2] or 0) + 0
local others = (w[3] or 0) + (w[4] or 0) + (w[5] or 0)
local now = now_ms()
local split = '0,0,' .. ARGV[2]

if ARGV[1] == 'refund' then
  local refundable = math.min(cash, cash + others - held)
  if amount > refundable then
    return {-1, fmt(math.max(refundable, 0))}
  end
  cash = redis.call('HINCRBY', KEYS[1], 'cash', -amount)
  redis.call('HINCRBY', KEYS[1], 'refunds', amount)
elseif ARGV[1] == 'credit' then
  if cash + others + amount > MAX then
    return {-2, fmt(cash + others - held)}
  end
  local ends = tonumber(ARGV[7])
  local member = string.format('%04d%s%013d:%s', 9999 - tonumber(ARGV[8]),
    ends == 0 and NEVER or string.format('%013d', ends), now, ARGV[3])
  redis.call('HSET', KEYS[5], ARGV[3], ARGV[2])
  redis.call('ZADD', KEYS[6], 0, member)
  others = others + amount
  redis.call('HINCRBY', KEYS[1], 'credits', amount)
  redis.call('HINCRBY', KEYS[1], 'granted', amount)
  if ends > 0 then
    local next_end = redis.call('HGET', KEYS[1], 'credits_next_end')
    if not next_end or ends < next_end + 0 then
      redis.call('HSET', KEYS[1], 'credits_next_end', ARGV[7])
    end
  end
  split = '0,' .. ARGV[2] .. ',0'
elseif ARGV[1] == 'free_quota' then
  if cash + others + amount > MAX then
    return {-2, fmt(cash + others - held)}
  end
  redis.call('HINCRBY', KEYS[1], 'free_' .. ARGV[9], amount)
  redis.call('HINCRBY', KEYS[1], 'free_granted', amount)
  others = others + amount
  split = ARGV[2] .. ',0,0'
else
  if cash + others + amount > MAX then
    return {-2, fmt(cash + others - held)}
  end
  cash = redis.call('HINCRBY', KEYS[1], 'cash', amount)
  redis.call('HINCRBY', KEYS[1], 'topups', amount)
end

local balance = fmt(cash + others - held)
local fields = {
  'type', ARGV[1], 'amount', ARGV[2], 'order_id', ARGV[3],
  'balance', balance, 'ts', fmt(now), 'note', ARGV[4],
}
if ARGV[1] == 'credit' then
  fields[#fields + 1] = 'expires_ms'
  fields[#fields + 1] = ARGV[7]
  fields[#fields + 1] = 'priority'
  fields[#fields + 1] = ARGV[8]
end
local cutoff = fmt(math.max(now - ARGV[5] * 1000, 0))
local entry = redis.call('XADD', KEYS[4], 'MINID', '~', cutoff, 'LIMIT', '100', '*',
  't', ARGV[1], 'r', ARGV[3], 'a', ARGV[2], 's', split, 'b', balance, 'n', ARGV[4])
local id = entry
if ARGV[1] ~= 'free_quota' then
  id = redis.call('XADD', KEYS[3], 'MINID', '~', cutoff, 'LIMIT', '100', '*', unpack(fields))
end
redis.call('HSET', KEYS[2], 'id', id, unpack(fields))
redis.call('EXPIRE', KEYS[2], ARGV[6])
local out = {1, 'id', id}
for _, v in ipairs(fields) do out[#out + 1] = v end
return out
