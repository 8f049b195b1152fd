--[[
  A tenant's own limits, checked with the fleet's call gate (includes/call-gate.lua), in
  the same script that counts the call: the tenant's reported megapixels of this UTC day
  reached TENANT_MAX_MEGAPIXELS_PER_DAY → {verdict = 'tenant_budget', tenant, maxMp}; its
  calls in flight fleet-wide (leases not run out) reached TENANT_MAX_CONCURRENCY →
  {verdict = 'tenant_limited', tenant}; else nil.
  tk: { calls, megapixels } the tenant's keys; a: { tenant, tenantMaxMp?, tenantCap? }; now: ms.
]]
local function utcDay(now) return tostring(math.floor(now / 86400000)) end

local function tenantGate(tk, a, now)
  if a.tenantMaxMp then
    local used = tonumber(redis.call('HGET', tk.megapixels, utcDay(now)) or '0')
    if used >= tonumber(a.tenantMaxMp) then return {verdict = 'tenant_budget', tenant = a.tenant, maxMp = tonumber(a.tenantMaxMp)} end
  end
  if a.tenantCap then
    redis.call('ZREMRANGEBYSCORE', tk.calls, '-inf', now)
    if redis.call('ZCARD', tk.calls) >= tonumber(a.tenantCap) then return {verdict = 'tenant_limited', tenant = a.tenant} end
  end
  return nil
end
