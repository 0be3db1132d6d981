-- Counts one event of a live session against a limit (0: no limit) in a fixed window; an unknown
-- or expired session gets no counter.
-- Answers -1 for an unknown session, 0 while within the limit, else the ms until the window ends.
local session, counter = KEYS[1], KEYS[2]
local limit, window_ms = tonumber(ARGV[1]), ARGV[2]
if redis.call('EXISTS', session) == 0 then return -1 end
if limit == 0 then return 0 end
return count_in_window(counter, limit, window_ms)
