-- voucher_redeem_v2: take one redemption of a voucher for an account, at most once per account
-- and never more than the voucher allows, however many try at once.
--
-- KEYS[1] voucher hash   KEYS[2] redeemed set (account ids)
-- ARGV[1] account id
-- ARGV[2] the clock, unix ms ("0": Redis's TIME; tests drive the wallet's time with it)
-- Returns "<status> <amount> <credit end ms>":
--   1: taken now;  0: this account took one before (the caller completes its grant, which is
--   idempotent);  -1: no such voucher;  -2: past its valid_until;  -3: used up
if not string.find(ARGV[2] or '', '^%d+$') then
  return redis.error_reply('voucher_redeem_v2: malformed arguments')
end
CLOCK = ARGV[2] + 0
local v = redis.call('HMGET', KEYS[1], 'amount', 'max_redemptions', 'used', 'valid_until_ms',
  'credit_ends_ms')
if not v[1] then
  return '-1 0 0'
end
local terms = ' ' .. v[1] .. ' ' .. (v[5] or '0')
if redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 1 then
  return '0' .. terms
end
local until_ms = (v[4] or 0) + 0
if until_ms > 0 and now_ms() > until_ms then
  return '-2' .. terms
end
if (v[3] or 0) + 0 >= (v[2] or 0) + 0 then
  return '-3' .. terms
end
redis.call('SADD', KEYS[2], ARGV[1])
redis.call('HINCRBY', KEYS[1], 'used', 1)
return '1' .. terms
