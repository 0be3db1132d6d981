-- A reply as it stands: its stored json, and for one in progress its text so far.
-- KEYS: messages, log
-- ARGV: reply id
-- Answers false for no such reply, else {json, text so far, next seq}.
local json = redis.call('HGET', KEYS[1], ARGV[1])
if not json then return false end
if not is_streaming(json) then return {json, '', 0} end
local text, next_seq = log_state(KEYS[2])
return {json, text, next_seq}
