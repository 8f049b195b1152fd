--[[
  End a job whose deadline passed before its first upstream call started (SPEC §8): final
  state `expired`, its `job.expired` event and webhook and its batch's count, in one step
  through includes/make-final.lua, so a job expires exactly once whether the deadline
  sweeper or a worker at call start gets there first, and never after a call started.

  KEYS: the eight of includes/make-final.lua (idRecord, events, batch, batchOpen,
        batchesPending, webhookOutbox, stats, tenantStats), then
  KEYS[9] deadlines  the zset of deadlines (job id → ms)
  ARGV[1] JSON { jobId, batchId?, tenant?, deadline, error, data, webhook? = { url, secret },
                 eventsMaxLen, ttlS, now }
          deadline: the job's deadline (ms) as the caller read it from the zset; error:
          the reason; data: the job.expired event's data as a JSON string
  Returns JSON { outcome, eventId, batchFinished }; outcome:
    'expired'  this call ended the job
    'final'    the generation already was final (it leaves the zset)
    'started'  an upstream call started in it: it finishes normally (it leaves the zset)
    'not_due'  its deadline (by Redis's clock) has not passed, or it moved meanwhile
               (the job was enqueued again with another deadline): nothing changes
    'gone'     the job is not in the zset
]]
--- @include "includes/now-ms"
--- @include "includes/make-final"
local k = finalisationKeys
local deadlines = KEYS[9]
local args = cjson.decode(ARGV[1])

local function reply(outcome, done)
  return cjson.encode({outcome = outcome, eventId = done and done.eventId or '', batchFinished = done and done.batchFinished or false})
end

local score = tonumber(redis.call('ZSCORE', deadlines, args.jobId) or '')
if not score then return reply('gone') end
local gen = redis.call('HGET', k.idRecord, 'gen') or '1'
if redis.call('HGET', k.idRecord, 'final') == gen then
  redis.call('ZREM', deadlines, args.jobId)
  return reply('final')
end
if tonumber(redis.call('HGET', k.idRecord, 'started') or '0') > 0 then
  redis.call('ZREM', deadlines, args.jobId)
  return reply('started')
end
if score ~= tonumber(args.deadline) or score > nowMs() then return reply('not_due') end
redis.call('ZREM', deadlines, args.jobId)
local done = makeFinal(k, {
  state = 'expired', error = args.error, event = {type = 'job.expired', data = args.data},
  webhook = args.webhook, jobId = args.jobId, batchId = args.batchId, tenant = args.tenant,
  eventsMaxLen = args.eventsMaxLen, ttlS = args.ttlS, now = args.now,
})
return reply('expired', done)
