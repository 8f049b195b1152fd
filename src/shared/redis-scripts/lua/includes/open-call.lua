--[[
  Count an upstream call as started, unless it must not be made: the generation is
  already final (cancelled, or finished by another run) → {verdict = 'final', state}; the
  call gate (includes/call-gate.lua) says wait → its verdict; else the call is counted as
  started (`started`, `calls`) and in flight under its op id until its lease ends →
  {verdict = 'ok'}; the tenant's limits (includes/tenant-gate.lua) likewise, and an ok
  call is also in flight in the tenant's calls (`tk.calls`, op id → lease end), which
  TENANT_MAX_CONCURRENCY counts fleet-wide. A generation that started no call yet and
  whose `deadline` (ms, SPEC §8) has passed by Redis's clock → {verdict = 'expired',
  deadline}: the caller ends it with expire-job.lua, without a call; a generation with a
  call started keeps going. An op id already there (ioredis re-sent the script) counts once.
  This is the point where a cancel and a call exclude each other (cancel-job.lua refuses
  once `started` moved); release-call.lua undoes it for a call never sent.
  idRecord, limiter, batch, calls: as in start-call.lua; tk: { calls, megapixels } the
  tenant's keys; a: { opId, leaseMs, ttlS, limiterMax, batchId?, defaultMaxMp?, tenant,
  tenantCap?, tenantMaxMp? }.
]]
--- @include "includes/now-ms"
--- @include "includes/call-gate"
--- @include "includes/tenant-gate"
local function openCall(idRecord, limiter, batch, calls, tk, a)
  if redis.call('HEXISTS', calls, a.opId) == 1 then return {verdict = 'ok'} end
  local gen = redis.call('HGET', idRecord, 'gen') or '1'
  if redis.call('HGET', idRecord, 'final') == gen then
    return {verdict = 'final', state = redis.call('HGET', idRecord, 'state') or ''}
  end
  local deadline = tonumber(redis.call('HGET', idRecord, 'deadline') or '')
  if deadline and tonumber(redis.call('HGET', idRecord, 'started') or '0') == 0 and nowMs() >= deadline then
    return {verdict = 'expired', deadline = deadline}
  end
  local closed = callGate(limiter, batch, a.limiterMax, a.batchId, a.defaultMaxMp)
  if closed then return closed end
  local now = nowMs()
  closed = tenantGate(tk, a, now)
  if closed then return closed end
  redis.call('HINCRBY', idRecord, 'started', 1)
  redis.call('HINCRBY', idRecord, 'calls', 1)
  redis.call('HSET', calls, a.opId, now + tonumber(a.leaseMs))
  redis.call('EXPIRE', calls, a.ttlS)
  redis.call('ZADD', tk.calls, now + tonumber(a.leaseMs), a.opId)
  redis.call('EXPIRE', tk.calls, a.ttlS)
  return {verdict = 'ok'}
end
