-- retry: a failed task waits in the retry zset.
-- KEYS[1] task hash           <ns>:{q}:t:<id>
-- KEYS[2] active              <ns>:{q}:active
-- KEYS[3] lease               <ns>:{q}:lease
-- KEYS[4] retry               <ns>:{q}:retry
-- KEYS[5] processed today     <ns>:{q}:processed:<YYYY-MM-DD>
-- KEYS[6] failed today        <ns>:{q}:failed:<YYYY-MM-DD>
-- KEYS[7] processed total     <ns>:{q}:processed
-- KEYS[8] failed total        <ns>:{q}:failed
-- ARGV[1] task id
-- ARGV[2] encoded TaskMessage (error_msg, last_failed_at, retried+1 when a failure)
-- ARGV[3] retry at, Unix seconds
-- ARGV[4] daily counter expiry, Unix seconds
-- ARGV[5] 1 when the error counts as a failure, else 0
-- ARGV[6] max int64
-- ARGV[7] the latest lease expiry this write may take over: max int64 for a handler's outcome,
--         the recoverer's cutoff for a recovery (a lease renewed since it was listed is kept)
-- Returns 1, or 0 when the task is not active here (another server moved it, or renewed it).
-- The task is this server's while it is in active (a lease entry that alone vanished does not
-- make it anyone else's); a recovery also needs the lease it listed as expired, still expired.
-- Redis does not roll back a script that stops half-way: keys are checked for their type before
-- anything is written, the destination is written first (and undone if the task turns out not
-- to be active here), and what may still fail after that (a counter) is best effort.
-- Each entry: a KEYS index and the type its key must have, if it exists.
for _, k in ipairs({{2, "list"}, {3, "zset"}, {1, "hash"}}) do
  local t = redis.call("TYPE", KEYS[k[1]])["ok"]
  if t ~= k[2] and t ~= "none" then
    return redis.error_reply("WRONGTYPE " .. KEYS[k[1]] .. " holds a " .. t)
  end
end
local lease = redis.call("ZSCORE", KEYS[3], ARGV[1])
if ARGV[7] ~= ARGV[6] and (not lease or tonumber(lease) > tonumber(ARGV[7])) then
  return 0
end
local added = redis.call("ZADD", KEYS[4], ARGV[3], ARGV[1])
if redis.call("LREM", KEYS[2], 0, ARGV[1]) == 0 then
  if added == 1 then
    redis.call("ZREM", KEYS[4], ARGV[1])
  end
  return 0
end
redis.call("ZREM", KEYS[3], ARGV[1])
redis.call("HSET", KEYS[1], "msg", ARGV[2], "state", "retry")
if tonumber(ARGV[5]) == 1 then
  local n = redis.pcall("INCR", KEYS[5])
  if n == 1 then
    redis.pcall("EXPIREAT", KEYS[5], ARGV[4])
  end
  local m = redis.pcall("INCR", KEYS[6])
  if m == 1 then
    redis.pcall("EXPIREAT", KEYS[6], ARGV[4])
  end
  local total = redis.pcall("GET", KEYS[7])
  if tonumber(total) == tonumber(ARGV[6]) then
    redis.pcall("SET", KEYS[7], 1)
    redis.pcall("SET", KEYS[8], 1)
  else
    redis.pcall("INCR", KEYS[7])
    redis.pcall("INCR", KEYS[8])
  end
end
return 1
