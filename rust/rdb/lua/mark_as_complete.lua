-- mark_as_complete: a task with retention succeeded; keep it (and its result) as completed.
-- KEYS[1] active              <ns>:{q}:active
-- KEYS[2] lease               <ns>:{q}:lease
-- KEYS[3] completed           <ns>:{q}:completed
-- KEYS[4] task hash           <ns>:{q}:t:<id>
-- KEYS[5] processed today     <ns>:{q}:processed:<YYYY-MM-DD>
-- KEYS[6] processed total     <ns>:{q}:processed
-- KEYS[7] unique lock (only when the message has a unique_key)
-- ARGV[1] task id
-- ARGV[2] daily counter expiry, Unix seconds
-- ARGV[3] completed-zset score: completed_at + retention, Unix seconds
-- ARGV[4] encoded TaskMessage with completed_at set
-- ARGV[5] max int64
-- ARGV[6] completion notice channel <ns>:{q}:done:<id> (its waiters are told "completed")
-- ARGV[7] optional: the result bytes, written in the same step (absent: keep whatever result
--         the handler wrote)
-- Returns 1, or 0 when the task is not active here (another server moved it).
-- The task is this server's while it is in active (a lease entry that alone vanished does not
-- make it anyone else's); a recovery also needs the lease it listed as expired, still expired.
-- Redis does not roll back a script that stops half-way: keys are checked for their type before
-- anything is written, the destination is written first (and undone if the task turns out not
-- to be active here), and what may still fail after that (a counter) is best effort.
-- Each entry: a KEYS index and the type its key must have, if it exists.
for _, k in ipairs({{1, "list"}, {2, "zset"}, {4, "hash"}}) do
  local t = redis.call("TYPE", KEYS[k[1]])["ok"]
  if t ~= k[2] and t ~= "none" then
    return redis.error_reply("WRONGTYPE " .. KEYS[k[1]] .. " holds a " .. t)
  end
end
local added = redis.call("ZADD", KEYS[3], ARGV[3], ARGV[1])
if redis.call("LREM", KEYS[1], 0, ARGV[1]) == 0 then
  if added == 1 then
    redis.call("ZREM", KEYS[3], ARGV[1])
  end
  return 0
end
redis.call("ZREM", KEYS[2], ARGV[1])
if ARGV[7] then
  redis.call("HSET", KEYS[4], "msg", ARGV[4], "state", "completed", "result", ARGV[7])
else
  redis.call("HSET", KEYS[4], "msg", ARGV[4], "state", "completed")
end
if KEYS[7] and redis.pcall("GET", KEYS[7]) == ARGV[1] then
  redis.call("DEL", KEYS[7])
end
local n = redis.pcall("INCR", KEYS[5])
if n == 1 then
  redis.pcall("EXPIREAT", KEYS[5], ARGV[2])
end
local total = redis.pcall("GET", KEYS[6])
if tonumber(total) == tonumber(ARGV[5]) then
  redis.pcall("SET", KEYS[6], 1)
else
  redis.pcall("INCR", KEYS[6])
end
redis.pcall("PUBLISH", ARGV[6], "completed")
return 1
