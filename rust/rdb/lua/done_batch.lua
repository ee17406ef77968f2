-- done_batch: many tasks of one queue succeeded without retention (or were revoked): done.lua for
-- each, with the lease entries removed and the processed counters incremented once for the batch.
-- At most 1,000 tasks a call: their ids go to one ZREM, and Lua's unpack is bounded by its C
-- stack (8,000 values).
-- KEYS[1] active              <ns>:{q}:active
-- KEYS[2] lease               <ns>:{q}:lease
-- KEYS[3] processed today     <ns>:{q}:processed:<YYYY-MM-DD>
-- KEYS[4] processed total     <ns>:{q}:processed
-- KEYS[5..4+n] task hash      <ns>:{q}:t:<id>, one per task, in the order of the pairs below
-- KEYS[5+n..] unique locks    <ns>:{q}:unique:..., for the tasks that hold one
-- ARGV[1] daily counter expiry, Unix seconds (now + 90 days)
-- ARGV[2], ARGV[3], ...: pairs of task id and the index of its lock among the lock keys
--         (1-based; 0 when it has none)
-- Returns one code per task, in order: 1 done, 0 not found (another server already moved it:
-- nothing of it is written).
-- LREM counts from the tail (-1) and stops at the first match: an id is in active once, and
-- dequeue pushes at the head, so the oldest tasks, the ones finishing first, are found first
-- instead of scanning the whole list as done.lua's LREM 0 does.
-- Keys of the wrong type fail the call before anything is written (Redis does not roll back a
-- script that stops half-way); a lock of the wrong type is skipped.
local n = (#ARGV - 1) / 2
local locks = 0
for t = 1, n do
  locks = math.max(locks, tonumber(ARGV[2 * t + 1]) or 0)
end
if n ~= math.floor(n) or n > 1000 or #KEYS ~= 4 + n + locks then
  return redis.error_reply(
    "done_batch: " .. #KEYS .. " keys for " .. n .. " tasks and " .. locks .. " locks")
end
-- Each entry: a KEYS index and the type its key must have, if it exists.
for _, k in ipairs({{1, "list"}, {2, "zset"}}) do
  local t = redis.call("TYPE", KEYS[k[1]])["ok"]
  if t ~= k[2] and t ~= "none" then
    return redis.error_reply("WRONGTYPE " .. KEYS[k[1]] .. " holds a " .. t)
  end
end
local codes = {}
local finished = {} -- the ids done, for one ZREM
for t = 1, n do
  local id, lock = ARGV[2 * t], tonumber(ARGV[2 * t + 1])
  local code = 0
  -- In active is this server's, as in done.lua: a lease entry that alone vanished does not make
  -- the task anyone else's. A task whose hash alone is gone ran and succeeded all the same.
  if redis.call("LREM", KEYS[1], -1, id) ~= 0 then
    redis.call("DEL", KEYS[4 + t])
    code = 1
    finished[#finished + 1] = id
    if lock and lock > 0 and redis.pcall("GET", KEYS[4 + n + lock]) == id then
      redis.call("DEL", KEYS[4 + n + lock])
    end
  end
  codes[#codes + 1] = code
end
if #finished > 0 then
  redis.call("ZREM", KEYS[2], unpack(finished))
  -- The counters are best effort (pcall): a broken counter key must not undo finished tasks.
  if redis.pcall("INCRBY", KEYS[3], #finished) == #finished then
    redis.pcall("EXPIREAT", KEYS[3], ARGV[1])
  end
  -- At the int64 limit the total wraps, as done.lua's does (to this batch's count, not 1).
  local total = redis.pcall("INCRBY", KEYS[4], #finished)
  if type(total) == "table" and total.err then
    redis.call("SET", KEYS[4], #finished)
  end
end
return codes
