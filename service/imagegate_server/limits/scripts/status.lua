-- Read one client's state without changing it.
-- KEYS: rates (hash), open (zset), spend (hash)
-- ARGV: rate names
-- Reply: {now, in_use, day, day_micros, month, month_micros, reserved, stale_reserved,
--         then the TAT per rate name}; missing values are ''.
local rates_key, open_key, spend_key = KEYS[1], KEYS[2], KEYS[3]
local now = clock()
local in_use = slots_in_use(open_key, now)
local s = redis.call('HMGET', spend_key, 'day', 'day_micros', 'month', 'month_micros',
  'reserved')
-- Reservations of dead replicas not yet swept by an admit: not really held.
local stale = 0
local expired = redis.call('ZRANGEBYSCORE', open_key, '-inf', int_str(now), 'LIMIT', 0, 500)
for _, id in ipairs(expired) do
  stale = stale + (tonumber(redis.call('HGET', spend_key, 'r:' .. id)) or 0)
end
local out = {int_str(now), int_str(in_use)}
for j = 1, 5 do out[#out + 1] = s[j] or '' end
out[#out + 1] = int_str(stale)
for j = 1, #ARGV do
  out[#out + 1] = redis.call('HGET', rates_key, ARGV[j]) or ''
end
return out
