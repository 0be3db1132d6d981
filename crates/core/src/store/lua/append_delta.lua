-- Logs delta `seq` of a reply; reads, in the same step, whether to stop and where to send it.
-- KEYS: log, conns, stop, messages
-- ARGV: seq, text, session ttl s, user message id, reply id
-- Answers {'logged', 1 if a stop was asked else 0, conns} | {'taken_over', 0, {}} | {'gone', 0, {}}
-- A log already past `seq` belongs to a worker that took the reply over.
if log_next_seq(KEYS[1]) > tonumber(ARGV[1]) then return {'taken_over', 0, {}} end
-- The placeholder went with its conversation (deleted): stop writing.
if redis.call('HEXISTS', KEYS[4], ARGV[5]) == 0 then return {'gone', 0, {}} end
redis.call('XADD', KEYS[1], '0-' .. (tonumber(ARGV[1]) + 1), 't', ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
local stop = redis.call('GET', KEYS[3]) == ARGV[4]
return {'logged', stop and 1 or 0, redis.call('SMEMBERS', KEYS[2])}
