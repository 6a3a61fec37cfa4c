-- Add a job (queued, its client's turn given) or a call (leased to its runner), unless
-- the client's request id names a live job already; refuse when the client's queue is full.
-- ARGV: P, id, client, kind, request_id, max_queued (-1: none), created_ms, lease_until,
-- ttl_ms, then field, value pairs.
local id, client, kind, rid = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local max_queued = tonumber(ARGV[6])
if rid ~= '' then
  local existing = redis.call('GET', P .. 'rid:' .. client .. ':' .. rid)
  if existing then
    local fields = redis.call('HGETALL', job(existing))
    local expires = tonumber(redis.call('HGET', job(existing), 'ex') or '0')
    local state = redis.call('HGET', job(existing), 's')
    local done = state == 'succeeded' or state == 'failed' or state == 'cancelled'
    if #fields > 0 and not (done and expires <= tonumber(ARGV[7])) then
      return {0, existing, fields}
    end
  end
end
if kind == 'job' then
  local queued = redis.call('LLEN', P .. 'q:' .. client)
  if max_queued >= 0 and queued >= max_queued then return {2, queued} end
end
redis.call('HSET', job(id), unpack(ARGV, 10))
redis.call('PEXPIRE', job(id), ARGV[9])
if rid ~= '' then redis.call('SET', P .. 'rid:' .. client .. ':' .. rid, id, 'PX', ARGV[9]) end
redis.call('SADD', P .. 'clients', client)
if kind == 'job' then
  redis.call('RPUSH', P .. 'q:' .. client, id)
  redis.call('ZADD', P .. 'list:' .. client, ARGV[7], id)
  turn(client)
else
  redis.call('ZADD', P .. 'leases', ARGV[8], id)
  redis.call('SADD', P .. 'running:' .. client, id)
end
return {1}
