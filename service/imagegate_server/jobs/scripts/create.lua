-- Add a job (queued, its client's turn given) or a call (leased to its runner), unless
-- the client's request id names a live job already; refuse when the client's queue is full.
-- A job with a claim_for owner goes straight to that runner (reply 3) when no turn of any
-- client is waiting: it passes nobody over.
-- ARGV: P, id, client, kind, request_id, max_queued (-1: none), created_ms, lease_until,
-- ttl_ms, claim_for ('' for none), then field, value pairs.
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
redis.call('HSET', job(id), unpack(ARGV, 11))
redis.call('PEXPIRE', job(id), ARGV[9])
if rid ~= '' then redis.call('SET', P .. 'rid:' .. client .. ':' .. rid, id, 'PX', ARGV[9]) end
redis.call('SADD', P .. 'clients', client)
local claim_for = ARGV[10]
if kind == 'job' then
  redis.call('ZADD', P .. 'list:' .. client, ARGV[7], id)
  if claim_for ~= '' and redis.call('LLEN', P .. 'q:' .. client) == 0
      and redis.call('XLEN', P .. 'ready') == 0 then
    redis.call('HSET', job(id), 'own', claim_for)
    redis.call('ZADD', P .. 'leases', ARGV[8], id)
    redis.call('SADD', P .. 'running:' .. client, id)
    return {3}
  end
  redis.call('RPUSH', P .. 'q:' .. client, id)
  turn(client)
else
  redis.call('ZADD', P .. 'leases', ARGV[8], id)
  redis.call('SADD', P .. 'running:' .. client, id)
end
return {1}
