-- Finds a text in a session's conversations: their titles and the texts of the messages on each
-- path shown, compared in lower case (ASCII: the caller checks each hit against the decoded
-- text, and passes only the query's longest ASCII run, with no budget, for a query that holds
-- other letters). A message's text is the `msg` field of its stored JSON as serde writes it
-- (`{"id":..,"msg":"..","timestamp":..`): inside it every quote is escaped, so the first
-- `","timestamp":"` ends it.
-- KEYS: for each conversation, its meta, its order, its messages
-- ARGV: the text in lower case, JSON-escaped ('' matches every message); most message hits
--       (0: no limit)
-- Answers, per conversation, {title, {matching message json, ...}}.
local query, budget = ARGV[1], tonumber(ARGV[2])
local found = {}
local limited = budget > 0
for i = 1, #KEYS, 3 do
  local meta, order, messages = KEYS[i], KEYS[i + 1], KEYS[i + 2]
  local title = redis.call('HGET', meta, 'title') or ''
  local hits = {}
  local ids = redis.call('LRANGE', order, 0, -1)
  if (not limited or budget > 0) and #ids > 0 then
    for _, json in ipairs(redis.call('HMGET', messages, unpack(ids))) do
      local from = json and string.find(json, '"msg":"', 1, true)
      local to = from and string.find(json, '","timestamp":"', from, true)
      if to and string.find(string.lower(string.sub(json, from + 7, to - 1)), query, 1, true) then
        hits[#hits + 1] = json
        budget = budget - 1
        if limited and budget == 0 then break end
      end
    end
  end
  found[#found + 1] = {title, hits}
end
return found
