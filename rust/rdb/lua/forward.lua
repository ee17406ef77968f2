-- forward: move due tasks, of those the caller read (`ZRANGEBYSCORE src -inf now LIMIT 0 100`),
-- from scheduled or retry to pending, or back into their group. Every key it touches is named in
-- KEYS: a task whose group zset the call does not name is left where it is, and its group is
-- returned, so that the caller calls again naming it (asynq's script builds these names).
-- KEYS[1] source zset     <ns>:{q}:scheduled or <ns>:{q}:retry
-- KEYS[2] pending         <ns>:{q}:pending
-- KEYS[3] groups          <ns>:{q}:groups
-- KEYS[4..3+n] task hash  <ns>:{q}:t:<id>, one per id in ARGV[4..], in the same order
-- KEYS[4+n..] group zsets <ns>:{q}:g:<group>, any number
-- ARGV[1] now, Unix seconds
-- ARGV[2] now, Unix nanoseconds (pending_since)
-- ARGV[3] group zset prefix <ns>:{q}:g:
-- ARGV[4..] task ids
-- Returns {handled, next, unlisted, group...}: how many of the ids were moved or dropped; the
-- score of the earliest task left in the source (its process-at), or false when it is empty; how
-- many tasks went back into their group while adding the group to groups failed (a groups key
-- of another type, say: the caller logs it); then the groups (each once) of the due tasks left
-- for want of their group zset's key. An id no longer in the source, or not yet due
-- (rescheduled since it was read), is left alone. A ghost id (no task hash, or one without msg)
-- is removed, with any msg-less hash, rather than pushed to pending: it could never run, and a
-- write would create a stray hash. A grouped task's group is added to groups, where asynq's
-- aggregator looks for it (asynq leaves it out).
local n = #ARGV - 3
if n < 0 or #KEYS < 3 + n then
  return redis.error_reply("forward: " .. (#KEYS - 3) .. " keys for " .. n .. " ids")
end
-- The KEYS index of each named group zset.
local named = {}
for i = 4 + n, #KEYS do
  named[KEYS[i]] = i
end
local now = tonumber(ARGV[1])
local handled, unlisted = 0, 0
local missing, listed = {}, {}
for i = 1, n do
  local id = ARGV[3 + i]
  local score = tonumber(redis.call("ZSCORE", KEYS[1], id))
  if score and score <= now then
    local has_msg = redis.pcall("HEXISTS", KEYS[3 + i], "msg")
    local group = has_msg == 1 and redis.call("HGET", KEYS[3 + i], "group")
    if has_msg ~= 1 then
      redis.call("ZREM", KEYS[1], id)
      if has_msg == 0 then
        redis.call("DEL", KEYS[3 + i])
      end
      handled = handled + 1
    elseif group and group ~= "" then
      local g = named[ARGV[3] .. group]
      if g then
        redis.call("ZADD", KEYS[g], ARGV[1], id)
        redis.call("ZREM", KEYS[1], id)
        redis.call("HSET", KEYS[3 + i], "state", "aggregating")
        -- Best effort, last: a groups key of the wrong type must not stop the forwarding
        -- (asynq's forward never writes it).
        if type(redis.pcall("SADD", KEYS[3], group)) == "table" then
          unlisted = unlisted + 1
        end
        handled = handled + 1
      elseif not listed[group] then
        listed[group] = true
        missing[#missing + 1] = group
      end
    else
      redis.call("LPUSH", KEYS[2], id)
      redis.call("ZREM", KEYS[1], id)
      redis.call("HSET", KEYS[3 + i], "state", "pending", "pending_since", ARGV[2])
      handled = handled + 1
    end
  end
end
local next_task = redis.call("ZRANGE", KEYS[1], 0, 0, "WITHSCORES")
local out = {handled, next_task[2] or false, unlisted}
for _, g in ipairs(missing) do
  out[#out + 1] = g
end
return out
