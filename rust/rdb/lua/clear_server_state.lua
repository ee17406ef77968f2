-- clear_server_state: remove a stopped server's published state.
-- KEYS[1] server info  <ns>:servers:{host:pid:id}
-- KEYS[2] workers      <ns>:workers:{host:pid:id}
-- Returns OK.
redis.call("DEL", KEYS[1])
redis.call("DEL", KEYS[2])
return redis.status_reply("OK")
