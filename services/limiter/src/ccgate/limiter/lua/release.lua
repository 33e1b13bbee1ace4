-- ARGV: id, outcome, limit, window_ms, max_concurrency, daily, lease_ttl_ms
local id, outcome = ARGV[1], ARGV[2]
local limit, window, conc = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local daily, ttl = tonumber(ARGV[6]), tonumber(ARGV[7])
local now = now_ms()
drop_leases({id})
if outcome == 'ok' then redis.call('DEL', P .. 'c429') end
expire_leases(now)
return pump(now, limit, window, conc, daily, ttl)
