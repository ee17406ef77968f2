-- run_tasks: an Inspector moves tasks to pending, to run now (RunTask, RunAll*).
-- KEYS[1] source       where the caller read the tasks from: <ns>:{q}:scheduled|retry|archived|
--                      completed (ZSET) or a group <ns>:{q}:g:<group> (ZSET)
-- KEYS[2] pending      <ns>:{q}:pending
-- KEYS[3] groups       <ns>:{q}:groups
-- KEYS[4..] task hash  <ns>:{q}:t:<id>, one per id in ARGV[4..]
-- ARGV[1] group name when the source is a group, else ""
-- ARGV[2] now, Unix nanoseconds (pending_since)
-- ARGV[3] a Pub/Sub channel to PUBLISH to when a task was moved (wakes idle ferroq servers), or ""
-- ARGV[4..] task ids
-- Returns the number of tasks moved. A task no longer in the source (another server or tool moved
-- it since the caller read it) is left alone; an id without a hash is dropped from the source.
-- Key types are checked before anything is written.
-- Each entry: a KEYS index and the type its key must have, if it exists.
for _, k in ipairs({{1, "zset"}, {2, "list"}, {3, "set"}}) do
  local t = redis.call("TYPE", KEYS[k[1]])["ok"]
  if t ~= k[2] and t ~= "none" then
    return redis.error_reply("WRONGTYPE " .. KEYS[k[1]] .. " holds a " .. t)
  end
end
local moved = 0
for i = 4, #ARGV do
  if redis.call("ZREM", KEYS[1], ARGV[i]) == 1 and redis.call("EXISTS", KEYS[i]) == 1 then
    redis.call("LPUSH", KEYS[2], ARGV[i])
    redis.call("HSET", KEYS[i], "state", "pending", "pending_since", ARGV[2])
    moved = moved + 1
  end
end
if ARGV[1] ~= "" and redis.call("ZCARD", KEYS[1]) == 0 then
  redis.call("SREM", KEYS[3], ARGV[1])
end
if moved > 0 and ARGV[3] ~= "" then
  redis.call("PUBLISH", ARGV[3], "")
end
return moved
