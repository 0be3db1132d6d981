-- Stores a user message and locks its conversation for its reply, counting it against the
-- session's rate; records the conversation's activity, and titles it with the question's start
-- if it has no title yet.
-- A question that edits an earlier one takes its place on the path as a new version; the old
-- question and everything after it are set aside (`tails`), listed as versions of that place.
-- `ttl` and `lock_ttl` are seconds; `per_window` and `max_bytes` 0 mean no limit; `edits` is ''
-- for a new question; `now_ms` scores the activity, `now` (RFC 3339) dates a new conversation.
-- Answers {'stored', 0} | {'unqueued', 0} | {'duplicate', 0} | {'expired', 0} | {'gone', 0}
--       | {'busy', 0} | {'rate_limited', wait ms} | {'unknown', 0} | {'too_many_versions', 0}
local session, order, messages, lock, conns, rate = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local queued, convs, meta, versions, tails = KEYS[7], KEYS[8], KEYS[9], KEYS[10], KEYS[11]
local message_id, json, ttl, lock_ttl, max_history = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local per_window, window_ms, reply_id, max_bytes = tonumber(ARGV[6]), ARGV[7], ARGV[8], ARGV[9]
local conversation, now_ms, now, title = ARGV[10], ARGV[11], ARGV[12], ARGV[13]
local edits, max_versions = ARGV[14], tonumber(ARGV[15])
if redis.call('EXISTS', session) == 0 then return {'expired', 0} end
if not conversation_exists(convs, conversation) then return {'gone', 0} end
if redis.call('HEXISTS', messages, message_id) == 1 then
  -- A resend is activity, and this write lets the caller's WAIT cover the first one too: a
  -- primary replicates in order, so replicas that have this have the stored message.
  for _, key in ipairs({session, order, messages, convs, meta}) do redis.call('EXPIRE', key, ttl) end
  -- Answered, being answered, or queued (mark_queued records it): the ack is all it needs.
  if redis.call('HEXISTS', messages, reply_id) == 1 then return {'duplicate', 0} end
  if redis.call('GET', queued) == message_id then return {'duplicate', 0} end
  -- Stored but never queued (the message function died or lost Redis between the two steps).
  -- Only the last question is answered late: a reply goes at the end of the history.
  if redis.call('LINDEX', order, -1) ~= message_id then return {'duplicate', 0} end
  local holder = redis.call('GET', lock)
  if holder and holder ~= message_id then return {'busy', 0} end
  redis.call('SET', lock, message_id, 'EX', lock_ttl)
  return {'unqueued', 0}
end
if per_window > 0 then
  local wait = count_in_window(rate, per_window, window_ms)
  if wait > 0 then return {'rate_limited', wait} end
end
if not redis.call('SET', lock, message_id, 'NX', 'EX', lock_ttl) then return {'busy', 0} end
-- A session from before conversations counted its stored bytes in its own hash: `main` takes
-- the count over, so MAX_HISTORY_BYTES keeps holding.
if conversation == 'main' and redis.call('HEXISTS', meta, 'bytes') == 0 then
  local bytes = redis.call('HGET', session, 'bytes')
  if bytes then
    redis.call('HSET', meta, 'bytes', bytes)
    redis.call('HDEL', session, 'bytes')
  end
end
if edits ~= '' then
  local at = redis.call('LPOS', order, edits)
  local edited = at and redis.call('HGET', messages, edits)
  if not edited or not string.find(edited, '"source":"user"', 1, true) then
    redis.call('DEL', lock)
    return {'unknown', 0}
  end
  local parent = '^'
  if at > 0 then parent = redis.call('LINDEX', order, at - 1) end
  local list = words(redis.call('HGET', versions, parent))
  -- A list for this place that does not hold the edited question is another place's (its first
  -- messages were trimmed): this place's versions start over.
  if not listed(table.concat(list, ' '), edits) then list = {edits} end
  if #list >= max_versions then
    redis.call('DEL', lock)
    return {'too_many_versions', 0}
  end
  list[#list + 1] = message_id
  redis.call('HSET', versions, parent, table.concat(list, ' '))
  set_aside(order, tails, parent, at + 1)
  for _, key in ipairs({versions, tails}) do redis.call('EXPIRE', key, ttl) end
end
put_message(session, meta, order, messages, message_id, json, max_history, max_bytes)
redis.call('ZADD', convs, now_ms, conversation)
redis.call('HSETNX', meta, 'created', now)
local titled_by = redis.call('HGET', meta, 'titled_by')
if not titled_by or titled_by == 'none' then
  redis.call('HSET', meta, 'title', title, 'titled_by', 'question')
end
for _, key in ipairs({session, order, messages, conns, convs, meta}) do redis.call('EXPIRE', key, ttl) end
return {'stored', 0}
