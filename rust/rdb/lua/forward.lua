-- forward: move up to 100 due tasks from scheduled or retry to pending (or back into their group).
-- KEYS[1] source zset  <ns>:{q}:scheduled or <ns>:{q}:retry
-- KEYS[2] pending      <ns>:{q}:pending
-- ARGV[1] now, Unix seconds
-- ARGV[2] task hash prefix <ns>:{q}:t:
-- ARGV[3] now, Unix nanoseconds (pending_since)
-- ARGV[4] group zset prefix <ns>:{q}:g:
-- Returns {moved, next}: how many due ids were handled (the caller repeats while a full batch
-- was) and the score of the earliest task left in the source (its process-at), or false when it
-- is empty. A ghost id (no task hash, or one without msg) is removed, with any msg-less hash,
-- rather than pushed to pending: it could never run, and a write would create a stray hash.
local ids = redis.call("ZRANGEBYSCORE", KEYS[1], "-inf", ARGV[1], "LIMIT", 0, 100)
for _, id in ipairs(ids) do
  local key = ARGV[2] .. id
  local has_msg = redis.pcall("HEXISTS", key, "msg")
  local group = has_msg == 1 and redis.call("HGET", key, "group")
  if has_msg ~= 1 then
    redis.call("ZREM", KEYS[1], id)
    if has_msg == 0 then
      redis.call("DEL", key)
    end
  elseif group and group ~= "" then
    redis.call("ZADD", ARGV[4] .. group, ARGV[1], id)
    redis.call("ZREM", KEYS[1], id)
    redis.call("HSET", key, "state", "aggregating")
  else
    redis.call("LPUSH", KEYS[2], id)
    redis.call("ZREM", KEYS[1], id)
    redis.call("HSET", key, "state", "pending", "pending_since", ARGV[3])
  end
end
local next_task = redis.call("ZRANGE", KEYS[1], 0, 0, "WITHSCORES")
return {table.getn(ids), next_task[2] or false}
