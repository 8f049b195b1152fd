--[[
  Fair share (SPEC §8): park new jobs in their flows, then release the next jobs into
  BullMQ's wait list by virtual time, keeping about `window` jobs waiting there.

  KEYS[1] levels       priority levels with parked jobs (zset level → level)
  KEYS[2] clock        virtual times (hash: `{level}` → the level's, `{level}:{tenant}` → the tenant's among its batches)
  KEYS[3] meta         BullMQ's meta hash (paused flag, global concurrency)
  KEYS[4] wait         BullMQ's wait list
  KEYS[5] prioritized  BullMQ's prioritized zset
  KEYS[6] active       BullMQ's active list
  KEYS[7] delayed      BullMQ's delayed zset (parked jobs are there, due at PARKED_AT_MS)
  KEYS[8] priorityCounter  BullMQ's priority counter
  KEYS[9] bullEvents   BullMQ's events stream
  KEYS[10] marker      BullMQ's wake-up marker
  ARGV[1] JSON { park? = [{ id, level, tenant, batch }], window, weights? = { tenant = 1..1000 },
          caps? = { tenant = n }, fairBase, tenantBase, jobBase, parkedAt, parkedMinScore,
          stride, releasedGraceMs }
  Returns JSON { parked, released, waiting }: jobs parked and released now, and jobs
  waiting in BullMQ after it.

  Flows: per priority level (BullMQ's priority, 0 first), tenants ordered by pass (zset
  `{fairBase}{level}:tenants`); per tenant its batches by pass (`…:t:{tenant}:batches`);
  per batch a FIFO list of job ids (`…:t:{tenant}:b:{batch}`). Releasing one job takes
  the lowest level with a backlog, its tenant with the lowest pass, that tenant's batch
  with the lowest pass, and the head of that batch (stride scheduling): the tenant's pass
  grows by stride / weight, the batch's by 1. The level's virtual time is the pass of the
  tenant last served (the tenant's, of the batch last served); a flow that becomes
  backlogged starts at that virtual time, not at 0, so an idle tenant banks no credit.
  Each step is O(log n) (no scan of the backlog).

  How many: `window` = BullMQ's global concurrency when set (GLOBAL_CONCURRENCY or the
  adaptive limit), else the larger of the caller's (its WORKER_CONCURRENCY) and the jobs
  active now (the fleet's current round); the script releases until the wait list and
  prioritized set hold `window` jobs, and none while the queue is paused. So starts
  follow the fair order within about one round of GLOBAL_CONCURRENCY starts. Priority
  levels go first strictly: with the window full, a parked job of a better level than the
  worst job waiting in `prioritized` puts that one back, parked at the head of its flow.

  Caps: a tenant in `caps` (TENANT_MAX_CONCURRENCY) is skipped while its calls in flight
  (`{tenantBase}{tenant}:calls`, by lease) plus its jobs released and not yet begun
  (`…:released`, which begin-run.lua empties; an entry older than `releasedGraceMs`
  whose job is gone, finished or delayed again is dropped) reach its cap.

  An id whose job is no longer parked (cancelled and removed, or released before) is
  dropped from its flow without taking a turn. Released jobs are moved as BullMQ's
  promote-9.lua moves a delayed job (see src/shared/bullmq-internals.ts).
]]
--- @include "includes/now-ms"
local levels, clock, meta, wait, prioritized, active, delayed, pc, bullEvents, marker =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9], KEYS[10]
local args = cjson.decode(ARGV[1])
local weights = args.weights or {}
local caps = args.caps or {}
local hasCaps = next(caps) ~= nil
local parkedMin = tonumber(args.parkedMinScore)
local stride = tonumber(args.stride)
local now = nowMs()

local function tenantsKey(level) return args.fairBase .. level .. ':tenants' end
local function batchesKey(level, tenant) return args.fairBase .. level .. ':t:' .. tenant .. ':batches' end
local function flowKey(level, tenant, batch) return args.fairBase .. level .. ':t:' .. tenant .. ':b:' .. batch end

