--[[
  GLOBAL_CONCURRENCY=auto: one upstream outcome moves the fleet's concurrency limit
  (the rules: src/worker/adaptive-concurrency.ts). The controller's state and BullMQ's
  own global concurrency (the queue meta `concurrency` field) change in the same step.

  KEYS[1] state   the controller's state (hash: limit, bad, successes, rounds, stepped,
                  decreased_at, cooldown_until, retry_after, decreases)
  KEYS[2] meta    BullMQ's meta hash
  KEYS[3] marker  BullMQ's wake-up marker (zset)
  ARGV[1] JSON { outcome = 'ok' | '429', min, max, now, probeRounds, cooldownMs, retryAfterMs }
  Returns JSON { limit, reason }: reason '' when the limit did not change.
]]
local state, meta, marker = KEYS[1], KEYS[2], KEYS[3]
local args = cjson.decode(ARGV[1])

local min = tonumber(args.min)
local max = tonumber(args.max)
local now = tonumber(args.now)
local limit = tonumber(redis.call('HGET', state, 'limit') or args.min)
local bad = tonumber(redis.call('HGET', state, 'bad') or '0')
local old = limit
local reason = ''
if args.outcome == '429' then
  -- After a cut, 429s of calls sent before it are not news; a raise ends that cooldown.
  if now >= tonumber(redis.call('HGET', state, 'cooldown_until') or '0') then
    local stepped = redis.call('HGET', state, 'stepped') == '1'
    local known = bad > 0
    bad = limit
    if stepped then limit = limit - 1
    elseif known then limit = math.floor(limit * 0.9)
    else limit = math.floor(limit * 0.75) end
    redis.call('HSET', state, 'stepped', '0')
    redis.call('HSET', state, 'decreased_at', now, 'cooldown_until', now + tonumber(args.cooldownMs), 'successes', 0, 'rounds', 0, 'retry_after', args.retryAfterMs)
    redis.call('HINCRBY', state, 'decreases', 1)
    reason = 'a 429: decrease'
  end
else
  local s = redis.call('HINCRBY', state, 'successes', 1)
  if s >= limit then
    -- A whole round at this limit without a 429: it holds.
    redis.call('HSET', state, 'successes', 0, 'stepped', '0')
    if bad > 0 and limit >= bad then bad = limit + 1 end
    if bad == 0 then
      limit = limit * 2
      reason = 'slow start'
    elseif limit < bad - 1 then
      limit = limit + 1
      redis.call('HSET', state, 'stepped', '1')
      reason = 'increase'
    else
      local r = redis.call('HINCRBY', state, 'rounds', 1)
      local since = now - tonumber(redis.call('HGET', state, 'decreased_at') or '0')
      local gap = 60 * tonumber(redis.call('HGET', state, 'retry_after') or '0')
      if r >= tonumber(args.probeRounds) and since >= gap then
        redis.call('HSET', state, 'rounds', 0, 'stepped', '1')
        limit = limit + 1
        reason = 'probe'
      end
    end
  end
end
if limit < min then limit = min end
if limit > max then limit = max end
if limit > old then redis.call('HSET', state, 'cooldown_until', 0) end
redis.call('HSET', state, 'limit', limit, 'bad', bad)
if limit ~= old or redis.call('HGET', meta, 'concurrency') ~= tostring(limit) then
  redis.call('HSET', meta, 'concurrency', limit)
  if limit > old then redis.call('ZADD', marker, 0, '0') end
end
if limit == old then reason = '' end
return cjson.encode({limit = limit, reason = reason})
