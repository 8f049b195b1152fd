--[[
  Right before an upstream call, in one round trip.

  KEYS[1] idRecord  the job's id record
  KEYS[2] limiter   BullMQ's limiter key
  KEYS[3] batch     the batch hash (`batch:-` for a job without a batch)
  KEYS[4] calls     the job's calls (see begin-run.lua)
  ARGV[1] JSON { opId, leaseMs, ttlS, limiterMax, batchId?, defaultMaxMp? }
  Returns JSON { verdict = 'ok' } | { verdict = 'final', state } | { verdict = 'rate_limited', ttlMs }
               | { verdict = 'budget', maxMp }

  This generation is already final (cancelled, or finished by another run) → 'final':
  no call; the call gate (includes/call-gate.lua) says wait → its verdict; else the call
  is counted as started and in flight under its op id until its lease ends → 'ok'.
  This is the point where a cancel and a call exclude each other (cancel-job.lua refuses
  once `started` moved). A connection that drops after Redis ran the script but before
  the reply arrived makes ioredis send it again: the op id is already there, it counts once.
]]
--- @include "includes/now-ms"
--- @include "includes/call-gate"
local idRecord, limiter, batch, calls = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local args = cjson.decode(ARGV[1])

if redis.call('HEXISTS', calls, args.opId) == 1 then return cjson.encode({verdict = 'ok'}) end
local gen = redis.call('HGET', idRecord, 'gen') or '1'
if redis.call('HGET', idRecord, 'final') == gen then
  return cjson.encode({verdict = 'final', state = redis.call('HGET', idRecord, 'state') or ''})
end
local closed = callGate(limiter, batch, args.limiterMax, args.batchId, args.defaultMaxMp)
if closed then return cjson.encode(closed) end
redis.call('HINCRBY', idRecord, 'started', 1)
redis.call('HINCRBY', idRecord, 'calls', 1)
redis.call('HSET', calls, args.opId, nowMs() + tonumber(args.leaseMs))
redis.call('EXPIRE', calls, args.ttlS)
return cjson.encode({verdict = 'ok'})
