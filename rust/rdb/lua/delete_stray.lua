-- delete_stray: deletes task hashes that no container of their queue holds, and unique locks
-- whose owner is gone (what a queue deletion, or an archive trimmed by asynq's Inspector,
-- leaves behind). A hash that a container holds (a task enqueued meanwhile) is kept.
-- KEYS[1] pending    <ns>:{q}:pending
-- KEYS[2] active     <ns>:{q}:active
-- KEYS[3] scheduled  <ns>:{q}:scheduled
-- KEYS[4] retry      <ns>:{q}:retry
-- KEYS[5] archived   <ns>:{q}:archived
-- KEYS[6] completed  <ns>:{q}:completed
-- KEYS[7..6+n] task hashes <ns>:{q}:t:<id>, for the ids in ARGV[2..1+n]
-- KEYS[7+n..] pairs: a unique lock, then the hash of the task its value names
-- ARGV[1] n
-- ARGV[2..1+n] task ids
-- Returns the number of keys deleted. An aggregating task's hash is kept (its group is not
-- among the KEYS); a container of the wrong type counts as holding the task.
-- Needs Redis >= 6.0.6 (LPOS).
local function held(id)
  for k = 1, 2 do
    local at = redis.pcall("LPOS", KEYS[k], id)
    if type(at) ~= "boolean" then
      return true
    end
  end
  for k = 3, 6 do
    local score = redis.pcall("ZSCORE", KEYS[k], id)
    if type(score) ~= "boolean" then
      return true
    end
  end
  return false
end
local n = tonumber(ARGV[1])
local deleted = 0
for j = 1, n do
  local t = redis.call("TYPE", KEYS[6 + j])["ok"]
  if t ~= "hash" or redis.call("HGET", KEYS[6 + j], "state") ~= "aggregating" then
    if not held(ARGV[1 + j]) then
      deleted = deleted + redis.call("DEL", KEYS[6 + j])
    end
  end
end
for i = 7 + n, #KEYS - 1, 2 do
  if redis.call("EXISTS", KEYS[i + 1]) == 0 then
    deleted = deleted + redis.call("DEL", KEYS[i])
  end
end
return deleted
