-- write_server_state: publish a server's ServerInfo and its in-flight WorkerInfos.
-- KEYS[1] server info  <ns>:servers:{host:pid:id}
-- KEYS[2] workers      <ns>:workers:{host:pid:id}
-- ARGV[1] TTL, seconds
-- ARGV[2] encoded ServerInfo
-- ARGV[3..] task id, encoded WorkerInfo, task id, encoded WorkerInfo, ...
-- Returns OK.
redis.call("SETEX", KEYS[1], ARGV[1], ARGV[2])
redis.call("DEL", KEYS[2])
for i = 3, table.getn(ARGV) - 1, 2 do
  redis.call("HSET", KEYS[2], ARGV[i], ARGV[i + 1])
end
redis.call("EXPIRE", KEYS[2], ARGV[1])
return redis.status_reply("OK")
