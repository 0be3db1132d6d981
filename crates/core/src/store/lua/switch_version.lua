-- Shows another version of a place in a conversation: the path from that place on is set aside
-- and the chosen version's path (kept in `tails`) takes its place. Refused while a reply is
-- written in the conversation.
-- KEYS: order, versions, tails, lock, meta
-- ARGV: the version's first message id, session ttl s
-- Answers 'switched' | 'unknown' | 'busy'
if redis.call('EXISTS', KEYS[4]) == 1 then return 'busy' end
local saved = redis.call('HGET', KEYS[3], ARGV[1])
if not saved then
  if redis.call('LPOS', KEYS[1], ARGV[1]) then return 'switched' end
  return 'unknown'
end
local bar = string.find(saved, '|', 1, true)
local parent = string.sub(saved, 1, bar - 1)
local at = 1
if parent ~= '^' then
  local before = redis.call('LPOS', KEYS[1], parent)
  -- Its place is not on the path shown (a version inside another one set aside).
  if not before then return 'unknown' end
  at = before + 2
end
set_aside(KEYS[1], KEYS[3], parent, at)
redis.call('RPUSH', KEYS[1], unpack(words(string.sub(saved, bar + 1))))
redis.call('HDEL', KEYS[3], ARGV[1])
for _, i in ipairs({1, 2, 3, 5}) do redis.call('EXPIRE', KEYS[i], ARGV[2]) end
return 'switched'
