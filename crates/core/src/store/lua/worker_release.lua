-- A worker that takes no more entries gives its lease up.
-- Answers 1 if it held a lease.
local leases, free = KEYS[1], KEYS[2]
local id = ARGV[1]
redis.call('HDEL', free, id)
return redis.call('ZREM', leases, id)
