-- Deletes a conversation: it leaves the list, and its messages, reply logs and lock go at once.
-- A worker writing one of its replies finds its question gone and stops.
-- KEYS: session, convs, then the keys deleted: meta, order, messages, versions, tails, lock, stop,
--       queued, and the logs of its replies in progress
-- Answers 'deleted' | 'gone' | 'expired'
local session, convs = KEYS[1], KEYS[2]
local conversation = ARGV[1]
if redis.call('EXISTS', session) == 0 then return 'expired' end
if not conversation_exists(convs, conversation) then return 'gone' end
redis.call('ZREM', convs, conversation)
-- Its bytes leave the session's count (KEYS[3] is its meta).
count_bytes(session, KEYS[3], -tonumber(redis.call('HGET', KEYS[3], 'bytes') or 0))
-- UNLINK: a full conversation is freed in the background, not while Redis waits.
redis.call('UNLINK', unpack(KEYS, 3))
return 'deleted'
