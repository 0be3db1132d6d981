-- Stores a finished reply once, in place of its placeholder; drops its log, unlocks the
-- conversation.
-- KEYS: session, order, messages, lock, conns, log, meta
-- ARGV: reply id, reply json, session ttl s, user message id, max history,
--       next seq of the writer's log, max stored bytes
-- Answers {'stored', conns} | {'exists', {}} | {'taken_over', {}} | {'expired', {}} | {'gone', {}}
local existing = redis.call('HGET', KEYS[3], ARGV[1])
if existing and not is_streaming(existing) then return {'exists', {}} end
-- The placeholder and its question went with their conversation (deleted): store nothing, drop
-- the log. (The question alone may have been trimmed by MAX_HISTORY_MESSAGES: the placeholder
-- says the reply is still wanted.)
if not existing and redis.call('HEXISTS', KEYS[3], ARGV[4]) == 0 then
  if redis.call('GET', KEYS[4]) == ARGV[4] then redis.call('DEL', KEYS[4]) end
  redis.call('DEL', KEYS[6])
  return {'gone', {}}
end
if log_next_seq(KEYS[6]) ~= tonumber(ARGV[6]) then return {'taken_over', {}} end
if redis.call('GET', KEYS[4]) == ARGV[4] then redis.call('DEL', KEYS[4]) end
if redis.call('EXISTS', KEYS[1]) == 0 then return {'expired', {}} end
put_message(KEYS[7], KEYS[2], KEYS[3], ARGV[1], ARGV[2], ARGV[5], ARGV[7])
redis.call('DEL', KEYS[6])
for _, i in ipairs({1, 2, 3, 5, 7}) do redis.call('EXPIRE', KEYS[i], ARGV[3]) end
return {'stored', redis.call('SMEMBERS', KEYS[5])}
