-- One client frame on a connection: the session it belongs to, its mapping's life extended to
-- the session's TTL (every frame is activity, a ping included), and the frame counted against
-- `limit` (0: no limit). The mapping and the counter share a slot: both are tagged with the
-- connection id.
-- Answers {token, 0, 0} | {token, wait ms, frames beyond the limit} | {'', 0, 0} (unknown)
local mapping, frames = KEYS[1], KEYS[2]
local ttl, limit, window_ms = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local token = redis.call('GET', mapping)
if not token then return {'', 0, 0} end
redis.call('EXPIRE', mapping, ttl)
if limit == 0 then return {token, 0, 0} end
local wait = count_in_window(frames, limit, window_ms)
if wait == 0 then return {token, 0, 0} end
return {token, wait, tonumber(redis.call('GET', frames)) - limit}
