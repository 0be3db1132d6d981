-- Stores a finished reply once, in place of its placeholder; drops its log, unlocks the
-- conversation. `next_seq` is the seq after the writer's last logged delta; `max_bytes` 0 means
-- no limit; `message_id` is the question the reply answers.
-- Answers {'stored', conns} | {'exists', {}} | {'taken_over', {}} | {'expired', {}} | {'gone', {}}
local session, order, messages, lock = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local conns, log, meta = KEYS[5], KEYS[6], KEYS[7]
local reply_id, json, ttl, message_id = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local max_history, next_seq, max_bytes = ARGV[5], tonumber(ARGV[6]), ARGV[7]
local existing = redis.call('HGET', messages, reply_id)
if existing and not is_streaming(existing) then return {'exists', {}} end
-- The placeholder and its question went with their conversation (deleted): store nothing, drop
-- the log. (The question alone may have been trimmed by MAX_HISTORY_MESSAGES: the placeholder
-- says the reply is still wanted.)
if not existing and redis.call('HEXISTS', messages, message_id) == 0 then
  if redis.call('GET', lock) == message_id then redis.call('DEL', lock) end
  redis.call('DEL', log)
  return {'gone', {}}
end
if log_next_seq(log) ~= next_seq then return {'taken_over', {}} end
if redis.call('GET', lock) == message_id then redis.call('DEL', lock) end
if redis.call('EXISTS', session) == 0 then return {'expired', {}} end
put_message(session, meta, order, messages, reply_id, json, max_history, max_bytes)
redis.call('DEL', log)
for _, key in ipairs({session, order, messages, conns, meta}) do redis.call('EXPIRE', key, ttl) end
return {'stored', redis.call('SMEMBERS', conns)}
