-- update_payload: an Inspector replaces a scheduled task's message (UpdateTaskPayload), if
-- nothing changed it since the caller read it.
-- KEYS[1] task hash  <ns>:{q}:t:<id>
-- ARGV[1] the message as the caller read it
-- ARGV[2] the new message
-- Returns 1 when written; 0 when the task is gone, no longer scheduled, or its message changed.
if redis.call("TYPE", KEYS[1])["ok"] ~= "hash" then
  return 0
end
local cur = redis.call("HMGET", KEYS[1], "msg", "state")
if cur[1] ~= ARGV[1] or cur[2] ~= "scheduled" then
  return 0
end
redis.call("HSET", KEYS[1], "msg", ARGV[2])
return 1
