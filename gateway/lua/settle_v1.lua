-- settle_v1: charge a finished request its actual cost and release its hold, exactly once.
--
-- KEYS[1] wallet hash        KEYS[2] holds zset       KEYS[3] hold amounts hash
-- KEYS[4] request record     KEYS[5] charges stream
-- KEYS[6] key tpm bucket     KEYS[7] account tpm bucket
-- ARGV[1] request id         ARGV[2] cost (nanodollars, >= 0)
-- ARGV[3] month field, e.g. "spend:2026-11"
-- ARGV[4] actual tokens      ARGV[5] key tpm limit   ARGV[6] account tpm limit (0 = none)
-- ARGV[7] record ttl s       ARGV[8..] record fields as name, value pairs
-- Returns
--   {1, balance after, cost charged}   settled now
--   {0, balance now, cost charged}     already settled earlier: nothing changed
--   {-1}                               no such request (never admitted, or record expired)
local status = redis.call('HGET', KEYS[4], 'status')
local cash = tonumber(redis.call('HGET', KEYS[1], 'cash') or '0')
local held = tonumber(redis.call('HGET', KEYS[1], 'held') or '0')
if not status then
  return {-1}
end
if status ~= 'pending' then
  return {0, fmt(cash - held), redis.call('HGET', KEYS[4], 'cost') or '0'}
end

local hold = redis.call('HGET', KEYS[3], ARGV[1])
if hold then
  held = redis.call('HINCRBY', KEYS[1], 'held', -tonumber(hold))
  redis.call('HDEL', KEYS[3], ARGV[1])
end
redis.call('ZREM', KEYS[2], ARGV[1])

local cost = tonumber(ARGV[2])
if cost > 0 then
  cash = redis.call('HINCRBY', KEYS[1], 'cash', -cost)
  redis.call('HINCRBY', KEYS[1], 'charges', cost)
  redis.call('HINCRBY', KEYS[1], ARGV[3], cost)
  redis.call('XADD', KEYS[5], '*', 'request_id', ARGV[1], 'amount', ARGV[2],
    'balance', fmt(cash - held))
end

-- The rate limiter counted the estimate at admission; give back (or take) the difference.
local est = tonumber(redis.call('HGET', KEYS[4], 'est_tokens') or '0')
local delta = est - tonumber(ARGV[4])
if delta ~= 0 then
  for i = 6, 7 do
    local cap = tonumber(ARGV[i - 1])
    if cap > 0 and redis.call('EXISTS', KEYS[i]) == 1 then
      local level = tonumber(redis.call('HGET', KEYS[i], 'level') or cap)
      redis.call('HSET', KEYS[i], 'level', tostring(math.min(cap, level + delta)))
    end
  end
end

redis.call('HSET', KEYS[4], 'cost', ARGV[2], unpack(ARGV, 8))
redis.call('EXPIRE', KEYS[4], tonumber(ARGV[7]))
return {1, fmt(cash - held), ARGV[2]}
