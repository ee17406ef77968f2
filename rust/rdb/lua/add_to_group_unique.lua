-- add_to_group_unique: add_to_group under a unique lock. Like asynq, the lock name is not stored in
-- the hash.
-- KEYS[1] task hash    <ns>:{q}:t:<id>
-- KEYS[2] group zset   <ns>:{q}:g:<group>
-- KEYS[3] groups set   <ns>:{q}:groups
-- KEYS[4] unique lock  <ns>:{q}:unique:<type>:<md5(payload)>
-- ARGV[1] encoded TaskMessage
-- ARGV[2] task id
-- ARGV[3] now, Unix seconds
-- ARGV[4] group name
-- ARGV[5] lock TTL, whole seconds
-- Returns 1 when added, -1 when the lock is held, 0 when the id exists.
local ok = redis.call("SET", KEYS[4], ARGV[2], "NX", "EX", ARGV[5])
if not ok then
  return -1
end
if redis.call("EXISTS", KEYS[1]) == 1 then
  return 0
end
redis.call("HSET", KEYS[1], "msg", ARGV[1], "state", "aggregating", "group", ARGV[4])
redis.call("ZADD", KEYS[2], ARGV[3], ARGV[2])
redis.call("SADD", KEYS[3], ARGV[4])
return 1
