-- A session's name, start and messages, with the text so far of every reply in progress whose
-- log the caller declared (a script may touch only keys passed in KEYS, which cluster-mode
-- services enforce). A reply in progress whose log was not declared is named in `undeclared`,
-- and the caller reads again with it declared.
-- KEYS: session, order, messages, then the logs of the replies named in ARGV[2..]
-- ARGV: first index (0 for all, -N for the last N), then the reply ids whose logs follow in KEYS
-- Answers false for an unknown session, else {name, session start, messages json, live,
-- undeclared} where live is {reply id, text so far, next seq} per reply in progress.
local s = redis.call('HMGET', KEYS[1], 'name', 'session_start')
if not s[1] then return false end
local ids = redis.call('LRANGE', KEYS[2], ARGV[1], -1)
local msgs = {}
if #ids > 0 then msgs = redis.call('HMGET', KEYS[3], unpack(ids)) end
local logs = {}
for i = 2, #ARGV do logs[ARGV[i]] = KEYS[i + 2] end
local live, undeclared = {}, {}
for i, json in ipairs(msgs) do
  if is_streaming(json) then
    if logs[ids[i]] then
      local text, next_seq = log_state(logs[ids[i]])
      live[#live + 1] = {ids[i], text, next_seq}
    else
      undeclared[#undeclared + 1] = ids[i]
    end
  end
end
return {s[1], s[2], msgs, live, undeclared}
