-- A session's name, start and messages, with the text so far of every reply in progress whose
-- log the caller declared (a script may touch only keys passed in KEYS, which cluster-mode
-- services enforce). A reply in progress whose log was not declared is named in `undeclared`,
-- and the caller reads again with it declared.
-- Each message with other versions at its place comes with their ids (in `versions`).
-- KEYS: session, order, messages, versions, then the logs of the replies named in ARGV[5..]
-- ARGV: first index (0 for all, -N for the last N), the id the page ends before ('' for the
--       newest), most messages (0: no limit), most stored bytes (0: no limit; the newest message
--       is returned whatever its size), then the reply ids whose logs follow in KEYS
-- Answers false for an unknown session, else {name, session start, messages json, live,
-- undeclared, 1 if older messages were left out else 0, 0 if the `before` id is unknown else 1,
-- versions} where live is {reply id, text so far, next seq} per reply in progress and versions
-- {message id, the ids of its place's versions} per message that has some.
local session, order, messages, versions = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local first, before, limit, budget = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local s = redis.call('HMGET', session, 'name', 'session_start')
if not s[1] then return false end
local all = redis.call('LRANGE', order, 0, -1)
if first < 0 then first = math.max(0, #all + first) end
first = math.min(first, #all)
local ids = {unpack(all, first + 1, #all)}
-- The id before each message on the path (`^` for the first), for its versions.
local parent = {}
for i = 1, #all do parent[all[i]] = all[i - 1] or '^' end
if before ~= '' then
  local cut
  for i, id in ipairs(ids) do
    if id == before then cut = i; break end
  end
  if not cut then return {s[1], s[2], {}, {}, {}, 0, 0, {}} end
  ids = {unpack(ids, 1, cut - 1)}
end
local take, bytes = 0, 0
for i = #ids, 1, -1 do
  if limit > 0 and take >= limit then break end
  local size = redis.call('HSTRLEN', messages, ids[i])
  if budget > 0 and take > 0 and bytes + size > budget then break end
  bytes, take = bytes + size, take + 1
end
local more = 0
if take < #ids then
  more = 1
  ids = {unpack(ids, #ids - take + 1, #ids)}
end
local msgs = {}
if #ids > 0 then msgs = redis.call('HMGET', messages, unpack(ids)) end
-- The declared logs: ARGV[i] names the reply whose log is KEYS[i], from 5 on.
local logs = {}
for i = 5, #ARGV do logs[ARGV[i]] = KEYS[i] end
local live, undeclared = {}, {}
for i, json in ipairs(msgs) do
  if is_streaming(json) then
    if logs[ids[i]] then
      local text, next_seq = log_state(logs[ids[i]])
      live[#live + 1] = {ids[i], text, next_seq}
    else
      undeclared[#undeclared + 1] = ids[i]
    end
  end
end
local places = {}
for _, id in ipairs(ids) do
  local list = redis.call('HGET', versions, parent[id])
  if list and listed(list, id) then places[#places + 1] = {id, list} end
end
return {s[1], s[2], msgs, live, undeclared, more, 1, places}
