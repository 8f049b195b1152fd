--[[
  Right before an upstream call, in one round trip (a job's first run starts its call in
  begin-run.lua instead).

  KEYS[1] idRecord  the job's id record
  KEYS[2] limiter   BullMQ's limiter key
  KEYS[3] batch     the batch hash (`batch:-` for a job without a batch)
  KEYS[4] calls     the job's calls (see begin-run.lua)
  KEYS[5] tenantCalls       the tenant's calls in flight (zset op id → lease end)
  KEYS[6] tenantMegapixels  the tenant's megapixels by UTC day (hash)
  ARGV[1] JSON { opId, leaseMs, ttlS, limiterMax, batchId?, defaultMaxMp?, tenant, tenantCap?, tenantMaxMp? }
  Returns JSON { verdict = 'ok' } | { verdict = 'final', state } | { verdict = 'rate_limited', ttlMs }
               | { verdict = 'budget', maxMp } | { verdict = 'expired', deadline }
               | { verdict = 'tenant_budget', tenant, maxMp } | { verdict = 'tenant_limited', tenant }

  See includes/open-call.lua. A connection that drops after Redis ran the script but
  before the reply arrived makes ioredis send it again: the op id is already there, it
  counts once.
]]
--- @include "includes/open-call"
local idRecord, limiter, batch, calls = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local tenantKeys = {calls = KEYS[5], megapixels = KEYS[6]}
return cjson.encode(openCall(idRecord, limiter, batch, calls, tenantKeys, cjson.decode(ARGV[1])))
