--[[
  Add member jobs (and the batch's options) to a batch: new members raise the total and
  join the open set; the batch is unfinished again.

  KEYS[1] batch       the batch hash
  KEYS[2] batchJobs   the batch's members (set)
  KEYS[3] batchOpen   the batch's open set
  ARGV[1] JSON { now, maxMp?, webhook? = { url, secret }, jobIds = [...], tenant? }
          tenant: whose batch it is (SPEC §8); the first one given is kept
  Returns JSON { added }: how many members were new.
]]
local batch, batchJobs, batchOpen = KEYS[1], KEYS[2], KEYS[3]
local args = cjson.decode(ARGV[1])

redis.call('HSETNX', batch, 'created', args.now)
if args.tenant then redis.call('HSETNX', batch, 'tenant', args.tenant) end
if args.maxMp then redis.call('HSET', batch, 'max_mp', args.maxMp) end
if args.webhook then redis.call('HSET', batch, 'webhook_url', args.webhook.url, 'webhook_secret', args.webhook.secret) end
local added = 0
for _, jobId in ipairs(args.jobIds) do
  if redis.call('SADD', batchJobs, jobId) == 1 then
    added = added + 1
    redis.call('SADD', batchOpen, jobId)
  end
end
if added > 0 then
  redis.call('HINCRBY', batch, 'total', added)
  redis.call('HDEL', batch, 'finished')
end
return cjson.encode({added = added})
