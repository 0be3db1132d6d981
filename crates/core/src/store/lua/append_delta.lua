-- Logs delta `seq` of a reply; reads, in the same step, whether to stop and where to send it.
-- `message_id` is the question the reply answers (what `stop` holds when it was stopped).
-- Answers {'logged', 1 if a stop was asked else 0, conns} | {'taken_over', 0, {}} | {'gone', 0, {}}
local log, conns, stop, messages = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local seq, text, ttl, message_id, reply_id = tonumber(ARGV[1]), ARGV[2], ARGV[3], ARGV[4], ARGV[5]
-- A log already past `seq` belongs to a worker that took the reply over.
if log_next_seq(log) > seq then return {'taken_over', 0, {}} end
-- The placeholder went with its conversation (deleted): stop writing.
if redis.call('HEXISTS', messages, reply_id) == 0 then return {'gone', 0, {}} end
redis.call('XADD', log, '0-' .. (seq + 1), 't', text)
redis.call('EXPIRE', log, ttl)
local stopped = redis.call('GET', stop) == message_id
return {'logged', stopped and 1 or 0, redis.call('SMEMBERS', conns)}
