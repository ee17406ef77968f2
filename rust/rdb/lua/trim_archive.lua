-- trim_archive: delete the archived tasks past the archive's limits, with their hashes, of the
-- oldest entries the caller read (`ZRANGE archived 0 n`), so that every hash it deletes is named
-- in KEYS. By age first: every entry scored at or before the cutoff; then by size: the oldest,
-- until at most the cap are left. The tasks just archived (ARGV[4..]) are the newest even when
-- older entries share their second (rank ties are broken by ID), so the size trim takes them
-- only when nothing older is left. The trim goes oldest first and stops at the first entry
-- whose hash the call does not name, so that it never deletes a newer task than one it leaves.
-- KEYS[1] archived     <ns>:{q}:archived
-- KEYS[2..] task hash  <ns>:{q}:t:<id> of each entry the caller read
-- ARGV[1] cutoff, Unix seconds: archived tasks scored at or before it are deleted
-- ARGV[2] the most archived tasks kept (0: no size limit)
-- ARGV[3] task hash prefix <ns>:{q}:t: (only compared with KEYS: no key is built from it)
-- ARGV[4..] the ids just archived
-- Returns {deleted, short}: how many tasks were deleted, and 1 when the trim stopped at an entry
-- the call does not name (the caller reads the oldest again and calls again), else 0.
-- Needs Redis >= 6.2 (ZRANGE BYSCORE).
local t = redis.call("TYPE", KEYS[1])["ok"]
if t ~= "zset" and t ~= "none" then
  return redis.error_reply("WRONGTYPE " .. KEYS[1] .. " holds a " .. t)
end
-- The KEYS index of each named task hash.
local named = {}
for i = 2, #KEYS do
  named[KEYS[i]] = i
end
local deleted = 0
local function drop(id)
  local h = named[ARGV[3] .. id]
  if not h then
    return false
  end
  redis.call("DEL", KEYS[h])
  redis.call("ZREM", KEYS[1], id)
  deleted = deleted + 1
  return true
end
-- One entry more than the call names is enough to know that it stops short.
local old = redis.call("ZRANGE", KEYS[1], "-inf", ARGV[1], "BYSCORE", "LIMIT", 0, #KEYS)
for _, id in ipairs(old) do
  if not drop(id) then
    return {deleted, 1}
  end
end
local cap = tonumber(ARGV[2])
local over = cap > 0 and redis.call("ZCARD", KEYS[1]) - cap or 0
if over > 0 then
  local new = {}
  for i = 4, #ARGV do
    new[ARGV[i]] = true
  end
  local oldest = redis.call("ZRANGE", KEYS[1], 0, over + #ARGV - 4)
  for pass = 1, 2 do
    for _, id in ipairs(oldest) do
      if over > 0 and (pass == 2 or not new[id]) and redis.call("ZSCORE", KEYS[1], id) then
        if not drop(id) then
          return {deleted, 1}
        end
        over = over - 1
      end
    end
  end
end
return {deleted, 0}
