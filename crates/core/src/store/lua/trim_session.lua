-- Keeps a session within its stored bytes: drops the oldest messages of one of its
-- conversations (the caller goes from the least recently active on) while the session stores more
-- than `max_bytes`, at most `max_drops` of them in this call, and never a conversation's last
-- two (a question and its reply, which may be being written).
-- KEYS: session, the conversation's meta, order, messages
-- ARGV: the session's most stored bytes; most messages dropped by this call
-- Answers {the bytes the session stores after it, the messages it dropped}.
local session, meta, order, messages = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local max_bytes, max_drops = tonumber(ARGV[1]), tonumber(ARGV[2])
local stored = tonumber(redis.call('HGET', session, 'stored_bytes') or 0)
local len = redis.call('LLEN', order)
local dropped = 0
while stored > max_bytes and len > 2 and dropped < max_drops do
  local oldest = redis.call('LPOP', order)
  local size = redis.call('HSTRLEN', messages, oldest)
  redis.call('HDEL', messages, oldest)
  count_bytes(session, meta, -size)
  stored = tonumber(redis.call('HGET', session, 'stored_bytes') or 0)
  len = len - 1
  dropped = dropped + 1
end
return {stored, dropped}
