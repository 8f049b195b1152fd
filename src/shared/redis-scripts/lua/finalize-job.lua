--[[
  Record the job's final state, emit its event and queue its webhook, exactly once per
  generation (see includes/make-final.lua).

  KEYS: the eight of includes/make-final.lua (idRecord, events, batch, batchOpen,
        batchesPending, webhookOutbox, stats, tenantStats)
  ARGV[1] JSON { state, result?, error?, event? = { type, data }, eventsMaxLen, ttlS,
                 batchId?, jobId, webhook? = { url, secret, trace? }, now, tenant? }
          event.data: the event's data as a JSON string, written to the stream as it is
  Returns JSON { recorded, eventId, batchFinished }
]]
--- @include "includes/make-final"
local k = finalisationKeys
return cjson.encode(makeFinal(k, cjson.decode(ARGV[1])))
