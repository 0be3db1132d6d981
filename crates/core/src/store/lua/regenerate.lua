-- Removes the last question's reply and locks its conversation so the question is answered again.
-- A finished reply is kept as a version of its place: renamed `<reply id>~N` and set aside, so
-- the new reply takes the reply id and both stay listed.
-- Answers 'ready' | 'expired' | 'unknown' | 'not_last' | 'busy' | 'too_many_versions'
local session, order, messages, lock, log = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local stop, queued, meta, versions, tails = KEYS[6], KEYS[7], KEYS[8], KEYS[9], KEYS[10]
local message_id, reply_id, ttl, lock_ttl, max_versions = ARGV[1], ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
if redis.call('EXISTS', session) == 0 then return 'expired' end
if redis.call('HEXISTS', messages, message_id) == 0 then return 'unknown' end
local tail = redis.call('LRANGE', order, -2, -1)
local last = tail[#tail]
-- The last question, or its reply (any version of it) after it.
local a_reply = last == reply_id or string.sub(last, 1, #reply_id + 1) == reply_id .. '~'
if last ~= message_id and not (a_reply and tail[1] == message_id) then return 'not_last' end
if not redis.call('SET', lock, message_id, 'NX', 'EX', lock_ttl) then return 'busy' end
local old = redis.call('HGET', messages, reply_id)
if old and not is_streaming(old) then
  local list = words(redis.call('HGET', versions, message_id))
  if #list == 0 then list = {reply_id} end
  if #list >= max_versions then
    redis.call('DEL', lock)
    return 'too_many_versions'
  end
  if #list == 1 then redis.call('HSET', versions, message_id, reply_id) end
  local n = 1
  while redis.call('HEXISTS', messages, reply_id .. '~' .. n) == 1 do n = n + 1 end
  rename(session, messages, meta, versions, tails, order, message_id, reply_id, reply_id .. '~' .. n)
  -- Whichever reply the path shows after the question is set aside; the new one is listed.
  set_aside(order, tails, message_id, redis.call('LPOS', order, message_id) + 2)
  redis.call('HSET', versions, message_id, redis.call('HGET', versions, message_id) .. ' ' .. reply_id)
  for _, key in ipairs({versions, tails}) do redis.call('EXPIRE', key, ttl) end
else
  drop_message(session, meta, messages, reply_id)
  redis.call('LREM', order, 0, reply_id)
end
redis.call('DEL', log, stop)
-- Not queued again until the message function says so (a resend may queue it if that fails).
redis.call('DEL', queued)
for _, key in ipairs({session, order, messages, meta}) do redis.call('EXPIRE', key, ttl) end
return 'ready'
