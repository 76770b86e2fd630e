-- free_renew_v1: reset an account's free quota to its plan's amount for a new calendar month
-- (UTC), once per (account, month, category); docs/wallet.md, "Renewal of the free quota".
--
-- KEYS[1] wallet hash   KEYS[2] ledger stream
-- KEYS[2 + i] the order key (hash) of the i-th category renewed (ARGV[7..] below)
-- ARGV[1] the month renewed into, "YYYY-MM"
-- ARGV[2] the month of the wallet's quota when the wallet has no free_month yet (the month
--         the account was made in: its plan's quota was granted then), "YYYY-MM"
-- ARGV[3] note of the grants (the plan)
-- ARGV[4] ledger retention s   ARGV[5] order retention s (how long an order key is kept)
-- ARGV[6] now, unix ms ("" or "0": Redis's clock); it decides the month only: tests drive
--         the month with it, and the ledger is trimmed by Redis's clock whatever it says
-- ARGV[7..] per category renewed, three values: "ai" | "cloud", the plan's amount (positive
--         integer nanodollars), the order id ("free-renew:<month>:<category>")
-- Per category: what is left of the quota leaves through one "free_quota_expired" ledger entry
-- (when > 0: it is not carried over), the plan's amount comes in through one "free_quota"
-- entry, and the order key records both; a category whose order key exists is not renewed
-- again. Free quota is not money in: the transactions stream has neither entry. Then the
-- wallet's free_month becomes ARGV[1]. A category the plan gives nothing is not passed: its
-- quota (left from an earlier plan) stays until spent. Holds are not attributed to a kind of
-- money, so the quota is reset under open holds too (docs/wallet.md says what that means).
-- "b" is the balance an AI request can spend (cash + AI free quota + credits - held), as
-- settle_v8 writes it.
-- Every check comes before the first write.
-- Returns one string:
--   "1 <expired> <granted>"   renewed now (nanodollars, summed over the categories)
--   "0 <free_month>"          the wallet's quota is of ARGV[1] or later already, or each
--                             category's order key says so: no money moved
--   "-1 <month of now>"       ARGV[1] has not begun yet: nothing done
--   "-2"                      the quota would take the wallet past 2^53 - 1: nothing done
local MAX = 9007199254740991
local MONTH = '^%d%d%d%d%-%d%d$'
if not string.find(ARGV[1], MONTH) or not string.find(ARGV[2], MONTH)
    or not string.find(ARGV[4], '^%d+$') or not string.find(ARGV[5], '^%d+$')
    or not string.find(ARGV[6], '^%d*$') or (#ARGV - 6) % 3 ~= 0
    or #KEYS ~= 2 + (#ARGV - 6) / 3 then
  return redis.error_reply('free_renew_v1: malformed arguments')
end
local renewals = {}
for i = 7, #ARGV, 3 do
  local category, amount = ARGV[i], ARGV[i + 1]
  if (category ~= 'ai' and category ~= 'cloud') or not string.find(amount, '^%d+$')
      or #amount > 16 or amount + 0 == 0 then
    return redis.error_reply('free_renew_v1: malformed arguments')
  end
  renewals[#renewals + 1] = {category = category, amount = amount + 0, order = ARGV[i + 2],
                             key = KEYS[2 + (i - 4) / 3]}
end

local clock = now_ms()
local now = (ARGV[6] == '' or ARGV[6] == '0') and clock or ARGV[6] + 0
local month = ARGV[1]
if month > month_of(now) then
  return '-1 ' .. month_of(now)
end
local w = redis.call('HMGET', KEYS[1], 'free_month', 'cash', 'held', 'credits', 'free_ai',
  'free_cloud')
local since = w[1] or ARGV[2]
if month <= since then
  return '0 ' .. since
end
local cash, held, credits = (w[2] or 0) + 0, (w[3] or 0) + 0, (w[4] or 0) + 0
local free = {ai = (w[5] or 0) + 0, cloud = (w[6] or 0) + 0}
local after = {ai = free.ai, cloud = free.cloud}
for _, r in ipairs(renewals) do
  after[r.category] = r.amount
end
if cash + credits + after.ai + after.cloud > MAX then
  return '-2'
end

local cutoff = fmt(math.max(clock - ARGV[4] * 1000, 0))
local function entry(kind, order, amount, note)
  return redis.call('XADD', KEYS[2], 'MINID', '~', cutoff, 'LIMIT', '100', '*',
    't', kind, 'r', order, 'a', fmt(amount), 's', fmt(amount) .. ',0,0',
    'b', fmt(cash + free.ai + credits - held), 'n', note)
end

local expired, granted, renewed = 0, 0, false
for _, r in ipairs(renewals) do
  if redis.call('EXISTS', r.key) == 0 then
    renewed = true
    local field = 'free_' .. r.category
    local left = free[r.category]
    if left > 0 then
      redis.call('HINCRBY', KEYS[1], field, '-' .. fmt(left))
      redis.call('HINCRBY', KEYS[1], 'free_expired', fmt(left))
      free[r.category] = 0
      expired = expired + left
      entry('free_quota_expired', r.order, left, r.category .. ' quota of ' .. since .. ' unused')
    else
      left = 0  -- never below 0 (a charge draws at most what is there); nothing to expire
    end
    redis.call('HINCRBY', KEYS[1], field, fmt(r.amount))
    redis.call('HINCRBY', KEYS[1], 'free_granted', fmt(r.amount))
    free[r.category] = free[r.category] + r.amount
    granted = granted + r.amount
    local id = entry('free_quota', r.order, r.amount, ARGV[3])
    redis.call('HSET', r.key, 'id', id, 'type', 'free_quota', 'amount', fmt(r.amount),
      'expired', fmt(left), 'month', month, 'ts', fmt(clock), 'note', ARGV[3])
    redis.call('EXPIRE', r.key, ARGV[5])
  end
end
redis.call('HSET', KEYS[1], 'free_month', month)
if not renewed then  -- every category was renewed earlier (free_month was lost or never set)
  return '0 ' .. month
end
return '1 ' .. fmt(expired) .. ' ' .. fmt(granted)