-- Park.
local parked = 0
for _, p in ipairs(args.park or {}) do
  local level = tostring(p.level)
  local tk, bk = tenantsKey(level), batchesKey(level, p.tenant)
  redis.call('RPUSH', flowKey(level, p.tenant, p.batch), p.id)
  if not redis.call('ZSCORE', bk, p.batch) then
    redis.call('ZADD', bk, tonumber(redis.call('HGET', clock, level .. ':' .. p.tenant) or '0'), p.batch)
  end
  if not redis.call('ZSCORE', tk, p.tenant) then
    redis.call('ZADD', tk, tonumber(redis.call('HGET', clock, level) or '0'), p.tenant)
  end
  redis.call('ZADD', levels, tonumber(level), level)
  parked = parked + 1
end

-- How many to release.
local m = redis.call('HMGET', meta, 'paused', 'concurrency')
local waiting = redis.call('LLEN', wait) + redis.call('ZCARD', prioritized)
if m[1] then return cjson.encode({parked = parked, released = 0, waiting = waiting}) end
local window = tonumber(m[2] or '') or math.max(tonumber(args.window), redis.call('LLEN', active))

local function isParked(id)
  local score = redis.call('ZSCORE', delayed, id)
  return score and tonumber(score) >= parkedMin
end

-- A capped tenant's released-not-begun jobs, after dropping entries whose job went elsewhere.
local function releasedCount(tenant)
  local rk = args.tenantBase .. tenant .. ':released'
  local old = redis.call('ZRANGEBYSCORE', rk, '-inf', now - tonumber(args.releasedGraceMs), 'LIMIT', 0, 10)
  for _, id in ipairs(old) do
    local jobKey = args.jobBase .. id
    if redis.call('EXISTS', jobKey) == 0 or redis.call('HEXISTS', jobKey, 'finishedOn') == 1 or redis.call('ZSCORE', delayed, id) then
      redis.call('ZREM', rk, id)
    end
  end
  return redis.call('ZCARD', rk)
end

local function atCap(tenant)
  local cap = tonumber(caps[tenant] or '')
  if not cap then return false end
  local ck = args.tenantBase .. tenant .. ':calls'
  redis.call('ZREMRANGEBYSCORE', ck, '-inf', now)
  return redis.call('ZCARD', ck) + releasedCount(tenant) >= cap
end

local function release(id, tenant)
  redis.call('ZREM', delayed, id)
  local jobKey = args.jobBase .. id
  local priority = tonumber(redis.call('HGET', jobKey, 'priority')) or 0
  if priority == 0 then
    redis.call('LPUSH', wait, id)
  else
    redis.call('ZADD', prioritized, priority * 0x100000000 + redis.call('INCR', pc) % 0x100000000, id)
  end
  redis.call('XADD', bullEvents, 'MAXLEN', '~', 10000, '*', 'event', 'waiting', 'jobId', id, 'prev', 'delayed')
  redis.call('HSET', jobKey, 'delay', 0)
  if caps[tenant] then redis.call('ZADD', args.tenantBase .. tenant .. ':released', now, id) end
end

local skipsLeft = 1000

-- The head job of the tenant's lowest-pass batch, passes moved on; nil when the tenant has
-- no parked job left (it leaves the level).
local function takeFrom(level, tenant, tenantPass)
  local tk, bk = tenantsKey(level), batchesKey(level, tenant)
  local function leave()
    redis.call('ZREM', tk, tenant)
    if redis.call('ZCARD', tk) == 0 then redis.call('ZREM', levels, level) end
  end
  while skipsLeft > 0 do
    local b = redis.call('ZRANGE', bk, 0, 0, 'WITHSCORES')
    if #b == 0 then
      leave()
      return nil
    end
    local batch, batchPass = b[1], tonumber(b[2])
    local fk = flowKey(level, tenant, batch)
    local id = redis.call('LPOP', fk)
    while id and not isParked(id) and skipsLeft > 0 do
      skipsLeft = skipsLeft - 1
      id = redis.call('LPOP', fk)
    end
    if id and isParked(id) then
      if redis.call('LLEN', fk) == 0 then redis.call('ZREM', bk, batch) else redis.call('ZADD', bk, batchPass + 1, batch) end
      redis.call('HSET', clock, level .. ':' .. tenant, batchPass)
      if redis.call('ZCARD', bk) == 0 then
        leave()
      else
        local w = tonumber(weights[tenant] or '1') or 1
        redis.call('ZADD', tk, tenantPass + stride / w, tenant)
      end
      redis.call('HSET', clock, level, tenantPass)
      return id
    end
    if id then return nil end -- out of skips: the rest waits for the next run
    redis.call('ZREM', bk, batch) -- only stale ids were left in this batch
  end
  return nil
