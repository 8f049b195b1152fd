--[[
  One call, one settlement: the ledger of the job, of the fleet and of its batch move together.

  KEYS[1] idRecord  the job's id record
  KEYS[2] batch     the batch hash (`batch:-` for a job without a batch)
  KEYS[3] stats     the fleet totals
  KEYS[4] calls     the job's calls (see begin-run.lua)
  KEYS[5] tenantStats  the per-tenant counters (fields `{tenant}:{name}`)
  KEYS[6] tenantCalls       the tenant's calls in flight: the call leaves it
  KEYS[7] tenantMegapixels  the tenant's megapixels by UTC day (Redis's clock), which
                            TENANT_MAX_MEGAPIXELS_PER_DAY is checked against: the reported ones are added
  ARGV[1] JSON { opId, spendsAttempt, ambiguous, ttlS, batchId?, outputMp, inputMp, costMicroUsd, tenant?, day? }
          tenant, day: the job's tenant (absent: `default`) and the caller's UTC day
          (`YYYY-MM-DD`), under which the reported megapixels and cost are added up for `fluxq tenants`
          opId: the call's operation id (from start-call.lua); spendsAttempt, ambiguous: booleans
  Returns JSON { attempts, possiblyBilled }: the job's ledger after it.

  A call already settled (ioredis re-sent this script) changes nothing. A call a later
  run already counted orphaned (an attempt, possibly billed) adds no attempt and no
  possibly billed call again, but its reported megapixels and cost are still recorded.
]]
--- @include "includes/now-ms"
local idRecord, batch, stats, calls, tenantStats, tenantCalls, tenantMegapixels = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local args = cjson.decode(ARGV[1])

local function ledgerOfJob()
  return cjson.encode({
    attempts = tonumber(redis.call('HGET', idRecord, 'attempts') or '0'),
    possiblyBilled = tonumber(redis.call('HGET', idRecord, 'pb') or '0'),
  })
end

local was = redis.call('HGET', calls, args.opId)
if was == 's' then return ledgerOfJob() end
redis.call('ZREM', tenantCalls, args.opId)
local reportedMp = tonumber(args.outputMp) + tonumber(args.inputMp)
if reportedMp > 0 then
  local day = math.floor(nowMs() / 86400000)
  redis.call('HINCRBYFLOAT', tenantMegapixels, tostring(day), reportedMp)
  redis.call('HDEL', tenantMegapixels, tostring(day - 2))
  redis.call('EXPIRE', tenantMegapixels, 3 * 86400)
end
redis.call('HSET', calls, args.opId, 's')
redis.call('EXPIRE', calls, args.ttlS)
local counted = was ~= 'o'
if counted then
  redis.call('HINCRBY', idRecord, 'settled', 1)
  redis.call('HINCRBY', idRecord, 'attempts', args.spendsAttempt and 1 or 0)
  redis.call('HINCRBY', idRecord, 'pb', args.ambiguous and 1 or 0)
end
redis.call('EXPIRE', idRecord, args.ttlS)
local function ledger(key)
  if counted and args.ambiguous then redis.call('HINCRBY', key, 'possibly_billed', 1) end
  if tonumber(args.outputMp) > 0 or tonumber(args.inputMp) > 0 then
    redis.call('HINCRBYFLOAT', key, 'output_mp', args.outputMp)
    redis.call('HINCRBYFLOAT', key, 'input_mp', args.inputMp)
    redis.call('HINCRBY', key, 'cost_micro_usd', args.costMicroUsd)
  end
end
ledger(stats)
if args.day and (tonumber(args.outputMp) > 0 or tonumber(args.inputMp) > 0) then
  local t = (args.tenant or 'default') .. ':'
  redis.call('HINCRBYFLOAT', tenantStats, t .. 'mp:' .. args.day, tonumber(args.outputMp) + tonumber(args.inputMp))
  redis.call('HINCRBY', tenantStats, t .. 'cost:' .. args.day, args.costMicroUsd)
end
if args.batchId then ledger(batch) end
return ledgerOfJob()
