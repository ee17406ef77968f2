-- delete_expired_completed: drop completed tasks whose retention ended, of those the caller read
-- (`ZRANGEBYSCORE completed -inf now LIMIT 0 n`), so that every key is named in KEYS. A task
-- another janitor already dropped, or one whose retention was extended since it was read, is
-- left alone.
-- KEYS[1] completed    <ns>:{q}:completed
-- KEYS[2..] task hash  <ns>:{q}:t:<id>, one per id in ARGV[2..], in the same order
-- ARGV[1] now, Unix seconds
-- ARGV[2..] task ids
-- Returns how many were deleted.
if #KEYS ~= #ARGV then
  return redis.error_reply("delete_expired_completed: " .. (#KEYS - 1) .. " task keys for " .. (#ARGV - 1) .. " ids")
end
local now = tonumber(ARGV[1])
local deleted = 0
for i = 2, #ARGV do
  local score = tonumber(redis.call("ZSCORE", KEYS[1], ARGV[i]))
  if score and score <= now then
    redis.call("DEL", KEYS[i])
    redis.call("ZREM", KEYS[1], ARGV[i])
    deleted = deleted + 1
  end
end
return deleted
