--[[
  The gate in front of every upstream call, in the same script that counts the call:
  inside a 429 back-off window of the fleet (queue.rateLimit sets BullMQ's limiter above
  its max) → {verdict = 'rate_limited', ttlMs}; the batch's reported megapixels reached
  its budget (its own `max_mp`, else the default) → {verdict = 'budget', maxMp}; else nil.
  limiter: BullMQ's limiter key; batch: the batch hash; limiterMax: the limiter max in
  force; batchId: nil without a batch; defaultMaxMp: nil for none.
]]
local function callGate(limiter, batch, limiterMax, batchId, defaultMaxMp)
  local v = redis.call('GET', limiter)
  if v and tonumber(v) > tonumber(limiterMax) then
    local ttl = redis.call('PTTL', limiter)
    if ttl > 0 then return {verdict = 'rate_limited', ttlMs = ttl} end
  end
  if batchId then
    local b = redis.call('HMGET', batch, 'output_mp', 'input_mp', 'max_mp')
    local max = tonumber(b[3] or defaultMaxMp or '')
    if max and (tonumber(b[1] or '0') + tonumber(b[2] or '0')) >= max then return {verdict = 'budget', maxMp = max} end
  end
  return nil
end
