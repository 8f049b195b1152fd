--[[
  Emit batch.completed for every unfinished → finished transition not yet emitted, once
  (`fin_gen` counts transitions, `emitted_gen` how many have had their event).

  KEYS[1] batch           the batch hash
  KEYS[2] events          the events stream
  KEYS[3] batchesPending  batches that owe batch.completed
  KEYS[4] webhookOutbox   webhook deliveries waiting to be queued
  ARGV[1] JSON { batchId, eventsMaxLen, data?, now }
          data: the event's data as a JSON string; absent: only check what is owed
  Returns JSON { eventId = '' } when nothing was owed (the batch leaves the pending set),
  { owed = true } when data was absent and a transition is owed, else { eventId }.
  Without data the batch is dropped from the pending set only when nothing is owed
  (atomically, so a transition that happens meanwhile is never lost).
]]
local batch, events, batchesPending, webhookOutbox = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local args = cjson.decode(ARGV[1])

local fin = tonumber(redis.call('HGET', batch, 'fin_gen') or '0')
local emitted = tonumber(redis.call('HGET', batch, 'emitted_gen') or '0')
if emitted >= fin then
  redis.call('SREM', batchesPending, args.batchId)
  return cjson.encode({eventId = ''})
end
if not args.data then return cjson.encode({owed = true}) end
redis.call('HSET', batch, 'emitted_gen', fin)
local eventId = redis.call('XADD', events, 'MAXLEN', '~', args.eventsMaxLen, '*', 'type', 'batch.completed', 'data', args.data)
local url = redis.call('HGET', batch, 'webhook_url')
if url then
  redis.call('RPUSH', webhookOutbox, cjson.encode({
    id = eventId, url = url, secret = redis.call('HGET', batch, 'webhook_secret'), type = 'batch.completed',
    data = args.data, batchId = args.batchId, at = tonumber(args.now),
  }))
end
redis.call('SREM', batchesPending, args.batchId)
return cjson.encode({eventId = eventId})
