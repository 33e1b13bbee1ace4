-- A waiter leaves the queue. ARGV: id, user. Returns 1 if it was still waiting.
local id, user = ARGV[1], ARGV[2]
local removed = redis.call('HDEL', P .. 'waiters', id)
local qk = P .. 'q:' .. user
redis.call('LREM', qk, 0, id)
if redis.call('LLEN', qk) == 0 then redis.call('LREM', P .. 'q_users', 0, user) end
return removed
