-- Sets a conversation's title: the person's always (a rename, which counts as activity), the
-- model's only over the question's start (never over the person's).
-- KEYS: session, convs, meta
-- ARGV: conversation id, title, 'person' or 'model', now ms, session ttl s
-- Answers 'titled' | 'kept' (the model's title gave way to the person's) | 'gone' | 'expired'
if redis.call('EXISTS', KEYS[1]) == 0 then return 'expired' end
if not conversation_exists(KEYS[2], ARGV[1]) then return 'gone' end
if ARGV[3] == 'model' and redis.call('HGET', KEYS[3], 'titled_by') == 'person' then return 'kept' end
redis.call('HSET', KEYS[3], 'title', ARGV[2], 'titled_by', ARGV[3])
if ARGV[3] == 'person' or redis.call('ZSCORE', KEYS[2], ARGV[1]) == false then
  redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
end
for i = 2, 3 do redis.call('EXPIRE', KEYS[i], ARGV[5]) end
return 'titled'
