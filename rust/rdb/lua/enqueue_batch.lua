-- enqueue_batch: enqueue.lua for many tasks of one queue in one call (what `enqueue_many` sends
-- for plain tasks: one script call instead of one per task). Each task is written exactly as
-- enqueue.lua writes it; the wake channel is published once.
-- KEYS[1] pending      <ns>:{q}:pending
-- ARGV[1] task hash prefix <ns>:{q}:t:
-- ARGV[2] now, Unix nanoseconds (pending_since)
-- ARGV[3] Pub/Sub channel waking idle ferroq servers of the queue
-- ARGV[4..] task id, encoded TaskMessage, task id, encoded TaskMessage, ...
-- Returns one code per task, in order: 1 enqueued, 0 a task with this id exists.
local out = {}
local pushed = 0
for i = 4, table.getn(ARGV) - 1, 2 do
  local key = ARGV[1] .. ARGV[i]
  if redis.call("EXISTS", key) == 1 then
    out[#out + 1] = 0
  else
    redis.call("HSET", key, "msg", ARGV[i + 1], "state", "pending", "pending_since", ARGV[2])
    redis.call("LPUSH", KEYS[1], ARGV[i])
    out[#out + 1] = 1
    pushed = pushed + 1
  end
end
if pushed > 0 then
  redis.call("PUBLISH", ARGV[3], "")
end
return out
