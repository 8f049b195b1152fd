--[[
  Redis's own clock in ms: leases are written and read by different hosts, so they use
  one clock (scripts may write after TIME: effects replication, Redis >= 5).
]]
local function nowMs()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
