-- Ends a session at its owner's request ("New chat"): its keys go at once, with the logs of the
-- replies in progress the caller found. Answers the session's connections, whose mappings live
-- in other slots: the caller deletes those.
-- KEYS: session, order, messages, conns, lock, stop, rate, queued, reads, then reply logs
-- Answers the connection ids.
local conns = redis.call('SMEMBERS', KEYS[4])
redis.call('DEL', unpack(KEYS))
return conns
