-- Sets a conversation's title: the person's always (a rename, which counts as activity), the
-- model's only over the question's start (never over the person's). `by` is 'person' or 'model'.
-- Answers 'titled' | 'kept' (the model's title gave way to the person's) | 'gone' | 'expired'
local session, convs, meta = KEYS[1], KEYS[2], KEYS[3]
local conversation, title, by, now_ms, ttl = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
if redis.call('EXISTS', session) == 0 then return 'expired' end
if not conversation_exists(convs, conversation) then return 'gone' end
if by == 'model' and redis.call('HGET', meta, 'titled_by') == 'person' then return 'kept' end
redis.call('HSET', meta, 'title', title, 'titled_by', by)
if by == 'person' or redis.call('ZSCORE', convs, conversation) == false then
  redis.call('ZADD', convs, now_ms, conversation)
end
for _, key in ipairs({convs, meta}) do redis.call('EXPIRE', key, ttl) end
return 'titled'
