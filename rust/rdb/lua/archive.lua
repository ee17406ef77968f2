-- archive: a task that will not be retried goes to the archive. The caller then trims the archive
-- to its limits (trim_archive.lua), which names the hashes it deletes in KEYS.
-- KEYS[1] task hash           <ns>:{q}:t:<id>
-- KEYS[2] active              <ns>:{q}:active
-- KEYS[3] lease               <ns>:{q}:lease
-- KEYS[4] archived            <ns>:{q}:archived
-- KEYS[5] processed today     <ns>:{q}:processed:<YYYY-MM-DD>
-- KEYS[6] failed today        <ns>:{q}:failed:<YYYY-MM-DD>
-- KEYS[7] processed total     <ns>:{q}:processed
-- KEYS[8] failed total        <ns>:{q}:failed
-- ARGV[1] task id
-- ARGV[2] encoded TaskMessage (error_msg, last_failed_at; raw bytes for an undecodable message)
-- ARGV[3] now, Unix seconds
-- ARGV[4] daily counter expiry, Unix seconds
-- ARGV[5] max int64
-- ARGV[6] the latest lease expiry this write may take over (see retry.lua)
-- ARGV[7] why the message could not be decoded (stored as the hash field "error"), or ""
-- ARGV[8] completion notice channel <ns>:{q}:done:<id> (its waiters are told "archived")
-- ARGV[9] optional: the handler's exception as JSON (stored as the hash field "exception")
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
if ARGV[6] ~= ARGV[5] and (not lease or tonumber(lease) > tonumber(ARGV[6])) then
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
redis.call("HSET", KEYS[1], "msg", ARGV[2], "state", "archived")
if ARGV[7] ~= "" then
  redis.call("HSET", KEYS[1], "error", ARGV[7])
end
if ARGV[9] then
  redis.call("HSET", KEYS[1], "exception", ARGV[9])
end
local n = redis.pcall("INCR", KEYS[5])
if n == 1 then
  redis.pcall("EXPIREAT", KEYS[5], ARGV[4])
end
local m = redis.pcall("INCR", KEYS[6])
if m == 1 then
  redis.pcall("EXPIREAT", KEYS[6], ARGV[4])
end
local total = redis.pcall("GET", KEYS[7])
if tonumber(total) == tonumber(ARGV[5]) then
  redis.pcall("SET", KEYS[7], 1)
  redis.pcall("SET", KEYS[8], 1)
else
  redis.pcall("INCR", KEYS[7])
  redis.pcall("INCR", KEYS[8])
end
redis.pcall("PUBLISH", ARGV[8], "archived")
return 1
