-- Extends the session's reply lock, only while it is held for this reply.
-- KEYS: lock
-- ARGV: user message id, lock ttl s
-- Answers 1 if renewed, 0 if the lock is not (or no longer) this reply's.
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('EXPIRE', KEYS[1], ARGV[2]) end
return 0
