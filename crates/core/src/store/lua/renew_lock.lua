-- Extends the session's reply lock, only while it is held for this reply.
-- Answers 1 if renewed, 0 if the lock is not (or no longer) this reply's.
local lock = KEYS[1]
local message_id, lock_ttl = ARGV[1], ARGV[2]
if redis.call('GET', lock) == message_id then return redis.call('EXPIRE', lock, lock_ttl) end
return 0
