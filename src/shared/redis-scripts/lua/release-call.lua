--[[
  Undo a call start whose request was never sent (begin-run.lua started it with the run,
  then the run found the images already stored, or its inputs failed): exactly what
  includes/open-call.lua counted, and nothing else — no attempt, nothing possibly billed.

  KEYS[1] idRecord  the job's id record
  KEYS[2] calls     the job's calls (see begin-run.lua)
  KEYS[3] tenantCalls  the tenant's calls in flight: the call leaves it
  ARGV[1] JSON { opId }
  Returns JSON { released }: false when the call is not in flight under this op id:
  already released (ioredis re-sent this script: it applies once), or counted orphaned
  by another run after the lease ran out (then it stays counted, as a late
  settlement would: see settle-call.lua).
]]
local idRecord, calls, tenantCalls = KEYS[1], KEYS[2], KEYS[3]
local args = cjson.decode(ARGV[1])

if not tonumber(redis.call('HGET', calls, args.opId) or '') then return cjson.encode({released = false}) end
redis.call('HDEL', calls, args.opId)
redis.call('ZREM', tenantCalls, args.opId)
redis.call('HINCRBY', idRecord, 'started', -1)
redis.call('HINCRBY', idRecord, 'calls', -1)
return cjson.encode({released = true})
