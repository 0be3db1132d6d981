-- Counts one event against a limit in a fixed window.
-- Answers 0 while within the limit, else the ms until the window ends.
local counter = KEYS[1]
local limit, window_ms = ARGV[1], ARGV[2]
return count_in_window(counter, limit, window_ms)
