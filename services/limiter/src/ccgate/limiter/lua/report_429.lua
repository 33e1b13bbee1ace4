-- The provider said 429: pause it for every replica. ARGV: retry_after_ms (-1: unknown), jitter (1.0-1.25)
local retry, jitter = tonumber(ARGV[1]), tonumber(ARGV[2])
local now = now_ms()
local count = redis.call('INCR', P .. 'c429')
redis.call('PEXPIRE', P .. 'c429', 600000)
local pause = retry
if pause < 0 then pause = math.floor(math.min(60000, 1000 * 2 ^ (count - 1)) * jitter) end
local current = tonumber(redis.call('GET', P .. 'pause') or '0')
local untilms = math.max(current, now + pause)
if untilms > now then redis.call('SET', P .. 'pause', untilms, 'PX', untilms - now) end
return untilms - now
