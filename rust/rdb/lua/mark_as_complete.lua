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
-- Returns 1, or 0 when the task is not active here (another server moved it). Nothing is written
-- unless the task is leased, active and has its hash: the destination is written first, so a
-- broken completed key fails the call before anything else changed; the counters are best
-- effort.
if not redis.call("ZSCORE", KEYS[2], ARGV[1]) or redis.call("EXISTS", KEYS[4]) == 0 then
  return 0
end
redis.call("ZADD", KEYS[3], ARGV[3], ARGV[1])
if redis.call("LREM", KEYS[1], 0, ARGV[1]) == 0 then
  redis.call("ZREM", KEYS[3], ARGV[1])
  return 0
end
redis.call("ZREM", KEYS[2], ARGV[1])
redis.call("HSET", KEYS[4], "msg", ARGV[4], "state", "completed")
if KEYS[7] and redis.call("GET", KEYS[7]) == ARGV[1] then
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
return 1
