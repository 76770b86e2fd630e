-- money_move_v6: move money into or out of a wallet, once per order id.
--
-- KEYS[1] wallet hash   KEYS[2] the order's key (hash)   KEYS[3] transactions stream
-- KEYS[4] ledger stream KEYS[5] credit grants hash       KEYS[6] grant order zset
-- KEYS[7] account profile hash (billing details)          KEYS[8] receipts hash
-- KEYS[9] cash lots hash  KEYS[10] cash lot order zset
-- KEYS[11] the order key of the top-up a refund returns (any key of the account otherwise)
-- ARGV[1] kind: "topup" | "refund" | "credit" | "free_quota" | "adjustment"
-- ARGV[2] amount, a positive integer of nanodollars (an adjustment's may be negative)
-- ARGV[3] order id (a credit's grant id)
-- ARGV[4] note (free text, may be empty; an adjustment's reason)
-- ARGV[5] ledger retention s (the transactions and ledger entries are trimmed past it)
-- ARGV[6] order retention s (how long a replay of the order id answers with its transaction)
-- ARGV[7] a credit's end, unix ms (0: none)   ARGV[8] a credit's priority, 0..9999
-- ARGV[9] a free quota's category: "ai" | "cloud" (free quota is not money in: the ledger
--         has it, the transactions stream does not)
-- ARGV[10] a refund's top-up (its order id; "": the newest top-ups with money left)
-- ARGV[11] who made an adjustment (an operator's name; "" otherwise)
-- ARGV[12] the clock, unix ms ("0": Redis's TIME; tests drive the wallet's time with it: a
--          grant's creation time, the transaction's and receipt's "ts"; the streams are
--          trimmed by Redis's clock)
--
-- The move is written to the transactions stream (the money flow the wallet lists) and as a
-- ledger entry ("s": free quota, credits, cash). The order's own key keeps the transaction, so
-- a replay is answered from it.
-- v5 (docs/wallet.md, "Cash lots"): each top-up is a lot of cash, spent oldest first; a refund
-- returns what a top-up has left (named, or the newest first) and lists the lots it returned
-- ("l" in the ledger, "topups" in the transaction); a top-up issues the account's next receipt
-- number, with the billing details of that moment; adjustments add or take cash with a reason
-- and an operator.
-- v6 (docs/guards.md): money in re-arms the balance alerts it lifts the total above; the top-up
-- an auto top-up asked for (its order id) clears the pending request and its back-off.
-- Returns {status, transaction id, fields...}
--   status 1: applied;  0: replay of an existing order (fields of that order);
--   -1: a refund or negative adjustment exceeds the unspent cash (what is refundable);
--   -2: balance would exceed what the wallet can hold;
--   -3: a refund exceeds what its top-up has left (what it has);  -4: not a top-up
local MAX = 9007199254740991  -- 2^53 - 1: integers above it are not exact in Lua
local LEGACY = 'legacy'  -- lot ids: 't:' order id (a top-up), 'a:' order id (an adjustment)

local kind = ARGV[1]
if not string.find(ARGV[5], '^%d+$') or not string.find(ARGV[6], '^%d+$')
    or not string.find(ARGV[7], '^%d+$') or not string.find(ARGV[8], '^%d+$')
    or tonumber(ARGV[8]) > 9999 or (ARGV[9] ~= 'ai' and ARGV[9] ~= 'cloud')
    or not string.find(ARGV[2], '^%-?%d+$') or ARGV[2] == '0' or ARGV[2] == '-0'
    or (kind ~= 'adjustment' and string.sub(ARGV[2], 1, 1) == '-')
    or #ARGV ~= 12 or not string.find(ARGV[12], '^%d+$') then
  return redis.error_reply('money_move_v6: malformed arguments')
end
CLOCK = ARGV[12] + 0
local existing = redis.call('HGETALL', KEYS[2])
if #existing > 0 then
  local out = {0}
  for _, v in ipairs(existing) do out[#out + 1] = v end
  return out
end

local amount = tonumber(ARGV[2])
local w = redis.call('HMGET', KEYS[1], 'cash', 'held', 'free_ai', 'credits', 'free_cloud',
  'alerts', 'alerts_off', 'auto_pending')
local cash, held = (w[1] or 0) + 0, (w[2] or 0) + 0
local others = (w[3] or 0) + (w[4] or 0) + (w[5] or 0)
local now = now_ms()
local split = '0,0,' .. ARGV[2]
local extra = {}  -- the transaction's fields beyond the common ones
local ledger_extra = {}

local function lot_left(id)
  local v = redis.call('HGET', KEYS[9], id)
  if not v then return 0, '0' end
  local left, refundable = string.match(v, '^(%d+)|(%d)$')
  return left + 0, refundable
end

local function lot_set(id, left, refundable)
  if left > 0 then
    redis.call('HSET', KEYS[9], id, fmt(left) .. '|' .. refundable)
  else
    redis.call('HDEL', KEYS[9], id)
    redis.call('ZREM', KEYS[10], id)
  end
end

local function lot_add(id, n, refundable)
  redis.call('HSET', KEYS[9], id, fmt(n) .. '|' .. refundable)
  redis.call('ZADD', KEYS[10], redis.call('HINCRBY', KEYS[1], 'lots_made', 1), id)
  redis.call('HINCRBY', KEYS[1], 'lot_cash', n)
end

-- Cash spent since the last move (charges, negative adjustments) leaves the lots oldest
-- first: the lots held lot_cash, the wallet holds cash, the difference was spent. A wallet
-- from before lots gets one refundable lot with its cash.
local function attribute()
  local lot_cash = redis.call('HGET', KEYS[1], 'lot_cash')
  if not lot_cash then
    redis.call('HSET', KEYS[1], 'lot_cash', 0)
    if cash > 0 then lot_add(LEGACY, cash, '1') end
    return
  end
  local spent = lot_cash - math.max(cash, 0)
  local left = spent
  while left > 0 do
    local ids = redis.call('ZRANGE', KEYS[10], 0, 99)
    if #ids == 0 then break end
    for _, id in ipairs(ids) do
      local n, refundable = lot_left(id)
      local take = math.min(n, left)
      lot_set(id, n - take, refundable)
      left = left - take
      if left == 0 then break end
    end
  end
  if spent > left then
    redis.call('HINCRBY', KEYS[1], 'lot_cash', -(spent - left))
  end
end

-- The lots a refund of ``amount`` returns: the named top-up's, or the newest refundable ones.
-- Returns the list of {id, amount}, or nil and the status and figure of the refusal.
local function refund_plan(limit)
  if ARGV[10] ~= '' then
    if redis.call('HGET', KEYS[11], 'type') ~= 'topup' then return nil, -4, 0 end
    local n = lot_left('t:' .. ARGV[10])
    if amount > n then return nil, -3, n end
    if amount > limit then return nil, -1, limit end
    return {{'t:' .. ARGV[10], amount}}
  end
  local plan, want, start = {}, math.min(amount, limit), 0
  while want > 0 do
    local ids = redis.call('ZREVRANGE', KEYS[10], start, start + 99)
    if #ids == 0 then break end
    for _, id in ipairs(ids) do
      local n, refundable = lot_left(id)
      if refundable == '1' and n > 0 then
        local take = math.min(n, want)
        plan[#plan + 1] = {id, take}
        want = want - take
        if want == 0 then break end
      end
    end
    start = start + 100
  end
  local found = math.min(amount, limit) - want
  if found < amount then return nil, -1, found end
  return plan
end

if kind == 'refund' then
  attribute()
  local plan, status, figure = refund_plan(math.max(math.min(cash, cash + others - held), 0))
  if not plan then return {status, fmt(math.max(figure, 0))} end
  local returned = {}
  for _, p in ipairs(plan) do
    local n, refundable = lot_left(p[1])
    lot_set(p[1], n - p[2], refundable)
    redis.call('HINCRBY', KEYS[1], 'lot_cash', -p[2])
    returned[#returned + 1] = {p[1] == LEGACY and '' or string.sub(p[1], 3), fmt(p[2])}
  end
  cash = redis.call('HINCRBY', KEYS[1], 'cash', -amount)
  redis.call('HINCRBY', KEYS[1], 'refunds', amount)
  extra = {'topups', cjson.encode(returned)}  -- [[top-up order id ("": older cash), amount]]
  ledger_extra = {'l', extra[2]}
elseif kind == 'adjustment' then
  attribute()
  if amount > 0 then
    if cash + others + amount > MAX then return {-2, fmt(cash + others - held)} end
    lot_add('a:' .. ARGV[3], amount, '0')
  else
    local limit = math.max(math.min(cash, cash + others - held), 0)
    if -amount > limit then return {-1, fmt(limit)} end
  end
  cash = redis.call('HINCRBY', KEYS[1], 'cash', amount)
  redis.call('HINCRBY', KEYS[1], 'adjustments', amount)
  attribute()  -- a negative one leaves the lots now, like spend
  extra = {'operator', ARGV[11]}
  ledger_extra = {'o', ARGV[11]}
elseif kind == 'credit' then
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
  extra = {'expires_ms', ARGV[7], 'priority', ARGV[8]}
elseif kind == 'free_quota' then
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
  attribute()
  lot_add('t:' .. ARGV[3], amount, '1')
  cash = redis.call('HINCRBY', KEYS[1], 'cash', amount)
  redis.call('HINCRBY', KEYS[1], 'topups', amount)
  extra = {'receipt_number', fmt(redis.call('HINCRBY', KEYS[1], 'receipts', 1))}
  if w[8] and string.sub(w[8], 1, #ARGV[3] + 1) == ARGV[3] .. '|' then  -- the auto top-up's
    redis.call('HDEL', KEYS[1], 'auto_pending', 'auto_retry_at', 'auto_backoff')
  end
end
if w[7] and w[6] then  -- money in may re-arm alerts (money out never fires one: settles do)
  check_alerts(KEYS[1], KEYS[4], ARGV[5] + 0, now, cash + others, w[6], w[7])
end

local balance = fmt(cash + others - held)
local fields = {
  'type', kind, 'amount', ARGV[2], 'order_id', ARGV[3],
  'balance', balance, 'ts', fmt(now), 'note', ARGV[4],
}
for _, v in ipairs(extra) do fields[#fields + 1] = v end
local cutoff = trim_cutoff(now, ARGV[5])
local entry = redis.call('XADD', KEYS[4], 'MINID', '~', cutoff, 'LIMIT', '100', '*',
  't', kind, 'r', ARGV[3], 'a', ARGV[2], 's', split, 'b', balance, 'n', ARGV[4],
  unpack(ledger_extra))
local id = entry
if kind ~= 'free_quota' then
  id = redis.call('XADD', KEYS[3], 'MINID', '~', cutoff, 'LIMIT', '100', '*', unpack(fields))
end
if kind == 'topup' then  -- the receipt, with the billing details of this moment
  local b = redis.call('HMGET', KEYS[7], 'billing_name', 'billing_address', 'billing_tax_id',
    'billing_email')
  redis.call('HSET', KEYS[8], extra[2], cjson.encode({
    number = extra[2], transaction_id = id, order_id = ARGV[3], amount = ARGV[2],
    ts_ms = fmt(now), note = ARGV[4], billing_name = b[1] or '', billing_address = b[2] or '',
    billing_tax_id = b[3] or '', billing_email = b[4] or '',
  }))
end
redis.call('HSET', KEYS[2], 'id', id, unpack(fields))
redis.call('EXPIRE', KEYS[2], ARGV[6])
local out = {1, 'id', id}
for _, v in ipairs(fields) do out[#out + 1] = v end
return out
