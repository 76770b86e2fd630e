-- relay_append_v1: append ledger entries of one account to the global feed, as the relay leader.
--
-- KEYS[1] feed stream   KEYS[2] relay lock (string: the leader's token)
-- ARGV[1] the caller's token   ARGV[2] feed retention ms   ARGV[3] account id
-- ARGV[4..] the account's ledger entry ids, in order
-- Only the process holding the lock may append: a leader that paused past its lock's expiry
-- and woke up again appends nothing, so no entry reaches the feed twice.
-- Returns the feed id of the last pointer appended, or "" when the caller is not the leader.
if redis.call('GET', KEYS[2]) ~= ARGV[1] then
  return ''
end
local cutoff = fmt(math.max(now_ms() - tonumber(ARGV[2]), 0))
local last = ''
for i = 4, #ARGV do
  last = redis.call('XADD', KEYS[1], 'MINID', '~', cutoff, 'LIMIT', '100', '*',
    'a', ARGV[3], 'e', ARGV[i])
end
return last
