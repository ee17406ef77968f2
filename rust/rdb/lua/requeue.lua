-- requeue: give back a task still running at shutdown; it becomes the next to be dequeued.
-- KEYS[1] active       <ns>:{q}:active
-- KEYS[2] lease        <ns>:{q}:lease
-- KEYS[3] pending      <ns>:{q}:pending
-- KEYS[4] task hash    <ns>:{q}:t:<id>
-- ARGV[1] task id
-- Returns 1, or 0 when the task is not active here. Retry count and counters are untouched.
-- Nothing is written unless the task is leased, active and has its hash: the destination is
-- written first, so a broken pending key fails the call before anything else changed.
if not redis.call("ZSCORE", KEYS[2], ARGV[1]) or redis.call("EXISTS", KEYS[4]) == 0 then
  return 0
end
redis.call("RPUSH", KEYS[3], ARGV[1])
if redis.call("LREM", KEYS[1], 0, ARGV[1]) == 0 then
  redis.call("RPOP", KEYS[3])
  return 0
end
redis.call("ZREM", KEYS[2], ARGV[1])
redis.call("HSET", KEYS[4], "state", "pending")
return 1
