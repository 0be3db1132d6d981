-- Deletes a conversation: it leaves the list, and its messages, reply logs and lock go at once.
-- A worker writing one of its replies finds its question gone and stops.
-- KEYS: session, convs, meta, order, messages, lock, stop, queued, then reply logs
-- ARGV: conversation id
-- Answers 'deleted' | 'gone' | 'expired'
if redis.call('EXISTS', KEYS[1]) == 0 then return 'expired' end
if not conversation_exists(KEYS[2], ARGV[1]) then return 'gone' end
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('DEL', unpack(KEYS, 3))
return 'deleted'
