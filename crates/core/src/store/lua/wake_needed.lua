-- Whether a new entry needs a worker woken: no live lease offers a free slot. A slot found is
-- taken (its count lowered), so a burst of questions uses each advertised slot once; the
-- worker's next renewal writes its real count again.
-- KEYS: leases (zset: worker id -> expiry ms), free (hash: worker id -> free slots)
-- ARGV: (none)
-- Answers 1 to wake a worker, 0 when a running one has room. Expired leases are dropped.
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now_ms)
if #expired > 0 then
  redis.call('ZREM', KEYS[1], unpack(expired))
  redis.call('HDEL', KEYS[2], unpack(expired))
end
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  if tonumber(redis.call('HGET', KEYS[2], id) or '0') > 0 then
    redis.call('HINCRBY', KEYS[2], id, -1)
    return 0
  end
end
return 1
