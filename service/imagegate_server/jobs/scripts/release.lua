-- Give a claimed job back to the head of its queue; its client's turn is parked until
-- the limit that refused it frees.
-- ARGV: P, id, client, retry_at_ms
local id, client = ARGV[2], ARGV[3]
if redis.call('HGET', job(id), 's') ~= 'queued' then return 0 end
redis.call('LPUSH', P .. 'q:' .. client, id)
redis.call('HSET', job(id), 'own', '')
let_go(id, client)
redis.call('HSET', P .. 'tokened', client, 1)
redis.call('ZADD', P .. 'parked', ARGV[4], client)
return 1
