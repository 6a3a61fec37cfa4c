-- Read an upstream's ceilings and spend without changing them.
-- KEYS: the upstream's rates hash, its spend hash. ARGV: ceiling names.
-- Reply: {now, day_micros, month_micros (of the current periods, 0 if none),
--         tat or '' per name}.
local now, seconds = clock()
local day = day_of(seconds)
local s = redis.call('HMGET', KEYS[2], 'day', 'day_micros', 'month', 'month_micros')
local out = {int_str(now), '0', '0'}
if tonumber(s[1]) == day then out[2] = s[2] or '0' end
if tonumber(s[3]) == month_of(day) then out[3] = s[4] or '0' end
for j = 1, #ARGV do
  out[#out + 1] = redis.call('HGET', KEYS[1], ARGV[j]) or ''
end
return out
