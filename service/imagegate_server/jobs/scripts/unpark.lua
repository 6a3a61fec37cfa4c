-- Bring back the parked turns whose time came.
-- ARGV: P, now_ms. Turns whose time came back go to the end of ``ready``; replies the
-- next time a parked turn comes back (or -1).
local now = tonumber(ARGV[2])
for _, client in ipairs(redis.call('ZRANGEBYSCORE', P .. 'parked', '-inf', now, 'LIMIT', 0, 100)) do
  unpark(client)
end
local next = redis.call('ZRANGE', P .. 'parked', 0, 0, 'WITHSCORES')
if #next == 0 then return -1 end
return tonumber(next[2])
