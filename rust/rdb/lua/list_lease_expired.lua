-- list_lease_expired: active tasks whose lease ran out at or before the cutoff, after two
-- repairs that keep anything from being stuck in active:
--   * an id in active with no lease entry (its entry was removed, or a server died between
--     steps in an older layout) is given a lease of its own (ARGV[3]), so it is recovered once
--     that lease has expired and the cutoff passes it, like any other, unless a live server
--     renews it first: ferroq's and asynq's renewals (ZADD XX) update the entry given;
--   * an expired entry whose task cannot be run (no hash, or a hash without msg) is dropped
--     from active and lease, with any msg-less hash; one whose id is not in active is a stray
--     (the task is elsewhere) and only the entry is removed.
-- KEYS[1] lease        <ns>:{q}:lease
-- KEYS[2] active       <ns>:{q}:active
-- ARGV[1] cutoff, Unix seconds
-- ARGV[2] task hash prefix <ns>:{q}:t:
-- ARGV[3] the expiry of the lease given to an id that had none, Unix seconds: now plus at least
--         the longest heartbeat of any live server (asynq's is 5 s), so a live one renews it
-- Returns {adopted, dropped, id1, msg1, ...}: how many ids were given a lease, how many
-- entries were dropped, and the expired tasks to recover.
local adopted, dropped = 0, 0
for _, id in ipairs(redis.call("LRANGE", KEYS[2], 0, -1)) do
  if not redis.call("ZSCORE", KEYS[1], id) then
    redis.call("ZADD", KEYS[1], ARGV[3], id)
    adopted = adopted + 1
  end
end
local out = {0, 0}
for _, id in ipairs(redis.call("ZRANGEBYSCORE", KEYS[1], "-inf", ARGV[1])) do
  local msg = redis.pcall("HGET", ARGV[2] .. id, "msg")
  if type(msg) ~= "string" then
    redis.call("LREM", KEYS[2], 0, id)
    redis.call("ZREM", KEYS[1], id)
    if not msg then
      redis.call("DEL", ARGV[2] .. id)
    end
    dropped = dropped + 1
  elseif not redis.call("LPOS", KEYS[2], id) then
    redis.call("ZREM", KEYS[1], id)
    dropped = dropped + 1
  else
    out[#out + 1] = id
    out[#out + 1] = msg
  end
end
out[1], out[2] = adopted, dropped
return out
