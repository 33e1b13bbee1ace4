-- Shared by every limiter script (prepended by the client). All keys of one provider share
-- the hash tag in KEYS[1] = "ccgate:{provider}:", so each script touches one cluster slot.
-- Time is Redis's own clock (TIME), in milliseconds, never the caller's.
local P = KEYS[1]
local DAY_MS = 86400000
local USER_WINDOW = 60000

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function day_key(now)
  return P .. 'day:' .. math.floor(now / DAY_MS)
end

-- A sliding window of grant times in the sorted set `key`: with `limit` grants in the last
-- `window` ms it is full, for as many ms as its oldest grant takes to leave it; else 0.
local function window_wait(key, limit, window, now)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  if redis.call('ZCARD', key) < limit then return 0 end
  local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  return math.max(1, tonumber(oldest[2]) + window - now)
end

-- A team key's own limits, stored when it asks: "rpm<TAB>max_concurrency<TAB>bucket", and
-- the bucket they are counted in (the user's own unless it names one: a key's chat users).
local function user_limits(user)
  local raw = redis.call('HGET', P .. 'ulimits', user)
  if not raw then return 0, 0, user end
  local rpm, conc, bucket = string.match(raw, '^(%d+)\t(%d+)\t?(.*)$')
  if bucket == '' then bucket = user end
  return tonumber(rpm), tonumber(conc), bucket
end

local function user_blocked(now, user)
  local rpm, conc, bucket = user_limits(user)
  if conc > 0 and tonumber(redis.call('HGET', P .. 'u_inflight', bucket) or '0') >= conc then
    return 'user_concurrency', 0
  end
  if rpm > 0 then
    local wait = window_wait(P .. 'ug:' .. bucket, rpm, USER_WINDOW, now)
    if wait > 0 then return 'user_rate', wait end
  end
  return nil, 0
end

-- Remove leases from the ledger, giving each holder's own in-flight count back to the bucket
-- it was counted in ("user<TAB>replica<TAB>bucket"; an empty bucket: not counted; no third
-- field, a lease granted before buckets existed: the user's own).
local function drop_leases(ids)
  for _, id in ipairs(ids) do
    local info = redis.call('HGET', P .. 'lease_info', id)
    if info then
      local user, rest = string.match(info, '^([^\t]*)\t[^\t]*(.*)$')
      local bucket = user
      if rest and rest ~= '' then bucket = string.sub(rest, 2) end
      if bucket and bucket ~= '' and tonumber(redis.call('HGET', P .. 'u_inflight', bucket) or '0') > 0 then
        redis.call('HINCRBY', P .. 'u_inflight', bucket, -1)
      end
    end
  end
  if #ids > 0 then
    redis.call('ZREM', P .. 'leases', unpack(ids))
    redis.call('HDEL', P .. 'lease_info', unpack(ids))
  end
end

-- Leases whose holder stopped renewing them (a crashed replica) give their slot back.
local function expire_leases(now)
  drop_leases(redis.call('ZRANGEBYSCORE', P .. 'leases', '-inf', now))
end

-- Why nothing can be granted now, and in how many ms that may change by itself.
local function blocked(now, limit, window, conc, daily)
  local pause = tonumber(redis.call('GET', P .. 'pause') or '0')
  if pause > now then return 'paused', pause - now end
  if daily > 0 and tonumber(redis.call('GET', day_key(now)) or '0') >= daily then
    return 'daily', DAY_MS - (now % DAY_MS)
  end
  if conc > 0 and redis.call('ZCARD', P .. 'leases') >= conc then
    -- A release pumps at once; the earliest expiry is when a crashed holder's slot returns.
    local first = redis.call('ZRANGE', P .. 'leases', 0, 0, 'WITHSCORES')
    return 'concurrency', math.max(1, tonumber(first[2]) - now + 1)
  end
  if limit > 0 then
    local wait = window_wait(P .. 'grants', limit, window, now)
    if wait > 0 then return 'rate', wait end
  end
  return nil, 0
end

local function grant(now, id, user, replica, limit, ttl)
  if limit > 0 then redis.call('ZADD', P .. 'grants', now, id) end
  redis.call('ZADD', P .. 'leases', now + ttl, id)
  local dk = day_key(now)
  redis.call('INCR', dk)
  redis.call('PEXPIRE', dk, 2 * DAY_MS)
  local rpm, conc, bucket = user_limits(user)
  if rpm > 0 or conc > 0 then
    redis.call('HSET', P .. 'lease_info', id, user .. '\t' .. replica .. '\t' .. bucket)
    redis.call('HINCRBY', P .. 'u_inflight', bucket, 1)
    if rpm > 0 then
      redis.call('ZADD', P .. 'ug:' .. bucket, now, id)
      redis.call('PEXPIRE', P .. 'ug:' .. bucket, USER_WINDOW)
    end
  else
    redis.call('HSET', P .. 'lease_info', id, user .. '\t' .. replica .. '\t')
  end
end

-- ms until a request with `ahead` others in front of it could be granted (rate and pause).
local function estimate(now, ahead, limit, window)
  local wait = math.max(0, tonumber(redis.call('GET', P .. 'pause') or '0') - now)
  if limit > 0 then
    local n = redis.call('ZCARD', P .. 'grants')
    local needed = n + ahead + 1 - limit
    if needed > 0 then
      local cycles = math.floor((needed - 1) / limit)
      local rest = (needed - 1) % limit
      local anchor = now
      if rest < n then
        anchor = tonumber(redis.call('ZRANGE', P .. 'grants', rest, rest, 'WITHSCORES')[2])
      end
      wait = math.max(wait, anchor + window * (cycles + 1) - now)
    end
  end
  return wait
end

-- Grant queued requests, users served round-robin, each user's requests in order. A grant
-- is pushed to the holder replica's list, where its blocking pop picks it up.
-- Returns -1 (queue empty) or ms until it may move again by itself (a release pumps too).
local function pump(now, limit, window, conc, daily, ttl)
  while true do
    local n = redis.call('LLEN', P .. 'q_users')
    if n == 0 then return -1 end
    local reason, wait = blocked(now, limit, window, conc, daily)
    if reason then return wait end
    -- Round-robin; a user held back by their own limits keeps their place but does not
    -- hold up the others.
    local user = nil
    local own_wait = 0
    for _ = 1, n do
      local candidate = redis.call('LINDEX', P .. 'q_users', 0)
      local own, w = user_blocked(now, candidate)
      if not own then user = candidate break end
      if w > 0 and (own_wait == 0 or w < own_wait) then own_wait = w end
      redis.call('LMOVE', P .. 'q_users', P .. 'q_users', 'LEFT', 'RIGHT')
    end
    if not user then return own_wait end
    redis.call('LPOP', P .. 'q_users')
    local qk = P .. 'q:' .. user
    local id = redis.call('LPOP', qk)
    if redis.call('LLEN', qk) > 0 then redis.call('RPUSH', P .. 'q_users', user) end
    if id then
      local info = redis.call('HGET', P .. 'waiters', id)
      if info then
        redis.call('HDEL', P .. 'waiters', id)
        local replica, deadline = string.match(info, '([^\t]*)\t(.*)')
        if tonumber(deadline) >= now then
          grant(now, id, user, replica, limit, ttl)
          local gk = P .. 'granted:' .. replica
          redis.call('RPUSH', gk, id)
          redis.call('PEXPIRE', gk, 120000)
        end
      end
    end
  end
end
