-- Settle one call: free its slot, drop its reservation, add its real cost to the
-- current UTC day's and month's spend. Once per ticket (the done set remembers it
-- for a while, so a command retried after a lost reply does nothing).
-- With an upstream (the one that answered), also add the cost to the client's spend
-- on it: hashes per period holding `period` (the day or month number) and
-- `u:<upstream>` -> micro-dollars, started afresh when the period changed, with at
-- most max_upstreams upstreams (their names come from the operator's upstreams file).
-- KEYS: open (zset), spend (hash), done (zset)[, upstream day (hash), month (hash)]
-- ARGV: ticket, cost_micros, done_retention_us[, upstream, max_upstreams]
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

local function add_upstream(key, period, field, most, ttl_ms)
  if tonumber(redis.call('HGET', key, 'period')) ~= period then
    redis.call('DEL', key)
    redis.call('HSET', key, 'period', int_str(period))
  elseif redis.call('HEXISTS', key, field) == 0 and redis.call('HLEN', key) > most then
    return  -- more upstreams this period than a file names: the client's total has it
  end
  redis.call('HINCRBY', key, field, int_str(cost))
  keep_for(key, ttl_ms)
end

if cost > 0 and KEYS[5] then
  local day = day_of(seconds)
  local field, most = 'u:' .. ARGV[4], tonumber(ARGV[5])
  -- A day's hash is read only on its day: it may go after two.
  add_upstream(KEYS[4], day, field, most, 2 * 86400 * 1000)
  add_upstream(KEYS[5], month_of(day), field, most, SPEND_TTL_MS)
end

redis.call('ZREMRANGEBYSCORE', done_key, '-inf', int_str(now))
redis.call('ZADD', done_key, int_str(now + retention), ticket)
keep_for(done_key, retention / 1000 + 1000)
return 1
