--[[
  The run making a call renews its lease while the call is in flight.

  KEYS[1] calls  the job's calls (see begin-run.lua)
  ARGV[1] JSON { opId, leaseMs }
  Returns JSON { renewed }: false when the call is no longer in flight (settled, or
  counted orphaned by another run).
]]
--- @include "includes/now-ms"
local calls = KEYS[1]
local args = cjson.decode(ARGV[1])

if not tonumber(redis.call('HGET', calls, args.opId) or '') then return cjson.encode({renewed = false}) end
redis.call('HSET', calls, args.opId, nowMs() + tonumber(args.leaseMs))
return cjson.encode({renewed = true})
