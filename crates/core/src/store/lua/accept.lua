-- Stores a user message and locks the session for its reply, counting it against the rate.
-- KEYS: session, order, messages, lock, conns, rate, queued
-- ARGV: message id, message json, session ttl s, lock ttl s, max history,
--       messages per window (0: no limit), window ms, reply id, max stored bytes (0: no limit)
-- Answers {'stored', 0} | {'unqueued', 0} | {'duplicate', 0} | {'expired', 0} | {'busy', 0}
--       | {'rate_limited', wait ms}
if redis.call('EXISTS', KEYS[1]) == 0 then return {'expired', 0} end
if redis.call('HEXISTS', KEYS[3], ARGV[1]) == 1 then
  -- A resend is activity, and this write lets the caller's WAIT cover the first one too: a
  -- primary replicates in order, so replicas that have this have the stored message.
  for i = 1, 3 do redis.call('EXPIRE', KEYS[i], ARGV[3]) end
  -- Answered, being answered, or queued (mark_queued records it): the ack is all it needs.
  if redis.call('HEXISTS', KEYS[3], ARGV[8]) == 1 then return {'duplicate', 0} end
  if redis.call('GET', KEYS[7]) == ARGV[1] then return {'duplicate', 0} end
  -- Stored but never queued (the message function died or lost Redis between the two steps).
  -- Only the last question is answered late: a reply goes at the end of the history.
  if redis.call('LINDEX', KEYS[2], -1) ~= ARGV[1] then return {'duplicate', 0} end
  local holder = redis.call('GET', KEYS[4])
  if holder and holder ~= ARGV[1] then return {'busy', 0} end
  redis.call('SET', KEYS[4], ARGV[1], 'EX', ARGV[4])
  return {'unqueued', 0}
end
if tonumber(ARGV[6]) > 0 then
  local wait = count_in_window(KEYS[6], ARGV[6], ARGV[7])
  if wait > 0 then return {'rate_limited', wait} end
end
if not redis.call('SET', KEYS[4], ARGV[1], 'NX', 'EX', ARGV[4]) then return {'busy', 0} end
put_message(KEYS[1], KEYS[2], KEYS[3], ARGV[1], ARGV[2], ARGV[5], ARGV[9])
for i = 1, 3 do redis.call('EXPIRE', KEYS[i], ARGV[3]) end
redis.call('EXPIRE', KEYS[5], ARGV[3])
return {'stored', 0}
