-- schedule: a new task waits in the scheduled zset until the forwarder moves it.
-- KEYS[1] task hash    <ns>:{q}:t:<id>
-- KEYS[2] scheduled    <ns>:{q}:scheduled
-- ARGV[1] encoded TaskMessage
-- ARGV[2] process-at, Unix seconds
-- ARGV[3] task id
-- ARGV[4] optional: a Pub/Sub channel to PUBLISH the process-at to, so that idle ferroq servers
--         forward the task when it is due instead of at their next check
-- Returns 1 when scheduled, 0 when the id exists.
if redis.call("EXISTS", KEYS[1]) == 1 then
  return 0
end
redis.call("HSET", KEYS[1], "msg", ARGV[1], "state", "scheduled")
redis.call("ZADD", KEYS[2], ARGV[2], ARGV[3])
if ARGV[4] then
  redis.call("PUBLISH", ARGV[4], ARGV[2])
end
return 1
