-- Whether a new entry needs a worker woken: no live lease offers a free slot. A slot found is
-- taken (its count lowered), so a burst of questions uses each advertised slot once; the
-- worker's next renewal writes its real count again.
-- `leases` holds worker id -> expiry ms, `free` worker id -> free slots. No ARGV.
-- Answers 1 to wake a worker, 0 when a running one has room. Expired leases are dropped.
local leases, free = KEYS[1], KEYS[2]
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local expired = redis.call('ZRANGEBYSCORE', leases, '-inf', now_ms)
if #expired > 0 then
  redis.call('ZREM', leases, unpack(expired))
  redis.call('HDEL', free, unpack(expired))
end
for _, id in ipairs(redis.call('ZRANGE', leases, 0, -1)) do
  if tonumber(redis.call('HGET', free, id) or '0') > 0 then
    redis.call('HINCRBY', free, id, -1)
    return 0
  end
end
return 1
