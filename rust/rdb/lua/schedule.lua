-- schedule: a new task waits in the scheduled zset until the forwarder moves it.
-- KEYS[1] task hash    <ns>:{q}:t:<id>
-- KEYS[2] scheduled    <ns>:{q}:scheduled
-- ARGV[1] encoded TaskMessage
-- ARGV[2] process-at, Unix seconds
-- ARGV[3] task id
-- Returns 1 when scheduled, 0 when the id exists.
if redis.call("EXISTS", KEYS[1]) == 1 then
  return 0
end
redis.call("HSET", KEYS[1], "msg", ARGV[1], "state", "scheduled")
redis.call("ZADD", KEYS[2], ARGV[2], ARGV[3])
return 1
