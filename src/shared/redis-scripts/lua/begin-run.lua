--[[
  Start of a worker run: count the job's orphaned calls, return its id record and, when
  asked to and the job never started a call (its first run, the common case), start its
  call in the same round trip.

  KEYS[1] idRecord  the job's id record (hash)
  KEYS[2] batch     the batch hash (`batch:-` for a job without a batch)
  KEYS[3] stats     the fleet totals (hash)
  KEYS[4] calls     the job's calls (hash: op id → lease end in ms while in flight,
                    's' settled, 'o' counted orphaned)
  KEYS[5] limiter   BullMQ's limiter key (read only with `start`)
  KEYS[6] tenantCalls       the tenant's calls in flight (see start-call.lua)
  KEYS[7] tenantMegapixels  the tenant's megapixels by UTC day
  KEYS[8] tenantReleased    the tenant's jobs released by fair-dispatch.lua and not begun: this run's job leaves it
  ARGV[1] JSON { jobId, ttlS, batchId?, now, start? }   now: the caller's clock in ms, for the batch's `started`;
          start: { opId, leaseMs, limiterMax, defaultMaxMp?, tenant, tenantCap?, tenantMaxMp? } as for start-call.lua
  Returns JSON { record = the id record's fields by name (read before the start), orphanedCalls,
                 start? = start-call.lua's reply }

  `start` is tried only when `calls` is 0 (no call ever started for this id) and its
  reply is there only then: the run then sends that call, or undoes it with
  release-call.lua when it ends before the request goes out (say the bucket already
  has the images). A final generation, a 429 window or a spent budget start nothing,
  as in start-call.lua. A re-sent script finds its op id and answers as the first time.

  A call whose lease ran out belongs to a run that died or was cut off mid-call: the
  upstream may have generated and billed, so it counts as an attempt and as possibly
  billed, once, on the job and on its batch. A call whose lease still runs belongs to a
  run that is alive (it lost its BullMQ lock, say, and this is a second run of the job):
  it is left in flight for its own run to settle.
  Why a lease and not BullMQ's lock: this run holds the job's lock by now, whether the
  other run is dead or alive, so the lock cannot tell them apart. The run renews the
  lease every LOCK_DURATION_MS/4 and the lease lasts LOCK_DURATION_MS/2, while BullMQ
  renews the lock at most every LOCK_DURATION_MS/2 for LOCK_DURATION_MS: a dead run's
  lease has run out by the time its lock has, which is before another run can begin.
  A live run whose event loop stalls longer than the lease is counted orphaned here; its
  late settlement then adds no second attempt (see settle-call.lua).
]]
--- @include "includes/open-call"
local idRecord, batch, stats, calls, limiter = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local tenantKeys = {calls = KEYS[6], megapixels = KEYS[7]}
local args = cjson.decode(ARGV[1])
if args.jobId then redis.call('ZREM', KEYS[8], args.jobId) end

local now = nowMs()
local orphaned = 0
local inFlight = redis.call('HGETALL', calls)
for i = 1, #inFlight, 2 do
  local leaseEnd = tonumber(inFlight[i + 1])
  if leaseEnd and leaseEnd <= now then
    redis.call('HSET', calls, inFlight[i], 'o')
    orphaned = orphaned + 1
  end
end
if orphaned > 0 then
  redis.call('HINCRBY', idRecord, 'attempts', orphaned)
  redis.call('HINCRBY', idRecord, 'pb', orphaned)
  redis.call('HINCRBY', idRecord, 'settled', orphaned)
  redis.call('HINCRBY', stats, 'possibly_billed', orphaned)
  if args.batchId then redis.call('HINCRBY', batch, 'possibly_billed', orphaned) end
end
redis.call('HSETNX', idRecord, 'gen', '1')
redis.call('EXPIRE', idRecord, args.ttlS)
if args.batchId then redis.call('HSETNX', batch, 'started', args.now) end

local record = {}
local fields = redis.call('HGETALL', idRecord)
for i = 1, #fields, 2 do record[fields[i]] = fields[i + 1] end

local start = nil
if args.start then
  local s = args.start
  local resent = redis.call('HEXISTS', calls, s.opId) == 1
  if resent then record.calls = tostring(tonumber(record.calls) - 1) end
  if tonumber(record.calls or '0') == 0 then
    start = openCall(idRecord, limiter, batch, calls, tenantKeys, {
      opId = s.opId, leaseMs = s.leaseMs, ttlS = args.ttlS, limiterMax = s.limiterMax,
      batchId = args.batchId, defaultMaxMp = s.defaultMaxMp,
      tenant = s.tenant, tenantCap = s.tenantCap, tenantMaxMp = s.tenantMaxMp,
    })
  end
end
return cjson.encode({record = record, orphanedCalls = orphaned, start = start})
