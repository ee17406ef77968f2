-- enqueue_batch: enqueue.lua for many tasks of one queue in one call (what `enqueue_many` sends
-- for plain tasks: one script call instead of one per task). Each task is written exactly as
-- enqueue.lua writes it; the wake channel is published once.
-- KEYS[1] pending      <ns>:{q}:pending
-- KEYS[2..] task hash  <ns>:{q}:t:<id>, one per task, in the order of the pairs below
-- ARGV[1] now, Unix nanoseconds (pending_since)
-- ARGV[2] Pub/Sub channel waking idle ferroq servers of the queue
-- ARGV[3..] task id, encoded TaskMessage, task id, encoded TaskMessage, ...
-- Returns one code per task, in order: 1 enqueued, 0 a task with this id exists.
if #KEYS - 1 ~= (#ARGV - 2) / 2 then
  return redis.error_reply("enqueue_batch: " .. (#KEYS - 1) .. " task keys for " .. ((#ARGV - 2) / 2) .. " tasks")
end
local out = {}
local pushed = 0
for t = 1, #KEYS - 1 do
  local id = ARGV[1 + 2 * t]
  if redis.call("EXISTS", KEYS[1 + t]) == 1 then
    out[#out + 1] = 0
  else
    redis.call("HSET", KEYS[1 + t], "msg", ARGV[2 + 2 * t], "state", "pending", "pending_since", ARGV[1])
    redis.call("LPUSH", KEYS[1], id)
    out[#out + 1] = 1
    pushed = pushed + 1
  end
end
if pushed > 0 then
  redis.call("PUBLISH", ARGV[2], "")
end
return out
