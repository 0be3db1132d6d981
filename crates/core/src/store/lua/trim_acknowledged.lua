-- Trims the request stream of entries the consumer group is done with, once it holds more than
-- `max`: everything before the oldest entry still pending (read, not acknowledged), and never an
-- entry not yet read (after the group's last-delivered id). An approximate MAXLEN on XADD would
-- drop whatever is oldest, read or not.
-- KEYS: stream
-- ARGV: group, max entries kept
-- Answers how many entries were trimmed.
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if redis.call('XLEN', KEYS[1]) <= tonumber(ARGV[2]) then return 0 end
local delivered
for _, group in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
  local fields = {}
  for i = 1, #group, 2 do fields[group[i]] = group[i + 1] end
  if fields['name'] == ARGV[1] then delivered = fields['last-delivered-id'] end
end
if not delivered then return 0 end
local floor = delivered
local pending = redis.call('XPENDING', KEYS[1], ARGV[1])
if pending[1] > 0 then
  -- Stream ids compare as (milliseconds, sequence).
  local function parts(id)
    local ms, seq = string.match(id, '^(%d+)-(%d+)$')
    return tonumber(ms), tonumber(seq)
  end
  local pms, pseq = parts(pending[2])
  local dms, dseq = parts(delivered)
  if pms < dms or (pms == dms and pseq < dseq) then floor = pending[2] end
end
return redis.call('XTRIM', KEYS[1], 'MINID', floor)
