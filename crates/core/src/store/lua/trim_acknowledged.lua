-- Trims the request stream of entries the consumer group is done with, once it holds more than
-- `max`: everything before the oldest entry still pending (read, not acknowledged), and never an
-- entry not yet read (after the group's last-delivered id). An approximate MAXLEN on XADD would
-- drop whatever is oldest, read or not.
-- Answers how many entries were trimmed.
local stream = KEYS[1]
local group, max = ARGV[1], tonumber(ARGV[2])
if redis.call('EXISTS', stream) == 0 then return 0 end
if redis.call('XLEN', stream) <= max then return 0 end
local delivered
for _, info in ipairs(redis.call('XINFO', 'GROUPS', stream)) do
  local fields = {}
  for i = 1, #info, 2 do fields[info[i]] = info[i + 1] end
  if fields['name'] == group then delivered = fields['last-delivered-id'] end
end
if not delivered then return 0 end
local floor = delivered
local pending = redis.call('XPENDING', stream, group)
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
return redis.call('XTRIM', stream, 'MINID', floor)
