-- Adds a WebSocket connection to a live session's set, for the session's lifetime, unless the
-- session already has `max` connections. The connection's own mapping (chat:conn:{C}) lives in
-- another hash slot, so the caller writes it in a second command, after this one
-- (connections.rs says why in that order).
-- KEYS: session, conns
-- ARGV: connection id, most connections per session (0: no limit)
-- Answers the session's remaining seconds, 0 if it expired, -1 if it has `max` connections.
local ttl = redis.call('TTL', KEYS[1])
if ttl <= 0 then return 0 end
local max = tonumber(ARGV[2])
if max > 0 and redis.call('SCARD', KEYS[2]) >= max and redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 0 then
  return -1
end
redis.call('SADD', KEYS[2], ARGV[1])
redis.call('EXPIRE', KEYS[2], ttl)
return ttl
