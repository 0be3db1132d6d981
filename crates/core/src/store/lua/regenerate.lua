-- Removes the last question's reply and locks its conversation so the question is answered again.
-- KEYS: session, order, messages, lock, log, stop, queued, meta
-- ARGV: user message id, reply id, session ttl s, lock ttl s
-- Answers 'ready' | 'expired' | 'unknown' | 'not_last' | 'busy'
if redis.call('EXISTS', KEYS[1]) == 0 then return 'expired' end
if redis.call('HEXISTS', KEYS[3], ARGV[1]) == 0 then return 'unknown' end
local tail = redis.call('LRANGE', KEYS[2], -2, -1)
local last = tail[#tail]
if last ~= ARGV[1] and not (last == ARGV[2] and tail[1] == ARGV[1]) then return 'not_last' end
if not redis.call('SET', KEYS[4], ARGV[1], 'NX', 'EX', ARGV[4]) then return 'busy' end
drop_message(KEYS[8], KEYS[3], ARGV[2])
redis.call('LREM', KEYS[2], 0, ARGV[2])
redis.call('DEL', KEYS[5], KEYS[6])
-- Not queued again until the message function says so (a resend may queue it if that fails).
redis.call('DEL', KEYS[7])
for _, i in ipairs({1, 2, 3, 8}) do redis.call('EXPIRE', KEYS[i], ARGV[3]) end
return 'ready'
