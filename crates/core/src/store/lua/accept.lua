-- Stores a user message and locks its conversation for its reply, counting it against the
-- session's rate; records the conversation's activity, and titles it with the question's start
-- if it has no title yet.
-- A question that edits an earlier one takes its place on the path as a new version; the old
-- question and everything after it are set aside (`tails`), listed as versions of that place.
-- KEYS: session, order, messages, lock, conns, rate, queued, convs, meta, versions, tails
-- ARGV: message id, message json, session ttl s, lock ttl s, max history,
--       messages per window (0: no limit), window ms, reply id, max stored bytes (0: no limit),
--       conversation id, now ms, now (RFC 3339), title from the question,
--       the question it edits ('' for none), most versions of one place
-- Answers {'stored', 0} | {'unqueued', 0} | {'duplicate', 0} | {'expired', 0} | {'gone', 0}
--       | {'busy', 0} | {'rate_limited', wait ms} | {'unknown', 0} | {'too_many_versions', 0}
if redis.call('EXISTS', KEYS[1]) == 0 then return {'expired', 0} end
if not conversation_exists(KEYS[8], ARGV[10]) then return {'gone', 0} end
if redis.call('HEXISTS', KEYS[3], ARGV[1]) == 1 then
  -- A resend is activity, and this write lets the caller's WAIT cover the first one too: a
  -- primary replicates in order, so replicas that have this have the stored message.
  for _, i in ipairs({1, 2, 3, 8, 9}) do redis.call('EXPIRE', KEYS[i], ARGV[3]) end
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
-- A session from before conversations counted its stored bytes in its own hash: `main` takes
-- the count over, so MAX_HISTORY_BYTES keeps holding.
if ARGV[10] == 'main' and redis.call('HEXISTS', KEYS[9], 'bytes') == 0 then
  local bytes = redis.call('HGET', KEYS[1], 'bytes')
  if bytes then
    redis.call('HSET', KEYS[9], 'bytes', bytes)
    redis.call('HDEL', KEYS[1], 'bytes')
  end
end
if ARGV[14] ~= '' then
  local at = redis.call('LPOS', KEYS[2], ARGV[14])
  local edited = at and redis.call('HGET', KEYS[3], ARGV[14])
  if not edited or not string.find(edited, '"source":"user"', 1, true) then
    redis.call('DEL', KEYS[4])
    return {'unknown', 0}
  end
  local parent = '^'
  if at > 0 then parent = redis.call('LINDEX', KEYS[2], at - 1) end
  local list = words(redis.call('HGET', KEYS[10], parent))
  -- A list for this place that does not hold the edited question is another place's (its first
  -- messages were trimmed): this place's versions start over.
  if not listed(table.concat(list, ' '), ARGV[14]) then list = {ARGV[14]} end
  if #list >= tonumber(ARGV[15]) then
    redis.call('DEL', KEYS[4])
    return {'too_many_versions', 0}
  end
  list[#list + 1] = ARGV[1]
  redis.call('HSET', KEYS[10], parent, table.concat(list, ' '))
  set_aside(KEYS[2], KEYS[11], parent, at + 1)
  for i = 10, 11 do redis.call('EXPIRE', KEYS[i], ARGV[3]) end
end
put_message(KEYS[9], KEYS[2], KEYS[3], ARGV[1], ARGV[2], ARGV[5], ARGV[9])
redis.call('ZADD', KEYS[8], ARGV[11], ARGV[10])
redis.call('HSETNX', KEYS[9], 'created', ARGV[12])
local titled_by = redis.call('HGET', KEYS[9], 'titled_by')
if not titled_by or titled_by == 'none' then
  redis.call('HSET', KEYS[9], 'title', ARGV[13], 'titled_by', 'question')
end
for _, i in ipairs({1, 2, 3, 5, 8, 9}) do redis.call('EXPIRE', KEYS[i], ARGV[3]) end
return {'stored', 0}
