-- Shows another version of a place in a conversation: the path from that place on is set aside
-- and the chosen version's path (kept in `tails`) takes its place. Refused while a reply is
-- written in the conversation. `first` is the chosen version's first message id.
-- Answers 'switched' | 'unknown' | 'busy'
local order, versions, tails, lock, meta = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local first, ttl = ARGV[1], ARGV[2]
if redis.call('EXISTS', lock) == 1 then return 'busy' end
local saved = redis.call('HGET', tails, first)
if not saved then
  if redis.call('LPOS', order, first) then return 'switched' end
  return 'unknown'
end
local bar = string.find(saved, '|', 1, true)
local parent = string.sub(saved, 1, bar - 1)
local at = 1
if parent ~= '^' then
  local before = redis.call('LPOS', order, parent)
  -- Its place is not on the path shown (a version inside another one set aside).
  if not before then return 'unknown' end
  at = before + 2
end
set_aside(order, tails, parent, at)
redis.call('RPUSH', order, unpack(words(string.sub(saved, bar + 1))))
redis.call('HDEL', tails, first)
for _, key in ipairs({order, versions, tails, meta}) do redis.call('EXPIRE', key, ttl) end
return 'switched'
