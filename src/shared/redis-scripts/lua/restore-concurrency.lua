--[[
  GLOBAL_CONCURRENCY=auto at a worker's start: continue from the limit the fleet learned
  (a restart must not reset it), or start at the minimum.

  KEYS[1] state  the adaptive controller's state (hash)
  KEYS[2] meta   BullMQ's meta hash
  ARGV[1] JSON { min }
  Returns JSON { limit }
]]
local state, meta = KEYS[1], KEYS[2]
local args = cjson.decode(ARGV[1])

local limit = tonumber(redis.call('HGET', state, 'limit') or args.min)
redis.call('HSET', state, 'limit', limit)
redis.call('HSET', meta, 'concurrency', limit)
return cjson.encode({limit = limit})
