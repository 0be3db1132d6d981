-- Records that a WebSocket connection belongs to a live session, for the session's lifetime.
-- KEYS: session, conns, connection
-- ARGV: connection id, token
-- Answers 1 if bound, 0 if the session expired.
local ttl = redis.call('TTL', KEYS[1])
if ttl <= 0 then return 0 end
redis.call('SADD', KEYS[2], ARGV[1])
redis.call('EXPIRE', KEYS[2], ttl)
redis.call('SET', KEYS[3], ARGV[2], 'EX', ttl)
return 1
