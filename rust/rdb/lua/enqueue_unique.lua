-- enqueue_unique: enqueue only while no task of the same (queue, type, payload) holds the lock.
-- KEYS[1] unique lock  <ns>:{q}:unique:<type>:<md5(payload)>
-- KEYS[2] task hash    <ns>:{q}:t:<id>
-- KEYS[3] pending      <ns>:{q}:pending
-- ARGV[1] task id
-- ARGV[2] lock TTL, whole seconds
-- ARGV[3] encoded TaskMessage
-- ARGV[4] now, Unix nanoseconds
-- ARGV[5] optional: a Pub/Sub channel to PUBLISH to, waking idle ferroq servers of the queue
-- Returns 1 when enqueued, -1 when the lock is held, 0 when the id exists (the lock stays taken,
-- as asynq leaves it).
local ok = redis.call("SET", KEYS[1], ARGV[1], "NX", "EX", ARGV[2])
if not ok then
  return -1
end
if redis.call("EXISTS", KEYS[2]) == 1 then
  return 0
end
redis.call("HSET", KEYS[2], "msg", ARGV[3], "state", "pending", "pending_since", ARGV[4],
  "unique_key", KEYS[1])
redis.call("LPUSH", KEYS[3], ARGV[1])
if ARGV[5] then
  redis.call("PUBLISH", ARGV[5], "")
end
return 1
