-- Records a reply as `streaming`, or restarts one a dead worker had begun.
-- `redelivered` is '1' if the entry was delivered before (its worker may have died) else '0';
-- `max_bytes` 0 means no limit; `message_id` is the question the reply answers.
-- Answers {'new', 0, conns} | {'restart', next seq, conns} | {'exists', 0, {}}
--       | {'in_progress', 0, {}} | {'expired', 0, {}} | {'gone', 0, {}}
local session, order, messages, conns, log, meta = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local reply_id, placeholder, ttl, max_history = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local redelivered, max_bytes, message_id = ARGV[5], ARGV[6], ARGV[7]
if redis.call('EXISTS', session) == 0 then return {'expired', 0, {}} end
local existing = redis.call('HGET', messages, reply_id)
-- The question went with its conversation (deleted): nothing to answer.
if not existing and redis.call('HEXISTS', messages, message_id) == 0 then return {'gone', 0, {}} end
local outcome, next_seq = 'new', 0
if existing then
  if not is_streaming(existing) then return {'exists', 0, {}} end
  -- A first delivery finding the reply begun is a second request for it (a question queued
  -- again after a crash): the entry that began it is pending, and is reclaimed if its worker died.
  if redelivered ~= '1' then return {'in_progress', 0, {}} end
  -- Another worker began this reply: void whatever it sent (even nothing yet, so that it can
  -- write no delta 0 of its own if it is still alive).
  local logged = log_next_seq(log)
  redis.call('XADD', log, '0-' .. (logged + 1), 'k', 'restart')
  -- The log lives no longer than its session, even if no delta follows.
  redis.call('EXPIRE', log, ttl)
  outcome, next_seq = 'restart', logged + 1
else
  put_message(session, meta, order, messages, reply_id, placeholder, max_history, max_bytes)
end
for _, key in ipairs({session, order, messages, conns, meta}) do redis.call('EXPIRE', key, ttl) end
return {outcome, next_seq, redis.call('SMEMBERS', conns)}
