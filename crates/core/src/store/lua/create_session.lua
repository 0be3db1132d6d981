-- Creates a session: its name and start, for the session's lifetime.
-- KEYS: session
-- ARGV: name, session start, session ttl s
-- Answers 1.
redis.call('HSET', KEYS[1], 'name', ARGV[1], 'session_start', ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
