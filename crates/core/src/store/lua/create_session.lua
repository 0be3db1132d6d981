-- Creates a session: its name and start, and its first conversation (`main`), for the
-- session's lifetime.
-- KEYS: session, convs, main's meta
-- ARGV: name, session start, session ttl s, now ms
-- Answers 1.
redis.call('HSET', KEYS[1], 'name', ARGV[1], 'session_start', ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[4], 'main')
redis.call('HSET', KEYS[3], 'created', ARGV[2], 'titled_by', 'none', 'title', '')
for i = 1, 3 do redis.call('EXPIRE', KEYS[i], ARGV[3]) end
return 1
