--[[
  Re-open a failed, cancelled or expired id for another run: a new generation with a fresh
  attempt budget, back among its batch's open jobs.

  KEYS[1] idRecord   the job's id record
  KEYS[2] batch      the batch hash (`batch:-` for a job without a batch)
  KEYS[3] batchOpen  the batch's open set
  ARGV[1] JSON { jobId, batchId?, ttlS }
  Returns JSON { gen }: the new generation, or 0 when the id is not failed or cancelled
  or expired (then nothing changes).
]]
local idRecord, batch, batchOpen = KEYS[1], KEYS[2], KEYS[3]
local args = cjson.decode(ARGV[1])

local gen = redis.call('HGET', idRecord, 'gen') or '1'
local state = redis.call('HGET', idRecord, 'state')
if redis.call('HGET', idRecord, 'final') ~= gen or (state ~= 'failed' and state ~= 'cancelled' and state ~= 'expired') then
  return cjson.encode({gen = 0})
end
local g = redis.call('HINCRBY', idRecord, 'gen', 1)
redis.call('HDEL', idRecord, 'state', 'final', 'result', 'error', 'finished')
redis.call('HSET', idRecord, 'attempts', 0, 'pb', 0, 'started', 0, 'settled', 0)
redis.call('EXPIRE', idRecord, args.ttlS)
if args.batchId and redis.call('SADD', batchOpen, args.jobId) == 1 then
  redis.call('HINCRBY', batch, state, -1)
  redis.call('HDEL', batch, 'finished')
end
return cjson.encode({gen = g})
