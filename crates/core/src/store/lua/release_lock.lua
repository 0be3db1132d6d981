-- Unlocks the session, only if the lock is held for this reply (compare and delete in one step).
-- Answers 1 if released, 0 if the lock was not this reply's.
local lock = KEYS[1]
local message_id = ARGV[1]
if redis.call('GET', lock) == message_id then return redis.call('DEL', lock) end
return 0
