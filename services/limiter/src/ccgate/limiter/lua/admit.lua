-- ARGV: id, user, replica, limit, window_ms, max_concurrency, daily, lease_ttl_ms, wait_budget_ms,
--       user_rpm, user_max_concurrency, user_bucket ('' = the user's own)
-- Returns {1} granted now | {0, reason, retry_after_ms} denied | {2, ahead, pump_result} queued.
local id, user, replica = ARGV[1], ARGV[2], ARGV[3]
local limit, window, conc = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local daily, ttl, budget = tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9])
local urpm, uconc = tonumber(ARGV[10] or '0'), tonumber(ARGV[11] or '0')
local ubucket = ARGV[12] or ''
local now = now_ms()
if urpm > 0 or uconc > 0 then
  redis.call('HSET', P .. 'ulimits', user, urpm .. '\t' .. uconc .. '\t' .. ubucket)
end
expire_leases(now)
local ahead = redis.call('HLEN', P .. 'waiters')
local reason, wait = blocked(now, limit, window, conc, daily)
local own, own_wait = user_blocked(now, user)
if not reason and not own and ahead == 0 then
  grant(now, id, user, replica, limit, ttl)
  return {1}
end
if reason == 'daily' then return {0, 'daily', wait} end
local est = estimate(now, ahead, limit, window)
if own and own_wait > est then
  est = own_wait
  reason = own
end
if est > budget then return {0, reason or 'rate', est} end
local qk = P .. 'q:' .. user
redis.call('RPUSH', qk, id)
if redis.call('LLEN', qk) == 1 then redis.call('RPUSH', P .. 'q_users', user) end
redis.call('HSET', P .. 'waiters', id, replica .. '\t' .. (now + budget))
return {2, ahead, pump(now, limit, window, conc, daily, ttl)}
