-- Renew the leases of the jobs a runner still holds.
-- ARGV: P, owner, lease_until_ms, ids...
for i = 4, #ARGV do
  if redis.call('HGET', job(ARGV[i]), 'own') == ARGV[2] then
    redis.call('ZADD', P .. 'leases', 'XX', ARGV[3], ARGV[i])
  end
end
return 1
