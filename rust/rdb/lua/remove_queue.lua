-- remove_queue: an Inspector deletes a queue's tasks and task containers (DeleteQueue), in one
-- step, so nothing can be leased or enqueued between the emptiness check and the deletion. The
-- caller then deletes the queue's other keys (counters, the pause flag, leftover hashes and
-- locks) and, last, its name. Every key it touches is named in KEYS: the caller reads the groups
-- and aggregation sets first, and a call that does not name the hash of every task the
-- containers hold, or a unique lock such a hash points to, deletes nothing and returns the keys
-- to name (asynq's script builds these names).
-- KEYS[1] pending           <ns>:{q}:pending
-- KEYS[2] active            <ns>:{q}:active
-- KEYS[3] scheduled         <ns>:{q}:scheduled
-- KEYS[4] retry             <ns>:{q}:retry
-- KEYS[5] archived          <ns>:{q}:archived
-- KEYS[6] lease             <ns>:{q}:lease
-- KEYS[7] completed         <ns>:{q}:completed
-- KEYS[8] groups            <ns>:{q}:groups
-- KEYS[9] aggregation sets  <ns>:{q}:aggregation_sets
-- KEYS[10..9+n] the group zsets <ns>:{q}:g:<group> of the names in ARGV[4..3+n]
-- KEYS[10+n..9+n+m] the m aggregation-set zsets listed in aggregation_sets, as the caller read
--                   them
-- KEYS[10+n+m..] task hashes <ns>:{q}:t:<id> and unique locks, in any order
-- ARGV[1] "1" to delete a queue that still holds tasks (never one with active tasks)
-- ARGV[2] task hash prefix <ns>:{q}:t:
-- ARGV[3] n, the number of groups
-- ARGV[4..3+n] the group names, as the caller read them from groups
-- ARGV[4+n] m, the number of aggregation sets
-- ARGV[5+n] the queue's key prefix <ns>:{q}: (a lock outside it is not the queue's: left)
-- Returns 1 when deleted; -1 when not forced and the queue holds pending, scheduled, retry,
-- archived or aggregating tasks (completed ones are history, and go with it); -2 when it holds
-- active tasks; -3 when its groups or aggregation sets changed since the caller read them; or
-- the keys (task hashes, then the locks of named hashes) the call must name too.
-- Both take a KEYS index.
local function size(k)
  local t = redis.call("TYPE", KEYS[k])["ok"]
  if t == "list" then return redis.call("LLEN", KEYS[k]) end
  if t == "zset" then return redis.call("ZCARD", KEYS[k]) end
  if t == "set" then return redis.call("SCARD", KEYS[k]) end
  return 0
end
local function members(k)
  local t = redis.call("TYPE", KEYS[k])["ok"]
  if t == "list" then return redis.call("LRANGE", KEYS[k], 0, -1) end
  if t == "zset" then return redis.call("ZRANGE", KEYS[k], 0, -1) end
  if t == "set" then return redis.call("SMEMBERS", KEYS[k]) end
  return {}
end
local n = tonumber(ARGV[3])
local m = n and tonumber(ARGV[4 + n])
local qprefix = m and ARGV[5 + n]
if not qprefix or #KEYS < 9 + n + m then
  return redis.error_reply("remove_queue: " .. #KEYS .. " keys for " .. tostring(n) .. " groups and " .. tostring(m) .. " sets")
end
if size(2) > 0 then
  return -2
end
local named = {}
for i = 1, n do
  named[ARGV[3 + i]] = true
end
local groups = members(8)
if #groups ~= n then
  return -3
end
for _, g in ipairs(groups) do
  if not named[g] then
    return -3
  end
end
local given_sets = {}
for i = 10 + n, 9 + n + m do
  given_sets[KEYS[i]] = true
end
local sets = members(9)
if #sets ~= m then
  return -3
end
for _, s in ipairs(sets) do
  if not given_sets[s] then
    return -3
  end
end
if ARGV[1] ~= "1" then
  if n > 0 or #sets > 0 then
    return -1
  end
  for _, i in ipairs({1, 3, 4, 5}) do
    if size(i) > 0 then
      return -1
    end
  end
end
-- The KEYS index of each named hash and lock.
local declared = {}
for i = 10 + n + m, #KEYS do
  declared[KEYS[i]] = i
end
-- The KEYS indexes of the containers that hold tasks.
local holders = {1, 3, 4, 5, 7}
for i = 10, 9 + n + m do
  holders[#holders + 1] = i
end
-- Each task once (an ID may sit in two containers), with the KEYS indexes of its hash and of
-- the lock the hash points to, if any.
local tasks, seen, missing = {}, {}, {}
for _, k in ipairs(holders) do
  for _, id in ipairs(members(k)) do
    local hash = ARGV[2] .. id
    if not seen[hash] then
      seen[hash] = true
      local h = declared[hash]
      if not h then
        missing[#missing + 1] = hash
      else
        local lock = false
        if redis.call("TYPE", KEYS[h])["ok"] == "hash" then
          lock = redis.call("HGET", KEYS[h], "unique_key")
          if lock and string.sub(lock, 1, #qprefix) ~= qprefix then
            lock = false
          end
          if lock and not declared[lock] and not seen[lock] then
            seen[lock] = true
            missing[#missing + 1] = lock
          end
        end
        tasks[#tasks + 1] = {id, h, lock and declared[lock]}
      end
    end
  end
end
if #missing > 0 then
  return missing
end
for _, t in ipairs(tasks) do
  -- pcall: a lock key someone overwrote with another type must not stop the deletion.
  if t[3] and redis.pcall("GET", KEYS[t[3]]) == t[1] then
    redis.call("DEL", KEYS[t[3]])
  end
  redis.call("DEL", KEYS[t[2]])
end
for i = 1, 9 + n + m do
  redis.call("DEL", KEYS[i])
end
return 1
