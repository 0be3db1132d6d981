-- A reply as it stands: its stored json, and for one in progress its text so far.
-- Answers false for no such reply, else {json, text so far, next seq}.
local messages, log = KEYS[1], KEYS[2]
local reply_id = ARGV[1]
local json = redis.call('HGET', messages, reply_id)
if not json then return false end
if not is_streaming(json) then return {json, '', 0} end
local text, next_seq = log_state(log)
return {json, text, next_seq}
