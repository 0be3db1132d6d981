-- A worker that takes no more entries gives its lease up.
-- KEYS: leases, free
-- ARGV: worker id
-- Answers 1 if it held a lease.
redis.call('HDEL', KEYS[2], ARGV[1])
return redis.call('ZREM', KEYS[1], ARGV[1])
