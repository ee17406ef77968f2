-- dequeue: lease up to ARGV[2] tasks from the first queue, in the given order, that is neither
-- paused nor empty. Each task moves as asynq's dequeue moves one (from the tail of pending:
-- FIFO); trying every queue and taking several tasks in one call saves round trips, which
-- matters with many queues.
-- KEYS[4i-3..4i] for the i-th queue in order:
--   pending <ns>:{q}:pending, paused <ns>:{q}:paused, active <ns>:{q}:active, lease <ns>:{q}:lease
-- ARGV[1] lease expiry, Unix seconds
-- ARGV[2] most tasks to take (>= 1)
-- ARGV[2+i] task hash prefix <ns>:{q}:t: of the i-th queue
-- Returns {i, id1, msg1, id2, msg2, ...} for the queue served (msg is false when the hash has no
-- msg field; the caller drops such ids), or {} when every queue is paused or empty.
for q = 1, table.getn(KEYS) / 4 do
  local pending, paused, active, lease = KEYS[4 * q - 3], KEYS[4 * q - 2], KEYS[4 * q - 1], KEYS[4 * q]
  if redis.call("EXISTS", paused) == 0 then
    local out = {q}
    for _ = 1, tonumber(ARGV[2]) do
      local id = redis.call("RPOPLPUSH", pending, active)
      if not id then
        break
      end
      local key = ARGV[2 + q] .. id
      redis.call("HSET", key, "state", "active")
      redis.call("HDEL", key, "pending_since")
      redis.call("ZADD", lease, ARGV[1], id)
      out[#out + 1] = id
      out[#out + 1] = redis.call("HGET", key, "msg")
    end
    if #out > 1 then
      return out
    end
  end
end
return {}
