-- enqueue: a new task goes to the head of the pending list.
-- KEYS[1] task hash    <ns>:{q}:t:<id>
-- KEYS[2] pending      <ns>:{q}:pending
-- ARGV[1] encoded TaskMessage
-- ARGV[2] task id
-- ARGV[3] now, Unix nanoseconds (pending_since)
-- ARGV[4] optional: a Pub/Sub channel to PUBLISH to, waking idle ferroq servers of the queue
-- Returns 1 when enqueued, 0 when a task with this id exists in any state.
if redis.call("EXISTS", KEYS[1]) == 1 then
  return 0
end
redis.call("HSET", KEYS[1], "msg", ARGV[1], "state", "pending", "pending_since", ARGV[3])
redis.call("LPUSH", KEYS[2], ARGV[2])
if ARGV[4] then
  redis.call("PUBLISH", ARGV[4], "")
end
return 1
