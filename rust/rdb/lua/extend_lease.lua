-- extend_lease: renew the leases of in-flight tasks. XX never adds an entry, so a task that
-- another server already recovered (it left active) stays recovered; a task still in active
-- whose entry alone vanished is nobody else's, and its lease is taken again.
-- KEYS[1] lease        <ns>:{q}:lease
-- KEYS[2] active       <ns>:{q}:active
-- ARGV[1] new lease expiry, Unix seconds
-- ARGV[2..] task ids
-- Returns {lost, retaken}: the ids with no lease left that are no longer active here (the
-- caller stops working on them), and the ids whose lease was taken again.
local lost, retaken = {}, {}
for i = 2, #ARGV do
  local id = ARGV[i]
  redis.call("ZADD", KEYS[1], "XX", ARGV[1], id)
  if not redis.call("ZSCORE", KEYS[1], id) then
    if redis.call("LPOS", KEYS[2], id) then
      redis.call("ZADD", KEYS[1], ARGV[1], id)
      retaken[#retaken + 1] = id
    else
      lost[#lost + 1] = id
    end
  end
end
return {lost, retaken}
