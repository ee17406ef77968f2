-- requeue: give back a task still running at shutdown; it becomes the next to be dequeued.
-- KEYS[1] active       <ns>:{q}:active
-- KEYS[2] lease        <ns>:{q}:lease
-- KEYS[3] pending      <ns>:{q}:pending
-- KEYS[4] task hash    <ns>:{q}:t:<id>
-- ARGV[1] task id
-- Returns 1, or 0 when the task is not active here. Retry count and counters are untouched.
-- The task is this server's while it is in active (a lease entry that alone vanished does not
-- make it anyone else's). Redis does not roll back a script that stops half-way: keys are checked for their type before
-- anything is written, the destination is written first (and undone if the task turns out not
-- to be active here).
-- Each entry: a KEYS index and the type its key must have, if it exists.
for _, k in ipairs({{1, "list"}, {2, "zset"}, {4, "hash"}}) do
  local t = redis.call("TYPE", KEYS[k[1]])["ok"]
  if t ~= k[2] and t ~= "none" then
    return redis.error_reply("WRONGTYPE " .. KEYS[k[1]] .. " holds a " .. t)
  end
end
redis.call("RPUSH", KEYS[3], ARGV[1])
if redis.call("LREM", KEYS[1], 0, ARGV[1]) == 0 then
  redis.call("RPOP", KEYS[3])
  return 0
end
redis.call("ZREM", KEYS[2], ARGV[1])
redis.call("HSET", KEYS[4], "state", "pending")
return 1
