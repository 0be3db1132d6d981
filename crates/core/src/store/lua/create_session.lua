-- Creates a session: its name and start, and its first conversation (`main`, whose meta is
-- `meta`), for the session's lifetime.
-- Answers 1.
local session, convs, meta = KEYS[1], KEYS[2], KEYS[3]
local name, session_start, ttl, now_ms = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
redis.call('HSET', session, 'name', name, 'session_start', session_start)
redis.call('ZADD', convs, now_ms, 'main')
redis.call('HSET', meta, 'created', session_start, 'titled_by', 'none', 'title', '')
for _, key in ipairs({session, convs, meta}) do redis.call('EXPIRE', key, ttl) end
return 1
