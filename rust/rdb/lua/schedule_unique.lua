-- schedule_unique: schedule under a unique lock.
-- KEYS[1] unique lock  <ns>:{q}:unique:<type>:<md5(payload)>
-- KEYS[2] task hash    <ns>:{q}:t:<id>
-- KEYS[3] scheduled    <ns>:{q}:scheduled
-- ARGV[1] task id
-- ARGV[2] lock TTL, whole seconds (time until process-at plus the unique TTL)
-- ARGV[3] process-at, Unix seconds
-- ARGV[4] encoded TaskMessage
-- ARGV[5] optional: a Pub/Sub channel to PUBLISH the process-at to (see schedule.lua)
-- Returns 1 when scheduled, -1 when the lock is held, 0 when the id exists.
local ok = redis.call("SET", KEYS[1], ARGV[1], "NX", "EX", ARGV[2])
if not ok then
  return -1
end
if redis.call("EXISTS", KEYS[2]) == 1 then
  return 0
end
redis.call("HSET", KEYS[2], "msg", ARGV[4], "state", "scheduled", "unique_key", KEYS[1])
redis.call("ZADD", KEYS[3], ARGV[3], ARGV[1])
if ARGV[5] then
  redis.call("PUBLISH", ARGV[5], ARGV[3])
end
return 1
