-- Forget a finished job of the client now.
-- ARGV: P, client, id. Replies {deleted, fields} or {}.
local client, id = ARGV[2], ARGV[3]
local f = redis.call('HMGET', job(id), 'c', 's', 'rid')
if f[1] ~= client then return {} end
local fields = redis.call('HGETALL', job(id))
if f[2] ~= 'succeeded' and f[2] ~= 'failed' and f[2] ~= 'cancelled' then return {0, fields} end
redis.call('DEL', job(id), P .. 'rid:' .. client .. ':' .. (f[3] or ''))
redis.call('ZREM', P .. 'list:' .. client, id)
redis.call('ZREM', P .. 'expiry', id)
return {1, fields}
