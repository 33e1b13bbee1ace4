-- Heartbeat: push the expiry of the caller's live leases. ARGV: lease_ttl_ms, id...
local now = now_ms()
local ttl = tonumber(ARGV[1])
local renewed = 0
for i = 2, #ARGV do
  renewed = renewed + redis.call('ZADD', P .. 'leases', 'XX', 'CH', now + ttl, ARGV[i])
end
return renewed
