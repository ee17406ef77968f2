-- archive_tasks: an Inspector archives tasks (ArchiveTask, ArchiveAll*). The caller then trims
-- the archive to its limits (trim_archive.lua), deleting the trimmed tasks' hashes, which
-- asynq's Inspector leaves.
-- KEYS[1] source       <ns>:{q}:pending (LIST), <ns>:{q}:scheduled|retry|completed (ZSET) or a
--                      group <ns>:{q}:g:<group> (ZSET)
-- KEYS[2] archived     <ns>:{q}:archived
-- KEYS[3] groups       <ns>:{q}:groups
-- KEYS[4..] task hash  <ns>:{q}:t:<id>, one per id in ARGV[4..], in the same order
-- ARGV[1] group name when the source is a group, else ""
-- ARGV[2] now, Unix seconds (the archive score)
-- ARGV[3] "list" when the source is the pending list, else "zset"
-- ARGV[4..] task ids
-- Returns the number of tasks archived. A task no longer in the source is left alone; an id
-- without a hash is dropped from the source. Key types are checked before anything is written.
if #KEYS ~= #ARGV then
  return redis.error_reply("archive_tasks: " .. (#KEYS - 3) .. " task keys for " .. (#ARGV - 3) .. " ids")
end
-- Each entry: a KEYS index and the type its key must have, if it exists.
for _, k in ipairs({{1, ARGV[3]}, {2, "zset"}, {3, "set"}}) do
  local t = redis.call("TYPE", KEYS[k[1]])["ok"]
  if t ~= k[2] and t ~= "none" then
    return redis.error_reply("WRONGTYPE " .. KEYS[k[1]] .. " holds a " .. t)
  end
end
local moved = 0
for i = 4, #ARGV do
  local taken
  if ARGV[3] == "list" then
    -- Searched from the tail, where the oldest (the ones a bulk call reads) are.
    taken = redis.call("LREM", KEYS[1], -1, ARGV[i]) > 0
  else
    taken = redis.call("ZREM", KEYS[1], ARGV[i]) == 1
  end
  if taken and redis.call("EXISTS", KEYS[i]) == 1 then
    redis.call("ZADD", KEYS[2], ARGV[2], ARGV[i])
    redis.call("HSET", KEYS[i], "state", "archived")
    moved = moved + 1
  end
end
if ARGV[1] ~= "" and redis.call("ZCARD", KEYS[1]) == 0 then
  redis.call("SREM", KEYS[3], ARGV[1])
end
return moved
