--[[
  Move an unusable webhook outbox entry from the relaying list to the capped dead-letter
  list, once even when two relays find the same entry.

  KEYS[1] relaying  outbox entries being moved into the webhook queue (list)
  KEYS[2] dead      the dead-letter list
  ARGV[1] JSON { entry, keep }   keep: how many entries the dead-letter list keeps (the newest)
  Returns JSON { moved }: false when another relay moved it first.
]]
local relaying, dead = KEYS[1], KEYS[2]
local args = cjson.decode(ARGV[1])

if redis.call('LREM', relaying, 1, args.entry) == 1 then
  redis.call('RPUSH', dead, args.entry)
  redis.call('LTRIM', dead, -tonumber(args.keep), -1)
  return cjson.encode({moved = true})
end
return cjson.encode({moved = false})
