-- list_lease_expired: active tasks whose lease ran out at or before the cutoff.
-- KEYS[1] lease        <ns>:{q}:lease
-- ARGV[1] cutoff, Unix seconds
-- ARGV[2] task hash prefix <ns>:{q}:t:
-- Returns a flat array id1, msg1, ...; ids whose hash is gone are skipped.
local out = {}
local ids = redis.call("ZRANGEBYSCORE", KEYS[1], "-inf", ARGV[1])
for _, id in ipairs(ids) do
  local msg = redis.call("HGET", ARGV[2] .. id, "msg")
  if msg then
    out[#out + 1] = id
    out[#out + 1] = msg
  end
end
return out
