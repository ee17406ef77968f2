-- forward: move up to 100 due tasks from scheduled or retry to pending (or back into their group).
-- KEYS[1] source zset  <ns>:{q}:scheduled or <ns>:{q}:retry
-- KEYS[2] pending      <ns>:{q}:pending
-- ARGV[1] now, Unix seconds
-- ARGV[2] task hash prefix <ns>:{q}:t:
-- ARGV[3] now, Unix nanoseconds (pending_since)
-- ARGV[4] group zset prefix <ns>:{q}:g:
-- Returns {moved, next}: how many tasks moved (the caller repeats while a full batch moved) and
-- the score of the earliest task left in the source (its process-at), or false when it is empty.
local ids = redis.call("ZRANGEBYSCORE", KEYS[1], "-inf", ARGV[1], "LIMIT", 0, 100)
for _, id in ipairs(ids) do
  local key = ARGV[2] .. id
  local group = redis.call("HGET", key, "group")
  if group and group ~= "" then
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
