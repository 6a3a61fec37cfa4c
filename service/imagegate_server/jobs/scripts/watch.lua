-- The client's job (its fields, as HGETALL), and while it is not done, the flag that
-- makes its end go out as an event (common.lua's ended) for at least for_ms.
-- ARGV: P, client, id, for_ms. Replies the fields, or {} (no such job of the client).
local client, id, for_ms = ARGV[2], ARGV[3], tonumber(ARGV[4])
local fields = redis.call('HMGET', job(id), 'c', 's')
if fields[1] ~= client then return {} end
local s = fields[2]
if s ~= 'succeeded' and s ~= 'failed' and s ~= 'cancelled' then
  local flag = P .. 'watched:' .. id
  if redis.call('PTTL', flag) < for_ms then redis.call('SET', flag, 1, 'PX', for_ms) end
end
return redis.call('HGETALL', job(id))
