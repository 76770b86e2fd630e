-- sweep_v1: release the expired holds of one account.
--
-- KEYS[1] wallet hash   KEYS[2] holds zset   KEYS[3] hold amounts hash
-- Returns {released count, available balance, held}
local released = release_expired(KEYS[1], KEYS[2], KEYS[3], fmt(now_ms()))
local cash = tonumber(redis.call('HGET', KEYS[1], 'cash') or '0')
local held = tonumber(redis.call('HGET', KEYS[1], 'held') or '0')
return {released, fmt(cash - held), fmt(held)}
