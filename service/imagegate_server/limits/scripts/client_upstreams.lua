-- Read one client's spend per upstream without changing it.
-- KEYS: its upstream day hash, its upstream month hash (see settle.lua).
-- Reply: {day fields, month fields}: each the hash's `u:<upstream>`, micros pairs
-- when it holds the current period, else empty.
local _, seconds = clock()
local day = day_of(seconds)
local function current(key, period)
  if tonumber(redis.call('HGET', key, 'period')) ~= period then return {} end
  local out = {}
  local all = redis.call('HGETALL', key)
  for j = 1, #all, 2 do
    if all[j] ~= 'period' then
      out[#out + 1] = all[j]
      out[#out + 1] = all[j + 1]
    end
  end
  return out
end
return {current(KEYS[1], day), current(KEYS[2], month_of(day))}
