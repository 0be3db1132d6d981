-- Removes the last question's reply and locks its conversation so the question is answered again.
-- A finished reply is kept as a version of its place: renamed `<reply id>~N` and set aside, so
-- the new reply takes the reply id and both stay listed.
-- KEYS: session, order, messages, lock, log, stop, queued, meta, versions, tails
-- ARGV: user message id, reply id, session ttl s, lock ttl s, most versions of one place
-- Answers 'ready' | 'expired' | 'unknown' | 'not_last' | 'busy' | 'too_many_versions'
if redis.call('EXISTS', KEYS[1]) == 0 then return 'expired' end
if redis.call('HEXISTS', KEYS[3], ARGV[1]) == 0 then return 'unknown' end
local tail = redis.call('LRANGE', KEYS[2], -2, -1)
local last = tail[#tail]
-- The last question, or its reply (any version of it) after it.
local a_reply = last == ARGV[2] or string.sub(last, 1, #ARGV[2] + 1) == ARGV[2] .. '~'
if last ~= ARGV[1] and not (a_reply and tail[1] == ARGV[1]) then return 'not_last' end
if not redis.call('SET', KEYS[4], ARGV[1], 'NX', 'EX', ARGV[4]) then return 'busy' end
local old = redis.call('HGET', KEYS[3], ARGV[2])
if old and not is_streaming(old) then
  local list = words(redis.call('HGET', KEYS[9], ARGV[1]))
  if #list == 0 then list = {ARGV[2]} end
  if #list >= tonumber(ARGV[5]) then
    redis.call('DEL', KEYS[4])
    return 'too_many_versions'
  end
  if #list == 1 then redis.call('HSET', KEYS[9], ARGV[1], ARGV[2]) end
  local n = 1
  while redis.call('HEXISTS', KEYS[3], ARGV[2] .. '~' .. n) == 1 do n = n + 1 end
  rename(KEYS[3], KEYS[8], KEYS[9], KEYS[10], KEYS[2], ARGV[1], ARGV[2], ARGV[2] .. '~' .. n)
  -- Whichever reply the path shows after the question is set aside; the new one is listed.
  set_aside(KEYS[2], KEYS[10], ARGV[1], redis.call('LPOS', KEYS[2], ARGV[1]) + 2)
  redis.call('HSET', KEYS[9], ARGV[1], redis.call('HGET', KEYS[9], ARGV[1]) .. ' ' .. ARGV[2])
  for i = 9, 10 do redis.call('EXPIRE', KEYS[i], ARGV[3]) end
else
  drop_message(KEYS[8], KEYS[3], ARGV[2])
  redis.call('LREM', KEYS[2], 0, ARGV[2])
end
redis.call('DEL', KEYS[5], KEYS[6])
-- Not queued again until the message function says so (a resend may queue it if that fails).
redis.call('DEL', KEYS[7])
for _, i in ipairs({1, 2, 3, 8}) do redis.call('EXPIRE', KEYS[i], ARGV[3]) end
return 'ready'
