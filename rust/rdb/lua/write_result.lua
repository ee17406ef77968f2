-- write_result: store bytes in one field of a task's hash: its result (asynq's ResultWriter) or
-- its progress; never creates a hash for a task that is gone.
-- KEYS[1] task hash    <ns>:{q}:t:<id>
-- ARGV[1] the bytes
-- ARGV[2] the field: "result" or "progress"
-- Returns the number of bytes written, or -1 when the task's hash is gone.
if redis.call("EXISTS", KEYS[1]) == 0 then
  return -1
end
redis.call("HSET", KEYS[1], ARGV[2], ARGV[1])
return string.len(ARGV[1])