end

-- The next job to release: lowest level first, then the lowest-pass tenant not at its cap.
local function nextJob()
  for _, level in ipairs(redis.call('ZRANGE', levels, 0, -1)) do
    local tk = tenantsKey(level)
    local ts = hasCaps and redis.call('ZRANGE', tk, 0, -1, 'WITHSCORES') or redis.call('ZRANGE', tk, 0, 0, 'WITHSCORES')
    local i = 1
    while i <= #ts and skipsLeft > 0 do
      local tenant, pass = ts[i], tonumber(ts[i + 1])
      if not atCap(tenant) then
        local id = takeFrom(level, tenant, pass)
        if id then return id, tenant end
        if not hasCaps then
          -- That tenant left the level: look at the new lowest.
          ts = redis.call('ZRANGE', tk, 0, 0, 'WITHSCORES')
          i = -1
        end
      end
      i = i + 2
    end
    if redis.call('ZCARD', tk) == 0 then redis.call('ZREM', levels, level) end
    if skipsLeft <= 0 then return nil end
  end
  return nil
end

-- Put a released job of a worse priority level back in front of its flow, parked: a better
-- level's jobs must not wait behind it (BullMQ would run that one first).
local function repark(id, level)
  redis.call('ZREM', prioritized, id)
  local jobKey = args.jobBase .. id
  local ok, data = pcall(cjson.decode, redis.call('HGET', jobKey, 'data') or '{}')
  if not ok or type(data) ~= 'table' then data = {} end
  local tenant = (type(data.tenant) == 'string' and data.tenant ~= '') and data.tenant or 'default'
  local batch = (type(data.batch) == 'string' and data.batch ~= '') and data.batch or '-'
  level = tostring(level)
  redis.call('LPUSH', flowKey(level, tenant, batch), id)
  redis.call('ZADD', batchesKey(level, tenant), 'NX', tonumber(redis.call('HGET', clock, level .. ':' .. tenant) or '0'), batch)
  redis.call('ZADD', tenantsKey(level), 'NX', tonumber(redis.call('HGET', clock, level) or '0'), tenant)
  redis.call('ZADD', levels, tonumber(level), level)
  redis.call('ZADD', delayed, tonumber(args.parkedAt) * 0x1000, id)
  redis.call('HSET', jobKey, 'delay', tonumber(args.parkedAt) - now)
  redis.call('ZREM', args.tenantBase .. tenant .. ':released', id)
end

-- With the window full, a parked job of a better level than the worst one waiting
-- (prioritized: score = priority * 2^32 + n) takes its place.
local function preemptable()
  local best = redis.call('ZRANGE', levels, 0, 0, 'WITHSCORES')
  local worst = redis.call('ZRANGE', prioritized, -1, -1, 'WITHSCORES')
  if #best == 0 or #worst == 0 then return nil end
  local worstLevel = math.floor(tonumber(worst[2]) / 0x100000000)
  if tonumber(best[2]) < worstLevel then return worst[1], worstLevel end
  return nil
end

local released, preempted = 0, 0
while true do
  if waiting + released >= window then
    local id, level = nil, nil
    if preempted < window then id, level = preemptable() end
    if not id then break end
    repark(id, level)
    preempted = preempted + 1
    waiting = waiting - 1
  end
  local id, tenant = nextJob()
  if not id then break end
  release(id, tenant)
  released = released + 1
end
-- Wake an idle worker whenever jobs wait and the queue has room (BullMQ adds this marker
-- only when it adds a job itself): a worker that found the wait list empty blocks on the
-- marker, and jobs released while the queue was at its global concurrency added none.
if waiting + released > 0 and not (m[2] and redis.call('LLEN', active) >= tonumber(m[2])) then
  redis.call('ZADD', marker, 0, '0')
end
return cjson.encode({parked = parked, released = released, waiting = waiting + released})
