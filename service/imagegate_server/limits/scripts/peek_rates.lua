-- Read the gateway-wide TATs without changing them.
-- KEYS: the gateway's rates hash. ARGV: rate names. Reply: {now, tat or '' per name}.
local now = clock()
local out = {int_str(now)}
for j = 1, #ARGV do
  out[#out + 1] = redis.call('HGET', KEYS[1], ARGV[j]) or ''
end
return out
