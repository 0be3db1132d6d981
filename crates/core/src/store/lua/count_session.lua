-- Counts one event of a live session against a limit in a fixed window; an unknown or expired
-- session gets no counter.
-- KEYS: session, counter
-- ARGV: limit (0: no limit), window ms
-- Answers -1 for an unknown session, 0 while within the limit, else the ms until the window ends.
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
if tonumber(ARGV[1]) == 0 then return 0 end
return count_in_window(KEYS[2], ARGV[1], ARGV[2])
