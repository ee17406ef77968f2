-- archive: a task that will not be retried goes to the archive, which is trimmed by age and size.
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
-- ARGV[4] cutoff, Unix seconds (now - 90 days): older entries are deleted
-- ARGV[5] size cap: the archive keeps at most cap-1 entries (asynq passes its 10000; ferroq
--         passes archive_max_size + 1)
-- ARGV[6] daily counter expiry, Unix seconds
-- ARGV[7] max int64
-- ARGV[8] task hash prefix <ns>:{q}:t:
-- ARGV[9] the latest lease expiry this write may take over (see retry.lua)
-- ARGV[10] why the message could not be decoded (stored as the hash field "error"), or ""
-- ARGV[11] completion notice channel <ns>:{q}:done:<id> (its waiters are told "archived")
-- ARGV[12] optional: the handler's exception as JSON (stored as the hash field "exception")
-- Returns 1, or 0 when the task is not active here (another server moved it, or renewed it).
-- The task is this server's while it is in active (a lease entry that alone vanished does not
-- make it anyone else's); a recovery also needs the lease it listed as expired, still expired.
-- Redis does not roll back a script that stops half-way: keys are checked for their type before
-- anything is written, the destination is written first (and undone if the task turns out not
-- to be active here), and what may still fail after that (a counter) is best effort.
-- Needs Redis >= 6.2 (ZRANGE BYSCORE).
for _, k in ipairs({{KEYS[2], "list"}, {KEYS[3], "zset"}, {KEYS[1], "hash"}}) do
  local t = redis.call("TYPE", k[1])["ok"]
  if t ~= k[2] and t ~= "none" then
    return redis.error_reply("WRONGTYPE " .. k[1] .. " holds a " .. t)
  end
end
local lease = redis.call("ZSCORE", KEYS[3], ARGV[1])
if ARGV[9] ~= ARGV[7] and (not lease or tonumber(lease) > tonumber(ARGV[9])) then
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
if ARGV[10] ~= "" then
  redis.call("HSET", KEYS[1], "error", ARGV[10])
end
if ARGV[12] then
  redis.call("HSET", KEYS[1], "exception", ARGV[12])
end
-- Trimmed after the hash is written, so a trimmed task leaves no hash behind; the task archived
-- now is the newest and goes last, even when older entries share its second (rank ties are
-- broken by ID).
local old = redis.call("ZRANGE", KEYS[4], "-inf", ARGV[4], "BYSCORE")
for _, id in ipairs(old) do
  redis.call("DEL", ARGV[8] .. id)
  redis.call("ZREM", KEYS[4], id)
end
local over = redis.call("ZCARD", KEYS[4]) - (tonumber(ARGV[5]) - 1)
if over > 0 then
  local oldest = redis.call("ZRANGE", KEYS[4], 0, over)
  for _, id in ipairs(oldest) do
    if over > 0 and (id ~= ARGV[1] or #oldest <= over) then
      redis.call("DEL", ARGV[8] .. id)
      redis.call("ZREM", KEYS[4], id)
      over = over - 1
    end
  end
end
local n = redis.pcall("INCR", KEYS[5])
if n == 1 then
  redis.pcall("EXPIREAT", KEYS[5], ARGV[6])
end
local m = redis.pcall("INCR", KEYS[6])
if m == 1 then
  redis.pcall("EXPIREAT", KEYS[6], ARGV[6])
end
local total = redis.pcall("GET", KEYS[7])
if tonumber(total) == tonumber(ARGV[7]) then
  redis.pcall("SET", KEYS[7], 1)
  redis.pcall("SET", KEYS[8], 1)
else
  redis.pcall("INCR", KEYS[7])
  redis.pcall("INCR", KEYS[8])
end
redis.pcall("PUBLISH", ARGV[11], "archived")
return 1
