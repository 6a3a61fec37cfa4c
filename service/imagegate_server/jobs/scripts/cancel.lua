-- Ask for a job's cancellation: a queued one (not sent, even if a runner has claimed it
-- and waits for its client's limits) is CANCELLED at once; a running one's runner is
-- told (an event) and ends it.
-- ARGV: P, client, id, outcome, now_ms, expires_ms. Replies {ended_now, fields} or {}.
local client, id = ARGV[2], ARGV[3]
local f = redis.call('HMGET', job(id), 'c', 's', 'own', 'rid')
if f[1] ~= client then return {} end
if f[2] == 'succeeded' or f[2] == 'failed' or f[2] == 'cancelled' then
  return {0, redis.call('HGETALL', job(id))}
end
if f[2] == 'queued' then
  redis.call('LREM', P .. 'q:' .. client, 0, id)
  let_go(id, client)  -- a claiming runner's lease: its mark_sent and release now do nothing
  redis.call('HSET', job(id), 's', 'cancelled', 'cx', '1', 'out', ARGV[4], 'en', ARGV[5],
    'up', ARGV[5], 'ex', ARGV[6], 'cost', '0')
  forget_after(id, f[4], client, tonumber(ARGV[6]))
  ended(id)
  return {1, redis.call('HGETALL', job(id))}
end
redis.call('HSET', job(id), 'cx', '1', 'up', ARGV[5])
event('cancel', id, f[3])
return {0, redis.call('HGETALL', job(id))}
