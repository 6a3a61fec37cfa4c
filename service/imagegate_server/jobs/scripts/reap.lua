-- Jobs whose runner's lease lapsed: unsent jobs back to their queue, unsent calls
-- forgotten (their retry runs them), sent ones FAILED at their estimate.
-- ARGV: P, now_ms, expires_ms, error outcome, limit. Replies {requeued, fields} pairs.
local now, expires = ARGV[2], tonumber(ARGV[3])
local out = {}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', P .. 'leases', '-inf', now, 'LIMIT', 0, ARGV[5])) do
  local f = redis.call('HMGET', job(id), 'c', 'k', 'sent', 'rid', 'est', 's')
  local client = f[1]
  if not client then
    redis.call('ZREM', P .. 'leases', id)
  elseif f[6] == 'succeeded' or f[6] == 'failed' or f[6] == 'cancelled' then
    redis.call('ZREM', P .. 'leases', id)
  elseif f[3] ~= '1' and f[2] == 'job' then
    let_go(id, client)
    redis.call('HSET', job(id), 'own', '', 's', 'queued')
    redis.call('LPUSH', P .. 'q:' .. client, id)
    turn(client)
    table.insert(out, 1)
    table.insert(out, redis.call('HGETALL', job(id)))
  elseif f[3] ~= '1' then
    let_go(id, client)
    table.insert(out, 1)
    table.insert(out, redis.call('HGETALL', job(id)))
    redis.call('DEL', job(id), P .. 'rid:' .. client .. ':' .. (f[4] or ''))
    ended(id)
  else
    let_go(id, client)
    redis.call('HSET', job(id), 's', 'failed', 'out', ARGV[4], 'en', now, 'up', now,
      'ex', expires, 'cost', f[5])
    forget_after(id, f[4], client, expires)
    unpark(client)
    ended(id)
    table.insert(out, 0)
    table.insert(out, redis.call('HGETALL', job(id)))
  end
end
return out
