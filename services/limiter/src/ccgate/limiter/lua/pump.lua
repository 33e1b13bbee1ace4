-- ARGV: limit, window_ms, max_concurrency, daily, lease_ttl_ms
local now = now_ms()
expire_leases(now)
return pump(now, tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]))
