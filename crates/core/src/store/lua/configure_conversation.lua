-- Sets what a conversation carries of its own: its model or its instructions ('' removes it).
-- KEYS: session, convs, meta
-- ARGV: conversation id, 'model' or 'instructions', value, session ttl s
-- Answers 'set' | 'gone' | 'expired'
if redis.call('EXISTS', KEYS[1]) == 0 then return 'expired' end
if not conversation_exists(KEYS[2], ARGV[1]) then return 'gone' end
if ARGV[3] == '' then redis.call('HDEL', KEYS[3], ARGV[2]) else redis.call('HSET', KEYS[3], ARGV[2], ARGV[3]) end
for i = 2, 3 do redis.call('EXPIRE', KEYS[i], ARGV[4]) end
return 'set'
