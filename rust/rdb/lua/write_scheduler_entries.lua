-- write_scheduler_entries: publish one scheduler's entries for inspectors.
-- KEYS[1] entries list <ns>:schedulers:{<scheduler id>}
-- ARGV[1] TTL, seconds
-- ARGV[2..] encoded SchedulerEntry messages
-- Returns OK.
redis.call("DEL", KEYS[1])
for i = 2, table.getn(ARGV) do
  redis.call("LPUSH", KEYS[1], ARGV[i])
end
redis.call("EXPIRE", KEYS[1], ARGV[1])
return redis.status_reply("OK")
