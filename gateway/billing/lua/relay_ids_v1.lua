-- relay_ids_v1: the ids of an account's ledger entries that are not in the global feed yet.
--
-- KEYS[1] the account's ledger stream   KEYS[2] its relayed mark (a ledger entry id)
-- ARGV[1] how many at most
-- Returns the ids after the mark, oldest first (only ids: the relay needs no more, and
-- reading whole entries back to the gateway cost it more than the relaying itself).
local mark = redis.call('GET', KEYS[2]) or '0-0'
local rows = redis.call('XRANGE', KEYS[1], '(' .. mark, '+', 'COUNT', ARGV[1])
local ids = {}
for i, row in ipairs(rows) do
  ids[i] = row[1]
end
return ids
