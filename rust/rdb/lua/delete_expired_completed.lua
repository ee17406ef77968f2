-- delete_expired_completed: drop completed tasks whose retention ended.
-- KEYS[1] completed    <ns>:{q}:completed
-- ARGV[1] now, Unix seconds
-- ARGV[2] task hash prefix <ns>:{q}:t:
-- ARGV[3] batch size
-- Returns how many were deleted; the caller repeats until 0.
local ids = redis.call("ZRANGEBYSCORE", KEYS[1], "-inf", ARGV[1], "LIMIT", 0, tonumber(ARGV[3]))
for _, id in ipairs(ids) do
  redis.call("DEL", ARGV[2] .. id)
  redis.call("ZREM", KEYS[1], id)
end
return table.getn(ids)
