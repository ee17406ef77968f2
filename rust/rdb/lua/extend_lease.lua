-- extend_lease: renew the leases of in-flight tasks. XX never adds an entry, so a task that another
-- server already recovered stays recovered.
-- KEYS[1] lease        <ns>:{q}:lease
-- ARGV[1] new lease expiry, Unix seconds
-- ARGV[2..] task ids
-- Returns the ids that had no lease left (the caller stops working on them).
local lost = {}
for i = 2, table.getn(ARGV) do
  if redis.call("ZADD", KEYS[1], "XX", ARGV[1], ARGV[i]) == 0 and
      not redis.call("ZSCORE", KEYS[1], ARGV[i]) then
    lost[#lost + 1] = ARGV[i]
  end
end
return lost
