-- dequeue: lease up to ARGV[2] tasks from the first queue, in the given order, that is neither
-- paused nor empty. Each task moves as asynq's dequeue moves one (from the tail of pending:
-- FIFO); trying every queue and taking several tasks in one call saves round trips, which
-- matters with many queues.
-- KEYS[4i-3..4i] for the i-th queue in order:
--   pending <ns>:{q}:pending, paused <ns>:{q}:paused, active <ns>:{q}:active, lease <ns>:{q}:lease
-- ARGV[1] lease expiry, Unix seconds
-- ARGV[2] most tasks to take (>= 1)
-- ARGV[2+i] task hash prefix <ns>:{q}:t: of the i-th queue
-- Returns {i, broken, id1, msg1, id2, msg2, ...}: i is the queue served (0: every queue was
-- paused, empty or broken); broken is a flat array {j, error, ...} of the queues skipped because
-- a key of theirs has the wrong type, so one broken queue never stops the others. msg is false
-- for a ghost id (no task hash, or a hash without msg): it is dropped from pending, any
-- msg-less hash deleted, and nothing leased; the caller logs it.
local broken = {}
for q = 1, #KEYS / 4 do
  local pending, paused, active, lease = KEYS[4 * q - 3], KEYS[4 * q - 2], KEYS[4 * q - 1], KEYS[4 * q]
  if redis.call("EXISTS", paused) == 0 then
    local out = {q, broken}
    for _ = 1, tonumber(ARGV[2]) do
      local id = redis.pcall("RPOP", pending)
      if type(id) == "table" then
        broken[#broken + 1] = q
        broken[#broken + 1] = "pending: " .. tostring(id.err)
        break
      end
      if not id then
        break
      end
      local key = ARGV[2 + q] .. id
      local msg = redis.pcall("HGET", key, "msg")
      if type(msg) == "table" then
        -- The task key holds something else: not ours to delete; the id is dropped.
        msg = false
      elseif not msg then
        redis.call("DEL", key)
      else
        -- Checked before the task is taken, so a broken active list or lease set puts it back.
        local err = redis.pcall("LPUSH", active, id)
        if type(err) == "table" then
          redis.call("RPUSH", pending, id)
          broken[#broken + 1] = q
          broken[#broken + 1] = "active: " .. tostring(err.err)
          break
        end
        err = redis.pcall("ZADD", lease, ARGV[1], id)
        if type(err) == "table" then
          redis.call("LPOP", active)
          redis.call("RPUSH", pending, id)
          broken[#broken + 1] = q
          broken[#broken + 1] = "lease: " .. tostring(err.err)
          break
        end
        redis.call("HSET", key, "state", "active")
        redis.call("HDEL", key, "pending_since")
      end
      out[#out + 1] = id
      out[#out + 1] = msg
    end
    if #out > 2 then
      return out
    end
  end
end
return {0, broken}
