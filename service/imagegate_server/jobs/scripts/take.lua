-- A runner takes the turn it read from ``ready``: the client's next queued job, leased
-- to it, and the client's next turn at the end of ``ready`` (round robin).
-- ARGV: P, stream entry id, client, owner, now_ms, lease_ms
local entry, client, owner, now = ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
redis.call('XACK', P .. 'ready', 'runners', entry)
redis.call('XDEL', P .. 'ready', entry)
local retry = redis.call('ZSCORE', P .. 'parked', client)
if retry then
  if tonumber(retry) > now then return {} end
  redis.call('ZREM', P .. 'parked', client)
end
local id = redis.call('LPOP', P .. 'q:' .. client)
if not id then
  redis.call('HDEL', P .. 'tokened', client)
  return {}
end
if redis.call('LLEN', P .. 'q:' .. client) > 0 then
  redis.call('XADD', P .. 'ready', '*', 'c', client)
else
  redis.call('HDEL', P .. 'tokened', client)
end
redis.call('HSET', job(id), 'own', owner, 'up', now)
redis.call('ZADD', P .. 'leases', now + tonumber(ARGV[6]), id)
redis.call('SADD', P .. 'running:' .. client, id)
return redis.call('HGETALL', job(id))
