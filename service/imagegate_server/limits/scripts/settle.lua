-- Settle one call: free its slot, drop its reservation, add its real cost to the
-- current UTC day's and month's spend. Once per ticket (the done set remembers it
-- for a while, so a command retried after a lost reply does nothing).
-- KEYS: open (zset), spend (hash), done (zset)
-- ARGV: ticket, cost_micros, done_retention_us
-- Reply: 1 settled now, 0 settled before.
local open_key, spend_key, done_key = KEYS[1], KEYS[2], KEYS[3]
local ticket = ARGV[1]
local cost = tonumber(ARGV[2])
local retention = tonumber(ARGV[3])
local now, seconds = clock()

if redis.call('ZSCORE', done_key, ticket) then return 0 end

redis.call('ZREM', open_key, ticket)
local held = redis.call('HGET', spend_key, 'r:' .. ticket)
if held then
  redis.call('HDEL', spend_key, 'r:' .. ticket)
  redis.call('HINCRBY', spend_key, 'reserved', int_str(-tonumber(held)))
end
-- Even a ticket whose reservation expired (a call that outlived its hold) adds its
-- cost: the bill is real.
if cost > 0 then add_spend(spend_key, cost, seconds) end
if held or cost > 0 then keep_for(spend_key, SPEND_TTL_MS) end

redis.call('ZREMRANGEBYSCORE', done_key, '-inf', int_str(now))
redis.call('ZADD', done_key, int_str(now + retention), ticket)
keep_for(done_key, retention / 1000 + 1000)
return 1
