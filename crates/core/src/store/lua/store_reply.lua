-- Stores a finished reply once, in place of its placeholder; drops its log, unlocks the session.
-- KEYS: session, order, messages, lock, conns, log
-- ARGV: reply id, reply json, session ttl s, user message id, max history,
--       next seq of the writer's log, max stored bytes
-- Answers {'stored', conns} | {'exists', {}} | {'taken_over', {}} | {'expired', {}}
local existing = redis.call('HGET', KEYS[3], ARGV[1])
if existing and not is_streaming(existing) then return {'exists', {}} end
if log_next_seq(KEYS[6]) ~= tonumber(ARGV[6]) then return {'taken_over', {}} end
if redis.call('GET', KEYS[4]) == ARGV[4] then redis.call('DEL', KEYS[4]) end
if redis.call('EXISTS', KEYS[1]) == 0 then return {'expired', {}} end
put_message(KEYS[1], KEYS[2], KEYS[3], ARGV[1], ARGV[2], ARGV[5], ARGV[7])
redis.call('DEL', KEYS[6])
for i = 1, 3 do redis.call('EXPIRE', KEYS[i], ARGV[3]) end
redis.call('EXPIRE', KEYS[5], ARGV[3])
return {'stored', redis.call('SMEMBERS', KEYS[5])}
