-- dequeue: lease up to ARGV[2] tasks from the first queue, in the given order, that is neither
-- paused nor empty. The tasks end where asynq's dequeue leaves each one it moves (taken from the
-- tail of pending, FIFO; pushed at the head of active; leased; its hash marked active); trying
-- every queue and taking several tasks in one call saves round trips, which matters with many
-- queues; the list and lease-set writes are made once for the call, so a batch costs Redis
-- three commands a task (and four a call) instead of five a task. Like asynq's, it builds the hash
-- name of each task it pops from its queue's prefix, the one key no call names
-- (docs/scaling.md); dequeue_declared.lua, for declared-keys mode, names them all.
-- KEYS[4i-3..4i] for the i-th queue in order:
--   pending <ns>:{q}:pending, paused <ns>:{q}:paused, active <ns>:{q}:active, lease <ns>:{q}:lease
-- ARGV[1] lease expiry, Unix seconds
-- ARGV[2] most tasks to take (>= 1)
-- ARGV[2+i] task hash prefix <ns>:{q}:t: of the i-th queue (n = #ARGV - 2 queues)
-- Returns {i, broken, {}, id1, msg1, id2, msg2, ...}: i is the queue served (0: every queue was
-- paused, empty or broken); broken is a flat array {j, error, ...} of the queues skipped because
-- a key of theirs has the wrong type, so one broken queue never stops the others; the third
-- entry is dequeue_declared.lua's read-ahead, empty here. msg is false for a ghost id (no task
-- hash, or a hash without msg): it is dropped from pending, any msg-less hash deleted, and
-- nothing leased; the caller logs it. A queue's key types are checked once per call (a key
-- cannot change type during a script). Keys are written KEYS[...] where they are passed
-- (test_lua_text).
-- Most tasks one call takes, whatever ARGV[2] says: their ids are passed to one LPUSH and one
-- ZADD, and Lua's unpack is bounded by its C stack (8,000 values).
local MAX = 1000
local broken = {}
-- Checked before anything is written: an argument Redis refused after the LTRIM would leave
-- the batch in no list at all.
local most = tonumber(ARGV[2])
if not tonumber(ARGV[1]) or not most or most < 1 then
  return redis.error_reply("dequeue: want a numeric lease expiry and a count >= 1, not "
    .. tostring(ARGV[1]) .. ", " .. tostring(ARGV[2]))
end
most = math.min(most, MAX)
-- Records queue q as broken when KEYS[k] holds something other than a `want` (or nothing).
local function broken_key(q, what, k, want)
  local t = redis.call("TYPE", KEYS[k])["ok"]
  if t == want or t == "none" then
    return false
  end
  broken[#broken + 1] = q
  broken[#broken + 1] = what .. ": WRONGTYPE " .. KEYS[k] .. " holds a " .. t .. ", not a " .. want
  return true
end
for q = 1, #ARGV - 2 do
  -- The KEYS indexes of this queue's keys.
  local pending, paused, active, lease = 4 * q - 3, 4 * q - 2, 4 * q - 1, 4 * q
  -- An empty queue costs what it did (EXISTS and one more command); only a queue with tasks
  -- has its active list and lease set checked.
  if redis.call("EXISTS", KEYS[paused]) == 0 and redis.call("EXISTS", KEYS[pending]) == 1
      and not (broken_key(q, "pending", pending, "list") or broken_key(q, "active", active, "list")
        or broken_key(q, "lease", lease, "zset")) then
    local out = {q, broken, {}}
    -- The tail of pending, in the order RPOPLPUSH would pop it (last first).
    local tail = redis.call("LRANGE", KEYS[pending], -most, -1)
    redis.call("LTRIM", KEYS[pending], 0, -#tail - 1)
    local moved, leased = {}, {}
    for t = #tail, 1, -1 do
      local id = tail[t]
      local key = ARGV[2 + q] .. id
      local msg = redis.pcall("HGET", key, "msg")
      if type(msg) ~= "string" then
        -- A ghost: it leaves pending and nothing is written for it. A task key holding
        -- something else is not ours to delete.
        if not msg then
          redis.call("DEL", key)
        end
        msg = false
      else
        moved[#moved + 1] = id
        leased[#leased + 1] = ARGV[1]
        leased[#leased + 1] = id
        redis.call("HSET", key, "state", "active")
        redis.call("HDEL", key, "pending_since")
      end
      out[#out + 1] = id
      out[#out + 1] = msg
    end
    if #moved > 0 then
      -- Pushed in pop order, the last popped ends at the head, as one RPOPLPUSH each leaves it.
      redis.call("LPUSH", KEYS[active], unpack(moved))
      redis.call("ZADD", KEYS[lease], unpack(leased))
    end
    if #out > 3 then
      return out
    end
  end
end
return {0, broken, {}}
