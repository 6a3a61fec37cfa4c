-- One client's queue figures (and the client dropped from ``clients`` once it has none).
-- ARGV: P, client. Replies {queued, held, oldest queued created_ms or ''}.
local client = ARGV[2]
local queued = redis.call('LLEN', P .. 'q:' .. client)
local held = redis.call('SCARD', P .. 'running:' .. client)
local oldest = ''
local head = redis.call('LINDEX', P .. 'q:' .. client, 0)
if head then oldest = redis.call('HGET', job(head), 'cr') or '' end
if queued == 0 and held == 0 then redis.call('SREM', P .. 'clients', client) end
return {queued, held, oldest}
