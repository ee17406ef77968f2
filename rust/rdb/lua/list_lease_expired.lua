-- list_lease_expired: active tasks whose lease ran out at or before the cutoff, after two
-- repairs that keep anything from being stuck in active:
--   * an id in active with no lease entry (its entry was removed, or a server died between
--     steps in an older layout) is given a lease of its own (ARGV[3]), so it is recovered once
--     that lease has expired and the cutoff passes it, like any other, unless a live server
--     renews it first: ferroq's and asynq's renewals (ZADD XX) update the entry given;
--   * an expired entry whose task cannot be run (no hash, or a hash without msg) is dropped
--     from active and lease, with any msg-less hash; one whose id is not in active is a stray
--     (the task is elsewhere) and only the entry is removed.
-- The expired entries are those the caller read (`ZRANGEBYSCORE lease -inf cutoff`), so that
-- every task hash is named in KEYS; one renewed or removed since is left alone.
-- KEYS[1] lease        <ns>:{q}:lease
-- KEYS[2] active       <ns>:{q}:active
-- KEYS[3..] task hash  <ns>:{q}:t:<id>, one per id in ARGV[3..], in the same order
-- ARGV[1] cutoff, Unix seconds
-- ARGV[2] the expiry of the lease given to an id that had none, Unix seconds: now plus at least
--         the longest heartbeat of any live server (asynq's is 5 s), so a live one renews it
-- ARGV[3..] the ids read as expired
-- Returns {adopted, dropped, id1, msg1, ...}: how many ids were given a lease, how many
-- entries were dropped, and the expired tasks to recover.
if #KEYS ~= #ARGV then
  return redis.error_reply("list_lease_expired: " .. (#KEYS - 2) .. " task keys for " .. (#ARGV - 2) .. " ids")
end
local cutoff = tonumber(ARGV[1])
local adopted, dropped = 0, 0
for _, id in ipairs(redis.call("LRANGE", KEYS[2], 0, -1)) do
  if not redis.call("ZSCORE", KEYS[1], id) then
    redis.call("ZADD", KEYS[1], ARGV[2], id)
    adopted = adopted + 1
  end
end
local out = {0, 0}
for i = 3, #ARGV do
  local id = ARGV[i]
  local score = tonumber(redis.call("ZSCORE", KEYS[1], id))
  local expired = score and score <= cutoff
  local msg = expired and redis.pcall("HGET", KEYS[i], "msg")
  if not expired then
    -- Renewed or recovered since it was read: not expired now.
  elseif type(msg) ~= "string" then
    redis.call("LREM", KEYS[2], 0, id)
    redis.call("ZREM", KEYS[1], id)
    if not msg then
      redis.call("DEL", KEYS[i])
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
