-- Adds a conversation to a live session, unless it holds `max` already.
-- `now_ms` scores its activity, `now` (RFC 3339) dates it.
-- Answers 'created' | 'expired' | 'full' | 'exists'
local session, convs, meta = KEYS[1], KEYS[2], KEYS[3]
local conversation, now_ms, now, ttl, max = ARGV[1], ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
if redis.call('EXISTS', session) == 0 then return 'expired' end
if redis.call('ZSCORE', convs, conversation) then return 'exists' end
-- A session from before conversations has no list yet: its `main` stays listed, just older.
if redis.call('EXISTS', convs) == 0 then redis.call('ZADD', convs, tonumber(now_ms) - 1, 'main') end
if redis.call('ZCARD', convs) >= max then return 'full' end
redis.call('ZADD', convs, now_ms, conversation)
redis.call('DEL', meta)
redis.call('HSET', meta, 'created', now, 'titled_by', 'none', 'title', '')
for _, key in ipairs({session, convs, meta}) do redis.call('EXPIRE', key, ttl) end
return 'created'
