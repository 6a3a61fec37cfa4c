-- End a job once (SUCCEEDED, FAILED or CANCELLED): its lease let go, kept until its
-- retention ends, its client's parked turn back, every replica told.
-- ARGV: P, id, state, outcome, cost ('' for none), now_ms, expires_ms
local id = ARGV[2]
local fields = redis.call('HMGET', job(id), 's', 'c', 'rid')
local state, client = fields[1], fields[2]
if not state or state == 'succeeded' or state == 'failed' or state == 'cancelled' then
  return 0
end
redis.call('HSET', job(id), 's', ARGV[3], 'out', ARGV[4], 'cost', ARGV[5], 'en', ARGV[6],
  'up', ARGV[6], 'ex', ARGV[7])
let_go(id, client)
forget_after(id, fields[3], client, tonumber(ARGV[7]))
unpark(client)
ended(id)
return 1
