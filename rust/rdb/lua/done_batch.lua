-- done_batch: many tasks of one queue succeeded without retention (or were revoked): done.lua for
-- each, with the processed counters incremented once for the batch.
-- KEYS[1] active              <ns>:{q}:active
-- KEYS[2] lease               <ns>:{q}:lease
-- KEYS[3] processed today     <ns>:{q}:processed:<YYYY-MM-DD>
-- KEYS[4] processed total     <ns>:{q}:processed
-- ARGV[1] task hash prefix    <ns>:{q}:t:
-- ARGV[2] daily counter expiry, Unix seconds (now + 90 days)
-- ARGV[3], ARGV[4], ...: pairs of task id and its unique lock key ("" when it has none); the
--         hashes and locks are in the queue's hash slot, like the keys above
-- Returns one code per task, in order: 1 done, 0 not found (another server already moved it;
-- as with done.lua, nothing of a task that is not leased and active here is left written).
-- LREM counts from the tail (-1) and stops at the first match: an id is in active once, and
-- dequeue pushes at the head, so the oldest tasks, the ones finishing first, are found first
-- instead of scanning the whole list as done.lua's LREM 0 does.
local codes = {}
local n = 0
for i = 3, #ARGV, 2 do
  local id, lock = ARGV[i], ARGV[i + 1]
  local key = ARGV[1] .. id
  local code = 0
  -- Checked by the removals themselves (a ZSCORE first would scan the lease set, a small
  -- listpack, once more per task): a task in active but no longer leased here is put back as it
  -- was, so nothing of the outcome is written. A task whose hash alone is gone (deleted by
  -- hand) ran and succeeded: it is counted, and nothing of it is left.
  if redis.call("LREM", KEYS[1], -1, id) ~= 0 then
    if redis.call("ZREM", KEYS[2], id) == 0 then
      redis.call("RPUSH", KEYS[1], id)
    else
      redis.call("DEL", key)
      code = 1
      n = n + 1
      if lock ~= "" and redis.call("GET", lock) == id then
        redis.call("DEL", lock)
      end
    end
  end
  codes[#codes + 1] = code
end
-- The counters are best effort (pcall): a broken counter key must not undo finished tasks.
if n > 0 then
  if redis.pcall("INCRBY", KEYS[3], n) == n then
    redis.pcall("EXPIREAT", KEYS[3], ARGV[2])
  end
  -- At the int64 limit the total wraps, as done.lua's does (to this batch's count, not 1).
  local total = redis.pcall("INCRBY", KEYS[4], n)
  if type(total) == "table" and total.err then
    redis.call("SET", KEYS[4], n)
  end
end
return codes
