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
-- Returns 1, or 0 when the task is not active here (another server moved it). Everything is
-- checked before anything is written: Redis does not roll back a script that stops half-way.
if not redis.call("ZSCORE", KEYS[2], ARGV[1]) or redis.call("EXISTS", KEYS[4]) == 0 then
  return 0
end
if redis.call("LREM", KEYS[1], 0, ARGV[1]) == 0 then
  return 0
end
redis.call("ZREM", KEYS[2], ARGV[1])
redis.call("ZADD", KEYS[3], ARGV[3], ARGV[1])
redis.call("HSET", KEYS[4], "msg", ARGV[4], "state", "completed")
local n = redis.call("INCR", KEYS[5])
if tonumber(n) == 1 then
  redis.call("EXPIREAT", KEYS[5], ARGV[2])
end
local total = redis.call("GET", KEYS[6])
if tonumber(total) == tonumber(ARGV[5]) then
  redis.call("SET", KEYS[6], 1)
else
  redis.call("INCR", KEYS[6])
end
if KEYS[7] and redis.call("GET", KEYS[7]) == ARGV[1] then
  redis.call("DEL", KEYS[7])
end
return 1
