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
-- Adds `delta` to a conversation's stored bytes (its meta hash's `bytes` field) and to its
-- session's (the session hash's `stored_bytes`, never below 0: a session from before it counted
-- starts at 0). Answers the conversation's. (A zero delta is not sent: Lua writes -0 as "-0",
-- which HINCRBY refuses.)
local function count_bytes(session, meta, delta)
  if delta == 0 then return tonumber(redis.call('HGET', meta, 'bytes') or 0) end
  if redis.call('HINCRBY', session, 'stored_bytes', delta) < 0 then
    redis.call('HSET', session, 'stored_bytes', 0)
  end
  return redis.call('HINCRBY', meta, 'bytes', delta)
end
-- Stores message `json` under `id` (appending the id to the history when it is new), keeps the
-- stored bytes in step, and drops the conversation's oldest messages beyond `max_count` messages
-- or `max_bytes` bytes (0: no byte limit; never the last two, a question and its reply).
local function put_message(session, meta, order, messages, id, json, max_count, max_bytes)
  local old = redis.call('HSTRLEN', messages, id)
  local added = redis.call('HSET', messages, id, json) == 1
  local bytes = count_bytes(session, meta, string.len(json) - old)
  local len
  if added then len = redis.call('RPUSH', order, id) else len = redis.call('LLEN', order) end
  max_count, max_bytes = tonumber(max_count), tonumber(max_bytes)
  while len > max_count or (max_bytes > 0 and bytes > max_bytes and len > 2) do
    local oldest = redis.call('LPOP', order)
    local size = redis.call('HSTRLEN', messages, oldest)
    redis.call('HDEL', messages, oldest)
    bytes = count_bytes(session, meta, -size)
    len = len - 1
  end
end
-- Removes message `id` from the messages hash, keeping the stored bytes in step.
local function drop_message(session, meta, messages, id)
  local size = redis.call('HSTRLEN', messages, id)
  if redis.call('HDEL', messages, id) == 1 then count_bytes(session, meta, -size) end
end
-- The ids of a space-separated list.
local function words(text)
  local ids = {}
  for id in string.gmatch(text or '', '%S+') do ids[#ids + 1] = id end
  return ids
end
-- Whether a space-separated list holds `id`.
local function listed(text, id)
  for _, each in ipairs(words(text)) do
    if each == id then return true end
  end
  return false
end
-- Sets a version of a conversation's path aside: the path from position `at` (1-based) on leaves
-- `order` and is kept in `tails` under its first id, with the id it follows (`^` for none).
-- Answers that first id, or nil when the path has nothing there.
local function set_aside(order, tails, parent, at)
  local tail = redis.call('LRANGE', order, at - 1, -1)
  if #tail == 0 then return nil end
  redis.call('HSET', tails, tail[1], parent .. '|' .. table.concat(tail, ' '))
  if at == 1 then redis.call('DEL', order) else redis.call('LTRIM', order, 0, at - 2) end
  return tail[1]
end
-- Renames a stored message (its JSON starts with its id: serde writes `id` first), wherever it
-- is: on the path, or first of a version set aside; and in its parent's list of versions.
local function rename(session, messages, meta, versions, tails, order, parent, old, new)
  local json = redis.call('HGET', messages, old)
  local prefix = '{"id":"' .. old .. '"'
  local renamed = '{"id":"' .. new .. '"' .. string.sub(json, #prefix + 1)
  redis.call('HSET', messages, new, renamed)
  redis.call('HDEL', messages, old)
  count_bytes(session, meta, #renamed - #json)
  local list = words(redis.call('HGET', versions, parent))
  for i, id in ipairs(list) do
    if id == old then list[i] = new end
  end
  if #list > 0 then redis.call('HSET', versions, parent, table.concat(list, ' ')) end
  local saved = redis.call('HGET', tails, old)
  if saved then
    local ids = words(string.sub(saved, string.find(saved, '|', 1, true) + 1))
    ids[1] = new
    redis.call('HSET', tails, new, parent .. '|' .. table.concat(ids, ' '))
    redis.call('HDEL', tails, old)
  else
    local at = redis.call('LPOS', order, old)
    if at then redis.call('LSET', order, at, new) end
  end
end
-- Whether conversation `id` is one of the session's: listed in its set, or `main`, the first,
-- which always is (deleting it empties it).
local function conversation_exists(convs, id)
  return id == 'main' or redis.call('ZSCORE', convs, id) ~= false
end
