-- Adds a conversation to a live session, unless it holds `max` already.
-- KEYS: session, convs, meta
-- ARGV: conversation id, now ms, now (RFC 3339), session ttl s, max conversations
-- Answers 'created' | 'expired' | 'full' | 'exists'
if redis.call('EXISTS', KEYS[1]) == 0 then return 'expired' end
if redis.call('ZSCORE', KEYS[2], ARGV[1]) then return 'exists' end
-- A session from before conversations has no list yet: its `main` stays listed, just older.
if redis.call('EXISTS', KEYS[2]) == 0 then redis.call('ZADD', KEYS[2], tonumber(ARGV[2]) - 1, 'main') end
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[5]) then return 'full' end
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
redis.call('DEL', KEYS[3])
redis.call('HSET', KEYS[3], 'created', ARGV[3], 'titled_by', 'none', 'title', '')
for i = 1, 3 do redis.call('EXPIRE', KEYS[i], ARGV[4]) end
return 'created'
