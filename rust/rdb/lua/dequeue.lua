-- dequeue: lease up to ARGV[3] tasks from the tail of the pending list (FIFO). Each task moves as
-- asynq's dequeue moves one; taking several in one call saves round trips.
-- KEYS[1] pending      <ns>:{q}:pending
-- KEYS[2] paused       <ns>:{q}:paused
-- KEYS[3] active       <ns>:{q}:active
-- KEYS[4] lease        <ns>:{q}:lease
-- ARGV[1] lease expiry, Unix seconds
-- ARGV[2] task hash prefix <ns>:{q}:t:
-- ARGV[3] most tasks to take (>= 1)
-- Returns a flat array id1, msg1, id2, msg2, ...; msg is false when the hash has no msg field
-- (the caller drops such ids). Empty when the queue is paused or empty.
if redis.call("EXISTS", KEYS[2]) == 1 then
  return {}
end
local out = {}
for _ = 1, tonumber(ARGV[3]) do
  local id = redis.call("RPOPLPUSH", KEYS[1], KEYS[3])
  if not id then
    break
  end
  local key = ARGV[2] .. id
  redis.call("HSET", key, "state", "active")
  redis.call("HDEL", key, "pending_since")
  redis.call("ZADD", KEYS[4], ARGV[1], id)
  out[#out + 1] = id
  out[#out + 1] = redis.call("HGET", key, "msg")
end
return out
