-- ARGV: limit, window_ms. Read-mostly view for `ccgate limiter status`.
local limit, window = tonumber(ARGV[1]), tonumber(ARGV[2])
local now = now_ms()
expire_leases(now)
if limit > 0 then redis.call('ZREMRANGEBYSCORE', P .. 'grants', '-inf', now - window) end
local info = redis.call('HGETALL', P .. 'lease_info')
local users = redis.call('LRANGE', P .. 'q_users', 0, -1)
local depth = {}
for _, u in ipairs(users) do
  table.insert(depth, u)
  table.insert(depth, redis.call('LLEN', P .. 'q:' .. u))
end
local pause = math.max(0, tonumber(redis.call('GET', P .. 'pause') or '0') - now)
return {redis.call('ZCARD', P .. 'grants'), info, depth, pause,
        tonumber(redis.call('GET', day_key(now)) or '0'), redis.call('HLEN', P .. 'waiters')}
