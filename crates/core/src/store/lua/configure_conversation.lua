-- Sets what a conversation carries of its own: its model or its instructions ('' removes it).
-- `field` is 'model' or 'instructions'.
-- Answers 'set' | 'gone' | 'expired'
local session, convs, meta = KEYS[1], KEYS[2], KEYS[3]
local conversation, field, value, ttl = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
if redis.call('EXISTS', session) == 0 then return 'expired' end
if not conversation_exists(convs, conversation) then return 'gone' end
if value == '' then redis.call('HDEL', meta, field) else redis.call('HSET', meta, field, value) end
for _, key in ipairs({convs, meta}) do redis.call('EXPIRE', key, ttl) end
return 'set'
