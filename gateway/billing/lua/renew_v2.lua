-- renew_v2: push the deadlines of holds whose requests are still running.
--
-- KEYS[1] holds zset (request id -> deadline ms)
-- ARGV[1] hold ttl ms
-- ARGV[2] the clock, unix ms ("0": Redis's TIME; the deadlines are on the clock admit_v5
--         placed them by: tests drive it)
-- ARGV[3..] request ids still in flight in this process
-- A hold that is already gone (settled, or expired by a reaper) is not brought back.
-- Returns the number of holds renewed.
if not string.find(ARGV[1], '^%d+$') or not string.find(ARGV[2] or '', '^%d+$') then
  return redis.error_reply('renew_v2: malformed arguments')
end
CLOCK = ARGV[2] + 0
local deadline = now_ms() + ARGV[1]
local renewed = 0
for i = 3, #ARGV do
  renewed = renewed + redis.call('ZADD', KEYS[1], 'XX', 'CH', deadline, ARGV[i])
end
return renewed
