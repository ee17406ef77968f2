-- dequeue: lease up to ARGV[2] tasks from the first queue, in the given order, that is neither
-- paused nor empty. Each task moves as asynq's dequeue moves one (from the tail of pending:
-- FIFO); trying every queue and taking several tasks in one call saves round trips, which
-- matters with many queues.
-- KEYS[4i-3..4i] for the i-th queue in order:
--   pending <ns>:{q}:pending, paused <ns>:{q}:paused, active <ns>:{q}:active, lease <ns>:{q}:lease
-- KEYS[4n+1..] with a read-ahead: the task hashes <ns>:{q}:t:<id> the call names, any queue's
-- ARGV[1] lease expiry, Unix seconds
-- ARGV[2] most tasks to take (>= 1)
-- ARGV[3] read-ahead: 0 to build each popped task's hash name from its queue's prefix (asynq's
--         way); w > 0 to touch only the hashes named in KEYS (for proxies that refuse any
--         other key): a task whose hash the call does not name stays at the tail of pending,
--         and the reply carries the w ids at the tail, for the next call to name
-- ARGV[3+i] task hash prefix <ns>:{q}:t: of the i-th queue (n = #ARGV - 3 queues)
-- Returns {i, broken, ahead, id1, msg1, id2, msg2, ...}: i is the queue served (0: every queue
-- was paused, empty or broken, or, with a read-ahead, the first queue with tasks had none the
-- call named); broken is a flat array {j, error, ...} of the queues skipped because a key of
-- theirs has the wrong type, so one broken queue never stops the others; ahead is {} without a
-- read-ahead, else {j, {id, ...}}: the ids at the tail of the j-th queue's pending after the
-- call, the next to pop last. msg is false for a ghost id (no task hash, or a hash without msg):
-- it is dropped from pending, any msg-less hash deleted, and nothing leased; the caller logs
-- it. A queue's key types are checked once per call (a key cannot change type during a
-- script), so the per-task steps are asynq's own and cost what they did.
local broken = {}
-- Records queue q as broken when key holds something other than a `want` (or nothing).
local function broken_key(q, what, key, want)
  local t = redis.call("TYPE", key)["ok"]
  if t == want or t == "none" then
    return false
  end
  broken[#broken + 1] = q
  broken[#broken + 1] = what .. ": WRONGTYPE " .. key .. " holds a " .. t .. ", not a " .. want
  return true
end
local ahead_n = tonumber(ARGV[3])
local queues = #ARGV - 3
local named
if ahead_n > 0 then
  named = {}
  for i = 4 * queues + 1, #KEYS do
    named[KEYS[i]] = true
  end
end
for q = 1, queues do
  local pending, paused, active, lease = KEYS[4 * q - 3], KEYS[4 * q - 2], KEYS[4 * q - 1], KEYS[4 * q]
  -- An empty queue costs what it did (EXISTS and one more command); only a queue with tasks
  -- has its active list and lease set checked.
  if redis.call("EXISTS", paused) == 0 and redis.call("EXISTS", pending) == 1
      and not (broken_key(q, "pending", pending, "list") or broken_key(q, "active", active, "list")
        or broken_key(q, "lease", lease, "zset")) then
    local out = {q, broken, {}}
    local short = false
    for _ = 1, tonumber(ARGV[2]) do
      local id
      if named then
        id = redis.call("LINDEX", pending, -1)
        if id and not named[ARGV[3 + q] .. id] then
          short = true
          id = nil
        end
        if id then
          redis.call("RPOPLPUSH", pending, active)
        end
      else
        id = redis.call("RPOPLPUSH", pending, active)
      end
      if not id then
        break
      end
      local key = ARGV[3 + q] .. id
      local msg = redis.pcall("HGET", key, "msg")
      if type(msg) ~= "string" then
        -- A ghost: take it back off active (it is at the head) and write nothing for it. A
        -- task key holding something else is not ours to delete.
        redis.call("LPOP", active)
        if not msg then
          redis.call("DEL", key)
        end
        msg = false
      else
        redis.call("ZADD", lease, ARGV[1], id)
        redis.call("HSET", key, "state", "active")
        redis.call("HDEL", key, "pending_since")
      end
      out[#out + 1] = id
      out[#out + 1] = msg
    end
    if named and (short or #out > 3) then
      out[3] = {q, redis.call("LRANGE", pending, -ahead_n, -1)}
    end
    if #out > 3 then
      return out
    end
    if short then
      -- Tasks it was not told of wait for the next call, before any later queue is served.
      out[1] = 0
      return out
    end
  end
end
return {0, broken, {}}
