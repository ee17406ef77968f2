-- remove_queue: an Inspector deletes a queue's task containers (DeleteQueue). The caller then
-- deletes every other key of the queue (task hashes, counters, locks, groups) and its name.
-- KEYS[1] pending    <ns>:{q}:pending
-- KEYS[2] active     <ns>:{q}:active
-- KEYS[3] scheduled  <ns>:{q}:scheduled
-- KEYS[4] retry      <ns>:{q}:retry
-- KEYS[5] archived   <ns>:{q}:archived
-- KEYS[6] lease      <ns>:{q}:lease
-- KEYS[7] completed  <ns>:{q}:completed
-- KEYS[8] groups     <ns>:{q}:groups
-- ARGV[1] "1" to delete a queue that still holds tasks (never one with active tasks)
-- Returns 1 when deleted; -1 when not forced and the queue holds pending, active, scheduled,
-- retry, archived or aggregating tasks (completed ones are history, and go with it); -2 when it
-- holds active tasks.
local function size(k)
  local t = redis.call("TYPE", k)["ok"]
  if t == "list" then return redis.call("LLEN", k) end
  if t == "zset" then return redis.call("ZCARD", k) end
  if t == "set" then return redis.call("SCARD", k) end
  return 0
end
if size(KEYS[2]) > 0 then
  return -2
end
if ARGV[1] ~= "1" then
  for _, i in ipairs({1, 3, 4, 5, 8}) do
    if size(KEYS[i]) > 0 then
      return -1
    end
  end
end
redis.call("DEL", KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8])
return 1
