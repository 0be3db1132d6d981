-- Shared by several scripts. The loader (store/lua.rs) drops these comment lines and joins the
-- rest onto the first line of each script, so Redis's line numbers in an error are the script
-- file's own. Keep every comment here on a line of its own.
--
-- serde writes `"status":"streaming"` exactly so, and escapes every quote inside a string, so a
-- plain substring search finds replies in progress without decoding JSON in Lua.
local function is_streaming(json)
  return json and string.find(json, '"status":"streaming"', 1, true) ~= nil
end
-- A reply log's text since its last restart entry, and the seq of the next delta.
local function log_state(log)
  local parts, next_seq = {}, 0
  for _, entry in ipairs(redis.call('XRANGE', log, '-', '+')) do
    next_seq = tonumber(string.sub(entry[1], 3))
    if entry[2][1] == 'k' then parts = {} else parts[#parts + 1] = entry[2][2] end
  end
  return table.concat(parts), next_seq
end
-- The seq after a reply log's last entry (0 for an empty or missing log).
local function log_next_seq(log)
  local top = redis.call('XREVRANGE', log, '+', '-', 'COUNT', 1)
  if #top == 0 then return 0 end
  return tonumber(string.sub(top[1][1], 3))
end
-- Counts one event in a fixed window; 0 while within `limit`, else the ms until the window ends.
local function count_in_window(counter, limit, window_ms)
  local count = redis.call('INCR', counter)
  local ttl = redis.call('PTTL', counter)
  if ttl < 0 then redis.call('PEXPIRE', counter, window_ms); ttl = tonumber(window_ms) end
  if count > tonumber(limit) then return ttl end
  return 0
end
-- Appends a message id to the history, dropping the oldest beyond `max_history`.
local function append_trimmed(order, messages, id, max_history)
  local len = redis.call('RPUSH', order, id)
  local excess = len - tonumber(max_history)
  if excess > 0 then
    local old = redis.call('LPOP', order, excess)
    redis.call('HDEL', messages, unpack(old))
  end
end
