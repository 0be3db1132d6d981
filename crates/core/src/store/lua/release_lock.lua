-- Unlocks the session, only if the lock is held for this reply (compare and delete in one step).
-- KEYS: lock
-- ARGV: user message id
-- Answers 1 if released, 0 if the lock was not this reply's.
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
