-- A running worker's lease on its free slots: it renews this while it takes new entries.
-- KEYS: leases (zset: worker id -> expiry ms), free (hash: worker id -> free slots)
-- ARGV: worker id, lease ms, free slots
-- Answers 1.
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
redis.call('ZADD', KEYS[1], now_ms + tonumber(ARGV[2]), ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
return 1
