-- delete_tasks: an Inspector deletes tasks (DeleteTask, DeleteAll*), releasing each one's unique
-- lock when the task still owns it (asynq's DeleteAllPendingTasks does not).
-- KEYS[1] source       <ns>:{q}:pending (LIST), <ns>:{q}:scheduled|retry|archived|completed
--                      (ZSET) or a group <ns>:{q}:g:<group> (ZSET)
-- KEYS[2] groups       <ns>:{q}:groups
-- KEYS[3..2+n] task hash <ns>:{q}:t:<id>, one per id
-- KEYS[3+n..] unique locks <ns>:{q}:unique:..., for the ids that name one
-- ARGV[1] group name when the source is a group, else ""
-- ARGV[2] "list" when the source is the pending list, else "zset"
-- ARGV[3..] pairs: task id, index of its lock among the lock keys (1-based; 0 for none)
-- Returns the number of tasks deleted. A task no longer in the source (another server or tool
-- moved it since the caller read it) is left alone. Key types are checked before any write.
-- Each entry: a KEYS index and the type its key must have, if it exists.
for _, k in ipairs({{1, ARGV[2]}, {2, "set"}}) do
  local t = redis.call("TYPE", KEYS[k[1]])["ok"]
  if t ~= k[2] and t ~= "none" then
    return redis.error_reply("WRONGTYPE " .. KEYS[k[1]] .. " holds a " .. t)
  end
end
local n = (#ARGV - 2) / 2
local deleted = 0
for j = 1, n do
  local id = ARGV[1 + 2 * j]
  local lock = tonumber(ARGV[2 + 2 * j])
  local taken
  if ARGV[2] == "list" then
    -- Searched from the tail, where the oldest (the ones a bulk call reads) are.
    taken = redis.call("LREM", KEYS[1], -1, id) > 0
  else
    taken = redis.call("ZREM", KEYS[1], id) == 1
  end
  if taken then
    if lock > 0 then
      -- pcall: a lock key someone overwrote with another type must not stop the deletion.
      if redis.pcall("GET", KEYS[2 + n + lock]) == id then
        redis.call("DEL", KEYS[2 + n + lock])
      end
    end
    deleted = deleted + redis.call("DEL", KEYS[2 + j])
  end
end
if ARGV[1] ~= "" and redis.call("ZCARD", KEYS[1]) == 0 then
  redis.call("SREM", KEYS[2], ARGV[1])
end
return deleted
