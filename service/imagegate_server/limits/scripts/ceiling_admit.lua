-- Admit one call against the gateway-wide rates (one key of its own, shared by
-- every client): all of them or none.
-- KEYS: the gateway's rates hash. ARGV: rates (see gcra).
-- Reply: as admit.lua.
local now = clock()
local refusals, charges = gcra(KEYS[1], 1, now)
if #refusals > 0 then return reply(0, now, refusals) end
store_tats(KEYS[1], charges, now)
return reply(1, now, {})
