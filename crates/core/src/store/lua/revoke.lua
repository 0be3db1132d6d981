-- Ends a session at its owner's request ("New chat" in a client that knows no conversations):
-- its keys go at once, with every conversation's and the logs of the replies in progress the
-- caller found. Answers the session's connections, whose mappings live in other slots: the
-- caller deletes those.
-- KEYS (all deleted): session, conns, rate, reads, convs, searches, changes, extended, then every
--       conversation's
--       keys and reply logs
-- Answers the connection ids.
local conns = KEYS[2]
local members = redis.call('SMEMBERS', conns)
-- UNLINK: a full session's hashes are freed in the background, not while Redis waits.
redis.call('UNLINK', unpack(KEYS))
return members
