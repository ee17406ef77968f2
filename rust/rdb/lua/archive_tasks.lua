-- archive_tasks: an Inspector archives tasks (ArchiveTask, ArchiveAll*); the archive is then
-- trimmed by age and size, and the trimmed tasks' hashes deleted (asynq's Inspector leaves them).
-- KEYS[1] source       <ns>:{q}:pending (LIST), <ns>:{q}:scheduled|retry|completed (ZSET) or a
--                      group <ns>:{q}:g:<group> (ZSET)
-- KEYS[2] archived     <ns>:{q}:archived
-- KEYS[3] groups       <ns>:{q}:groups
-- KEYS[4..] task hash  <ns>:{q}:t:<id>, one per id in ARGV[7..]
-- ARGV[1] group name when the source is a group, else ""
-- ARGV[2] now, Unix seconds (the archive score)
-- ARGV[3] cutoff, Unix seconds: archived tasks scored at or before it are deleted ("-inf": none)
-- ARGV[4] the most archived tasks kept (0: no limit)
-- ARGV[5] task hash prefix <ns>:{q}:t:
-- ARGV[6] "list" when the source is the pending list, else "zset"
-- ARGV[7..] task ids
-- Returns the number of tasks archived. A task no longer in the source is left alone; an id
-- without a hash is dropped from the source. Key types are checked before anything is written.
-- Needs Redis >= 6.2 (ZRANGE BYSCORE).
for _, k in ipairs({{KEYS[1], ARGV[6]}, {KEYS[2], "zset"}, {KEYS[3], "set"}}) do
  local t = redis.call("TYPE", k[1])["ok"]
  if t ~= k[2] and t ~= "none" then
    return redis.error_reply("WRONGTYPE " .. k[1] .. " holds a " .. t)
  end
end
local moved = 0
for i = 7, #ARGV do
  local key = KEYS[i - 3]
  local taken
  if ARGV[6] == "list" then
    -- Searched from the tail, where the oldest (the ones a bulk call reads) are.
    taken = redis.call("LREM", KEYS[1], -1, ARGV[i]) > 0
  else
    taken = redis.call("ZREM", KEYS[1], ARGV[i]) == 1
  end
  if taken and redis.call("EXISTS", key) == 1 then
    redis.call("ZADD", KEYS[2], ARGV[2], ARGV[i])
    redis.call("HSET", key, "state", "archived")
    moved = moved + 1
  end
end
if ARGV[1] ~= "" and redis.call("ZCARD", KEYS[1]) == 0 then
  redis.call("SREM", KEYS[3], ARGV[1])
end
local old = redis.call("ZRANGE", KEYS[2], "-inf", ARGV[3], "BYSCORE")
for _, id in ipairs(old) do
  redis.call("DEL", ARGV[5] .. id)
  redis.call("ZREM", KEYS[2], id)
end
-- The oldest go first; the tasks archived by this call are the newest even when older entries
-- share their second (rank ties are broken by ID), so they go only when nothing older is left.
local over = redis.call("ZCARD", KEYS[2]) - tonumber(ARGV[4])
if tonumber(ARGV[4]) > 0 and over > 0 then
  local now_archived = {}
  for i = 7, #ARGV do
    now_archived[ARGV[i]] = true
  end
  local oldest = redis.call("ZRANGE", KEYS[2], 0, over + #ARGV - 7)
  for pass = 1, 2 do
    for _, id in ipairs(oldest) do
      if over > 0 and (pass == 2 or not now_archived[id]) and redis.call("ZREM", KEYS[2], id) == 1 then
        redis.call("DEL", ARGV[5] .. id)
        over = over - 1
      end
    end
  end
end
return moved
