-- Counts one event against a limit in a fixed window.
-- KEYS: counter
-- ARGV: limit, window ms
-- Answers 0 while within the limit, else the ms until the window ends.
return count_in_window(KEYS[1], ARGV[1], ARGV[2])
