-- A running worker's lease on its free slots: it renews this while it takes new entries.
-- Live leases are ordered by holder id, and a holder yields to one before it that has a free
-- slot: it advertises none and takes no new entry, so steady traffic gathers in one invocation
-- while the others finish what they hold and end.
-- Answers 1 when this holder should yield, else 0.
local leases, free = KEYS[1], KEYS[2]
local id, lease_ms, free_slots = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
redis.call('ZADD', leases, now_ms + lease_ms, id)
local yield = 0
for _, other in ipairs(redis.call('ZRANGEBYSCORE', leases, '(' .. now_ms, '+inf')) do
  if other < id and tonumber(redis.call('HGET', free, other) or '0') > 0 then
    yield = 1
    break
  end
end
redis.call('HSET', free, id, yield == 1 and '0' or free_slots)
return yield
