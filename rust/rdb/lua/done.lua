-- done: a task succeeded without retention (or was revoked); delete it and count it processed.
-- KEYS[1] active              <ns>:{q}:active
-- KEYS[2] lease               <ns>:{q}:lease
-- KEYS[3] task hash           <ns>:{q}:t:<id>
-- KEYS[4] processed today     <ns>:{q}:processed:<YYYY-MM-DD>
-- KEYS[5] processed total     <ns>:{q}:processed
-- KEYS[6] unique lock (only when the message has a unique_key)
-- ARGV[1] task id
-- ARGV[2] daily counter expiry, Unix seconds (now + 90 days)
-- ARGV[3] max int64 (the total wraps to 1 there)
-- ARGV[4] optional: completion notice channel <ns>:{q}:done:<id>, for a revoked task that had
--         retention (waiters are told "deleted"; without retention nobody can wait on it)
-- Returns 1, or 0 when the task is not active here (another server moved it).
-- The task is this server's while it is in active: a lease entry that alone vanished does not
-- make it anyone else's (the renewal takes such a lease back). Redis does not roll back a script
-- that stops half-way, so the keys are checked before anything is written, and what may fail
-- after that (a counter, a lock of the wrong type) is best effort.
-- Each entry: a KEYS index and the type its key must have, if it exists.
for _, k in ipairs({{1, "list"}, {2, "zset"}}) do
  local t = redis.call("TYPE", KEYS[k[1]])["ok"]
  if t ~= k[2] and t ~= "none" then
    return redis.error_reply("WRONGTYPE " .. KEYS[k[1]] .. " holds a " .. t)
  end
end
if redis.call("LREM", KEYS[1], 0, ARGV[1]) == 0 then
  return 0
end
redis.call("ZREM", KEYS[2], ARGV[1])
redis.call("DEL", KEYS[3])
if KEYS[6] and redis.pcall("GET", KEYS[6]) == ARGV[1] then
  redis.call("DEL", KEYS[6])
end
local n = redis.pcall("INCR", KEYS[4])
if n == 1 then
  redis.pcall("EXPIREAT", KEYS[4], ARGV[2])
end
local total = redis.pcall("GET", KEYS[5])
if tonumber(total) == tonumber(ARGV[3]) then
  redis.pcall("SET", KEYS[5], 1)
else
  redis.pcall("INCR", KEYS[5])
end
if ARGV[4] then
  redis.pcall("PUBLISH", ARGV[4], "deleted")
end
return 1
