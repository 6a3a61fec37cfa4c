-- Give back a call's gateway-wide charge when the client's own limits refused it
-- after the ceiling admitted it: TAT -= cost * T, never earlier than now.
-- KEYS: the gateway's rates hash. ARGV: count, then per rate: name, emission_us, cost.
local now = clock()
local i = 2
for _ = 1, tonumber(ARGV[1]) do
  local name, emission, cost = ARGV[i], tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2])
  i = i + 3
  local tat = tonumber(redis.call('HGET', KEYS[1], name))
  if tat then
    local back = tat - cost * emission
    if back < now then back = now end
    redis.call('HSET', KEYS[1], name, int_str(back))
  end
end
return 1
