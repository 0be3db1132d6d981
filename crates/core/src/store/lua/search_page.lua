-- One page of a search: the `page` messages of one conversation's shown path that come before the
-- `skipped` newest, those whose text holds the query in lower case (ASCII: the caller checks
-- each hit against the decoded text, and passes only the query's longest ASCII run for a query
-- that holds other letters). Bounded by the page, whatever the conversation holds: the caller
-- pages from the newest message back, in as many calls as its budget allows.
-- A message's text is the `msg` field of its stored JSON as serde writes it
-- (`{"id":..,"msg":"..","timestamp":..`): inside it every quote is escaped, so the first
-- `","timestamp":"` ends it.
-- KEYS: the conversation's order, its messages
-- ARGV: the text in lower case, JSON-escaped ('' matches every message); how many of the newest
--       messages earlier pages read; the page's size
-- Answers {messages read, {matching message json, ...}}, oldest first.
local order, messages = KEYS[1], KEYS[2]
local query, skipped, page = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local ids = redis.call('LRANGE', order, -(skipped + page), -(skipped + 1))
local hits = {}
if #ids > 0 then
  for _, json in ipairs(redis.call('HMGET', messages, unpack(ids))) do
    local from = json and string.find(json, '"msg":"', 1, true)
    local to = from and string.find(json, '","timestamp":"', from, true)
    if to and string.find(string.lower(string.sub(json, from + 7, to - 1)), query, 1, true) then
      hits[#hits + 1] = json
    end
  end
end
return {#ids, hits}
