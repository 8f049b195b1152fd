--[[
  makeFinal(k, args): make the job's current generation final, once. Shared by
  finalize-job.lua and cancel-job.lua, whose KEYS are these (as `finalisationKeys`):
  KEYS[1] idRecord        the job's id record
  KEYS[2] events          the events stream
  KEYS[3] batch           the batch hash (`batch:-` for a job without a batch)
  KEYS[4] batchOpen       the batch's open set
  KEYS[5] batchesPending  batches that owe batch.completed
  KEYS[6] webhookOutbox   webhook deliveries waiting to be queued
  KEYS[7] stats           the fleet totals
  KEYS[8] tenantStats     the per-tenant counters (fields `{tenant}:{name}`)
  args: { state, result?, error?, event? = { type, data }, eventsMaxLen, ttlS, batchId?,
          jobId, webhook? = { url, secret, trace? }, now, tenant? }
  tenant: the job's tenant (absent: `default`); its count of the final state goes up
  and its count of open jobs down, in the same step.
  Returns { recorded, eventId, batchFinished }: recorded false (and nothing written) when
  the generation already was final. The final state, the event (XADD), the job's webhook
  (an outbox entry written with its event) and the batch counts move in one step. A job
  leaves its batch's open set exactly once per generation, so counts never double; the
  run that empties the set marks the batch finished (once per unfinished → finished
  transition) and owes batch.completed (the batch joins the pending set).
]]
local finalisationKeys = {
  idRecord = KEYS[1], events = KEYS[2], batch = KEYS[3], batchOpen = KEYS[4],
  batchesPending = KEYS[5], webhookOutbox = KEYS[6], stats = KEYS[7], tenantStats = KEYS[8],
}

local function makeFinal(k, args)
  local gen = redis.call('HGET', k.idRecord, 'gen') or '1'
  if redis.call('HGET', k.idRecord, 'final') == gen then return {recorded = false, eventId = '', batchFinished = false} end
  redis.call('HSET', k.idRecord, 'gen', gen, 'final', gen, 'state', args.state, 'result', args.result or '', 'error', args.error or '', 'finished', args.now)
  redis.call('EXPIRE', k.idRecord, args.ttlS)
  redis.call('HINCRBY', k.stats, args.state, 1)
  local tenant = args.tenant or 'default'
  redis.call('HINCRBY', k.tenantStats, tenant .. ':' .. args.state, 1)
  if tonumber(redis.call('HINCRBY', k.tenantStats, tenant .. ':open', -1)) < 0 then
    redis.call('HSET', k.tenantStats, tenant .. ':open', 0)
  end
  local eventId = ''
  if args.event then
    eventId = redis.call('XADD', k.events, 'MAXLEN', '~', args.eventsMaxLen, '*', 'type', args.event.type, 'data', args.event.data)
    if args.webhook then
      redis.call('RPUSH', k.webhookOutbox, cjson.encode({
        id = eventId, url = args.webhook.url, secret = args.webhook.secret, type = args.event.type,
        data = args.event.data, jobId = args.jobId, at = tonumber(args.now), trace = args.webhook.trace,
      }))
    end
  end
  local batchFinished = false
  if args.batchId and redis.call('SREM', k.batchOpen, args.jobId) == 1 then
    redis.call('HINCRBY', k.batch, args.state, 1)
    if redis.call('SCARD', k.batchOpen) == 0 then
      redis.call('HINCRBY', k.batch, 'fin_gen', 1)
      redis.call('HSET', k.batch, 'finished', args.now)
      redis.call('SADD', k.batchesPending, args.batchId)
      batchFinished = true
    end
  end
  return {recorded = true, eventId = eventId, batchFinished = batchFinished}
end
