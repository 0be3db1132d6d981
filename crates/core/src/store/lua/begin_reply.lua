-- Records a reply as `streaming`, or restarts one a dead worker had begun.
-- KEYS: session, order, messages, conns, log, meta
-- ARGV: reply id, placeholder json, session ttl s, max history, '1' if the entry was delivered
--       before (its worker may have died) else '0', max stored bytes, user message id
-- Answers {'new', 0, conns} | {'restart', next seq, conns} | {'exists', 0, {}}
--       | {'in_progress', 0, {}} | {'expired', 0, {}} | {'gone', 0, {}}
if redis.call('EXISTS', KEYS[1]) == 0 then return {'expired', 0, {}} end
local existing = redis.call('HGET', KEYS[3], ARGV[1])
-- The question went with its conversation (deleted): nothing to answer.
if not existing and redis.call('HEXISTS', KEYS[3], ARGV[7]) == 0 then return {'gone', 0, {}} end
local outcome, next_seq = 'new', 0
if existing then
  if not is_streaming(existing) then return {'exists', 0, {}} end
  -- A first delivery finding the reply begun is a second request for it (a question queued
  -- again after a crash): the entry that began it is pending, and is reclaimed if its worker died.
  if ARGV[5] ~= '1' then return {'in_progress', 0, {}} end
  -- Another worker began this reply: void whatever it sent (even nothing yet, so that it can
  -- write no delta 0 of its own if it is still alive).
  local logged = log_next_seq(KEYS[5])
  redis.call('XADD', KEYS[5], '0-' .. (logged + 1), 'k', 'restart')
  -- The log lives no longer than its session, even if no delta follows.
  redis.call('EXPIRE', KEYS[5], ARGV[3])
  outcome, next_seq = 'restart', logged + 1
else
  put_message(KEYS[6], KEYS[2], KEYS[3], ARGV[1], ARGV[2], ARGV[4], ARGV[6])
end
for _, i in ipairs({1, 2, 3, 4, 6}) do redis.call('EXPIRE', KEYS[i], ARGV[3]) end
return {outcome, next_seq, redis.call('SMEMBERS', KEYS[4])}
