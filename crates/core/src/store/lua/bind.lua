-- Adds a WebSocket connection to a live session's set, for the session's lifetime. The
-- connection's own mapping (chat:conn:C) lives in another hash slot, so the caller writes it
-- in a second command, after this one (connections.rs says why in that order).
-- KEYS: session, conns
-- ARGV: connection id
-- Answers the session's remaining seconds, or 0 if it expired.
local ttl = redis.call('TTL', KEYS[1])
if ttl <= 0 then return 0 end
redis.call('SADD', KEYS[2], ARGV[1])
redis.call('EXPIRE', KEYS[2], ttl)
return ttl
