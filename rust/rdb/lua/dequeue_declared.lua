-- dequeue_declared: dequeue.lua for declared-keys mode (the default on a Redis Cluster,
-- Server(declare_keys=True) elsewhere), for clusters and proxies that hold a call to the keys it
-- names: it touches only the task hashes named in KEYS. A task whose hash the call does not name
-- stays at the tail of pending, and the reply carries the ids at the tail, for the next call to
-- name.
-- KEYS[4i-3..4i] for the i-th queue in order:
--   pending <ns>:{q}:pending, paused <ns>:{q}:paused, active <ns>:{q}:active, lease <ns>:{q}:lease
-- KEYS[4n+1..] the task hashes <ns>:{q}:t:<id> the call names, any queue's
-- ARGV[1] lease expiry, Unix seconds
-- ARGV[2] most tasks to take (>= 1)
-- ARGV[3] read-ahead w >= 1: how many ids at the tail of pending the reply carries
-- ARGV[3+i] task hash prefix <ns>:{q}:t: of the i-th queue (n = #ARGV - 3 queues); it is only
--         compared with the names in KEYS, never used to build a key
-- Returns {i, broken, ahead, id1, msg1, id2, msg2, ...} as dequeue.lua, where i is also 0 when
-- the first queue with tasks had none the call named, and ahead is {j, {id, ...}}: the ids at
-- the tail of the j-th queue's pending after the call, the next to pop last ({} when no queue
-- had tasks). Every key is written KEYS[...] where it is passed, which a proxy that reads the
-- script text asks for (test_lua_text).
-- Most tasks one call takes, whatever ARGV[2] says: their ids are passed to one LPUSH and one
-- ZADD, and Lua's unpack is bounded by its C stack (8,000 values).
local MAX = 1000
local broken = {}
-- Checked before anything is written: an argument Redis refused after the LTRIM would leave
-- the batch in no list at all.
local most = tonumber(ARGV[2])
if not tonumber(ARGV[1]) or not most or most < 1 then
  return redis.error_reply("dequeue_declared: want a numeric lease expiry and a count >= 1, not "
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
local ahead_n = tonumber(ARGV[3])
local queues = #ARGV - 3
-- The KEYS index of each named task hash.
local named = {}
for i = 4 * queues + 1, #KEYS do
  named[KEYS[i]] = i
end
for q = 1, queues do
  -- The KEYS indexes of this queue's keys.
  local pending, paused, active, lease = 4 * q - 3, 4 * q - 2, 4 * q - 1, 4 * q
  -- An empty queue costs what it did (EXISTS and one more command); only a queue with tasks
  -- has its active list and lease set checked.
  if redis.call("EXISTS", KEYS[paused]) == 0 and redis.call("EXISTS", KEYS[pending]) == 1
      and not (broken_key(q, "pending", pending, "list") or broken_key(q, "active", active, "list")
        or broken_key(q, "lease", lease, "zset")) then
    local out = {q, broken, {}}
    local short = false -- stopped at a task whose hash the call does not name
    -- The tail of pending, in the order RPOPLPUSH would pop it (last first), up to the first
    -- task the call does not name.
    local tail = redis.call("LRANGE", KEYS[pending], -most, -1)
    local take = {}
    for t = #tail, 1, -1 do
      local h = named[ARGV[3 + q] .. tail[t]]
      if not h then
        short = true
        break
      end
      take[#take + 1] = h
    end
    if #take > 0 then
      redis.call("LTRIM", KEYS[pending], 0, -#take - 1)
    end
    local moved, leased = {}, {}
    for t, h in ipairs(take) do
      local id = tail[#tail + 1 - t]
      local msg = redis.pcall("HGET", KEYS[h], "msg")
      if type(msg) ~= "string" then
        -- A ghost: it leaves pending and nothing is written for it. A task key holding
        -- something else is not ours to delete.
        if not msg then
          redis.call("DEL", KEYS[h])
        end
        msg = false
      else
        moved[#moved + 1] = id
        leased[#leased + 1] = ARGV[1]
        leased[#leased + 1] = id
        redis.call("HSET", KEYS[h], "state", "active")
        redis.call("HDEL", KEYS[h], "pending_since")
      end
      out[#out + 1] = id
      out[#out + 1] = msg
    end
    if #moved > 0 then
      -- Pushed in pop order, the last popped ends at the head, as one RPOPLPUSH each leaves it.
      redis.call("LPUSH", KEYS[active], unpack(moved))
      redis.call("ZADD", KEYS[lease], unpack(leased))
    end
    out[3] = {q, redis.call("LRANGE", KEYS[pending], -ahead_n, -1)}
    if short and #out == 3 then
      -- Only tasks it was not told of: they wait for the next call, before any later queue is
      -- served.
      out[1] = 0
    end
    return out
  end
end
return {0, broken, {}}
