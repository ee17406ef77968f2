-- write_result: store a handler's result bytes in the task hash, as asynq's ResultWriter does.
-- KEYS[1] task hash    <ns>:{q}:t:<id>
-- ARGV[1] result bytes
-- Returns the number of bytes written.
redis.call("HSET", KEYS[1], "result", ARGV[1])
return string.len(ARGV[1])
