-- A session's name, start and messages, with the text so far of every reply in progress.
-- KEYS: session, order, messages
-- ARGV: first index (0 for all, -N for the last N), reply log key prefix
-- Answers false for an unknown session, else {name, session start, messages json, live}
-- where live is {reply id, text so far, next seq} per streaming reply.
local s = redis.call('HMGET', KEYS[1], 'name', 'session_start')
if not s[1] then return false end
local ids = redis.call('LRANGE', KEYS[2], ARGV[1], -1)
local msgs = {}
if #ids > 0 then msgs = redis.call('HMGET', KEYS[3], unpack(ids)) end
local live = {}
for i, json in ipairs(msgs) do
  if is_streaming(json) then
    local text, next_seq = log_state(ARGV[2] .. ids[i])
    live[#live + 1] = {ids[i], text, next_seq}
  end
end
return {s[1], s[2], msgs, live}
