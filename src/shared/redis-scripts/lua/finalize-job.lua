--[[
  Record the job's final state, emit its event and queue its webhook, exactly once per
  generation (see includes/make-final.lua).

  KEYS[1] idRecord        the job's id record
  KEYS[2] events          the events stream
  KEYS[3] batch           the batch hash (`batch:-` for a job without a batch)
  KEYS[4] batchOpen       the batch's open set
  KEYS[5] batchesPending  batches that owe batch.completed
  KEYS[6] webhookOutbox   webhook deliveries waiting to be queued
  KEYS[7] stats           the fleet totals
  ARGV[1] JSON { state, result?, error?, event? = { type, data }, eventsMaxLen, ttlS,
                 batchId?, jobId, webhook? = { url, secret }, now }
          event.data: the event's data as a JSON string, written to the stream as it is
  Returns JSON { recorded, eventId, batchFinished }
]]
--- @include "includes/make-final"
local k = {
  idRecord = KEYS[1], events = KEYS[2], batch = KEYS[3], batchOpen = KEYS[4],
  batchesPending = KEYS[5], webhookOutbox = KEYS[6], stats = KEYS[7],
}
return cjson.encode(makeFinal(k, cjson.decode(ARGV[1])))
