-- Finds a text in a session's conversations: their titles and their messages' text, compared in
-- lower case (ASCII; the caller checks each hit against the decoded text). A message's text is
-- the `msg` field of its stored JSON as serde writes it (`{"id":..,"msg":"..","timestamp":..`):
-- inside it every quote is escaped, so the first `","timestamp":"` ends it.
-- KEYS: for each conversation, its meta then its messages
-- ARGV: the text in lower case, JSON-escaped; most message hits
-- Answers, per conversation, {title, {matching message json, ...}}.
local found, budget = {}, tonumber(ARGV[2])
for i = 1, #KEYS, 2 do
  local title = redis.call('HGET', KEYS[i], 'title') or ''
  local hits = {}
  if budget > 0 then
    for _, json in ipairs(redis.call('HVALS', KEYS[i + 1])) do
      local from = string.find(json, '"msg":"', 1, true)
      local to = from and string.find(json, '","timestamp":"', from, true)
      if to and string.find(string.lower(string.sub(json, from + 7, to - 1)), ARGV[1], 1, true) then
        hits[#hits + 1] = json
        budget = budget - 1
        if budget == 0 then break end
      end
    end
  end
  found[#found + 1] = {title, hits}
end
return found
