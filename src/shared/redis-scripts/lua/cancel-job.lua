--[[
  Cancel the job's current generation unless it already ended or an upstream call has
  started in it, in one step with the check.

  KEYS: the eight of includes/make-final.lua (idRecord, events, batch, batchOpen,
        batchesPending, webhookOutbox, stats, tenantStats)
  ARGV[1] JSON { jobId, batchId?, ttlS, eventsMaxLen, now, tenant? }
  Returns JSON { outcome = 'cancelled' | 'final' | 'active', batchFinished }

  'final': this generation already ended; 'active': a call has started in it. Check and
  cancel are one step, and start-call.lua refuses a final generation: of a cancel and a
  call start, whichever Redis runs first wins, so a job is either cancelled with no
  upstream call or reported active, never both cancelled and paid. A worker may hold the
  job (picked up, no call yet): it finds it cancelled at start-call and ends the run
  without a call. A cancel writes no event and no webhook.
]]
--- @include "includes/make-final"
local k = finalisationKeys
local args = cjson.decode(ARGV[1])

local gen = redis.call('HGET', k.idRecord, 'gen') or '1'
if redis.call('HGET', k.idRecord, 'final') == gen then return cjson.encode({outcome = 'final', batchFinished = false}) end
if tonumber(redis.call('HGET', k.idRecord, 'started') or '0') > 0 then return cjson.encode({outcome = 'active', batchFinished = false}) end
local done = makeFinal(k, {
  state = 'cancelled', jobId = args.jobId, batchId = args.batchId, ttlS = args.ttlS,
  eventsMaxLen = args.eventsMaxLen, now = args.now, tenant = args.tenant,
})
return cjson.encode({outcome = 'cancelled', batchFinished = done.batchFinished})
