-- One client frame on a connection: the session it belongs to, its mapping's life extended to
-- the session's TTL (every frame is activity, a ping included), and the frame counted.
-- KEYS: mapping, frame counter (one slot: both are tagged with the connection id)
-- ARGV: session ttl s, frames per window (0: no limit), window ms
-- Answers {token, 0, 0} | {token, wait ms, frames beyond the limit} | {'', 0, 0} (unknown)
local token = redis.call('GET', KEYS[1])
if not token then return {'', 0, 0} end
redis.call('EXPIRE', KEYS[1], ARGV[1])
local limit = tonumber(ARGV[2])
if limit == 0 then return {token, 0, 0} end
local wait = count_in_window(KEYS[2], limit, ARGV[3])
if wait == 0 then return {token, 0, 0} end
return {token, wait, tonumber(redis.call('GET', KEYS[2])) - limit}
