-- relay_mark_v1: record how far an account's ledger has reached the global feed.
--
-- KEYS[1] the account's relayed mark (string: a ledger entry id)
-- ARGV[1] a ledger entry id now in the feed
-- The mark only moves forward (entry ids compare as "<ms>-<seq>"). Returns the mark.
local function parts(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end
local current = redis.call('GET', KEYS[1])
local new_ms, new_seq = parts(ARGV[1])
if not new_ms then
  return redis.error_reply('relay_mark_v1: malformed entry id')
end
if current then
  local ms, seq = parts(current)
  if ms and (ms > new_ms or (ms == new_ms and seq >= new_seq)) then
    return current
  end
end
redis.call('SET', KEYS[1], ARGV[1])
return ARGV[1]
