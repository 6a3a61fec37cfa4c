-- How many partial images a running job has received.
-- ARGV: P, id, partial_images, now_ms
if redis.call('EXISTS', job(ARGV[2])) == 1 then
  redis.call('HSET', job(ARGV[2]), 'pi', ARGV[3], 'up', ARGV[4])
end
return 1
