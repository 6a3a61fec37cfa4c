-- Add a settled call's cost to the spend of the upstream that answered it (current
-- UTC day and month), once per ticket: the done set remembers it for a while, so a
-- command retried after a lost reply does nothing.
-- KEYS: the upstream's spend hash, its done set. ARGV: ticket, cost_micros,
-- done_retention_us. Reply: 1 booked now, 0 booked before.
local spend_key, done_key = KEYS[1], KEYS[2]
local ticket, cost, retention = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local now, seconds = clock()
if redis.call('ZSCORE', done_key, ticket) then return 0 end
add_spend(spend_key, cost, seconds)
keep_for(spend_key, SPEND_TTL_MS)
redis.call('ZREMRANGEBYSCORE', done_key, '-inf', int_str(now))
redis.call('ZADD', done_key, int_str(now + retention), ticket)
keep_for(done_key, retention / 1000 + 1000)
return 1
