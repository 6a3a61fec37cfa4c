-- Forget a call whose request id must run again.
-- ARGV: P, id. A call that ended without a bill (or could not be kept): forgotten, so
-- that its retry runs.
local id = ARGV[2]
local f = redis.call('HMGET', job(id), 'c', 'rid', 'k')
if not f[1] or f[3] ~= 'call' then return 0 end
let_go(id, f[1])
redis.call('DEL', job(id), P .. 'rid:' .. f[1] .. ':' .. (f[2] or ''))
ended(id)
return 1
