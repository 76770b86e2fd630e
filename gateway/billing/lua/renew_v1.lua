-- renew_v1: push the deadlines of holds whose requests are still running.
--
-- KEYS[1] holds zset (request id -> deadline ms)
-- ARGV[1] hold ttl ms        ARGV[2..] request ids still in flight in this process
-- A hold that is already gone (settled, or expired by a reaper) is not brought back.
-- Returns the number of holds renewed.
local deadline = now_ms() + tonumber(ARGV[1])
local renewed = 0
for i = 2, #ARGV do
  renewed = renewed + redis.call('ZADD', KEYS[1], 'XX', 'CH', deadline, ARGV[i])
end
return renewed
