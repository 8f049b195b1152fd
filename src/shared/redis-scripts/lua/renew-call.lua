--[[
  The run making a call renews its lease while the call is in flight.

  KEYS[1] calls  the job's calls (see begin-run.lua)
  KEYS[2] tenantCalls  the tenant's calls in flight: the call's lease there moves with it
  ARGV[1] JSON { opId, leaseMs }
  Returns JSON { renewed }: false when the call is no longer in flight (settled, or
  counted orphaned by another run).
]]
--- @include "includes/now-ms"
local calls, tenantCalls = KEYS[1], KEYS[2]
local args = cjson.decode(ARGV[1])

if not tonumber(redis.call('HGET', calls, args.opId) or '') then return cjson.encode({renewed = false}) end
local leaseEnd = nowMs() + tonumber(args.leaseMs)
redis.call('HSET', calls, args.opId, leaseEnd)
redis.call('ZADD', tenantCalls, 'XX', leaseEnd, args.opId)
return cjson.encode({renewed = true})
