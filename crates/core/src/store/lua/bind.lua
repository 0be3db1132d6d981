-- Adds a WebSocket connection to a live session's set, for the session's lifetime, unless the
-- session already has `max` connections (0: no limit). The connection's own mapping
-- (chat:conn:{C}) lives in another hash slot, so the caller writes it in a second command, after
-- this one (connections.rs says why in that order).
-- Answers the session's remaining seconds, 0 if it expired, -1 if it has `max` connections.
local session, conns = KEYS[1], KEYS[2]
local connection, max = ARGV[1], tonumber(ARGV[2])
local ttl = redis.call('TTL', session)
if ttl <= 0 then return 0 end
if max > 0 and redis.call('SCARD', conns) >= max and redis.call('SISMEMBER', conns, connection) == 0 then
  return -1
end
redis.call('SADD', conns, connection)
redis.call('EXPIRE', conns, ttl)
return ttl
