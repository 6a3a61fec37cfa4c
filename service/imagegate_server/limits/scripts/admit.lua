-- Admit one call of one client: every rate, the concurrency slot and every budget,
-- all or nothing, on Redis's clock. All keys share the client's hash tag.
-- KEYS: rates (hash), open (zset ticket -> expiry us), spend (hash), done (zset)
-- ARGV: ticket, hold_us, reserve_micros, max_concurrent (-1: none), replaced ticket
--       ('' for none: see Admission.replaces), rates (see gcra), budget count, then
--       per budget: name, period, limit_micros
-- Reply: {1|2, now} admitted (2: this ticket was admitted before: a retried command),
--        {0, now, kind, name, wait_us, ...} refused, one triple per refusing limit.
local rates_key, open_key, spend_key, done_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local ticket = ARGV[1]
local hold = tonumber(ARGV[2])
local reserve = tonumber(ARGV[3])
local max_concurrent = tonumber(ARGV[4])
local replaced = ARGV[5]
local now, seconds = clock()

if redis.call('ZSCORE', open_key, ticket) or redis.call('ZSCORE', done_key, ticket) then
  return reply(2, now, {})
end

-- Calls of a replica that died are still in `open`: their expiry has passed, so
-- they free their slot here and give back what they reserved.
local expired = redis.call('ZRANGEBYSCORE', open_key, '-inf', int_str(now), 'LIMIT', 0, 500)
if #expired > 0 then
  local freed = 0
  for _, id in ipairs(expired) do
    local held = redis.call('HGET', spend_key, 'r:' .. id)
    if held then
      freed = freed + tonumber(held)
      redis.call('HDEL', spend_key, 'r:' .. id)
    end
  end
  redis.call('ZREM', open_key, unpack(expired))
  if freed > 0 then redis.call('HINCRBY', spend_key, 'reserved', int_str(-freed)) end
end

-- The ticket this one takes over (an upload's slot, taken at authentication): its
-- slot and reservation count for neither; an expired one replaces nothing.
local replaced_held, replaced_reserve = 0, 0
local replaced_expiry = replaced ~= '' and redis.call('ZSCORE', open_key, replaced)
if replaced_expiry and tonumber(replaced_expiry) > now then
  replaced_held = 1
  replaced_reserve = tonumber(redis.call('HGET', spend_key, 'r:' .. replaced) or '0')
end

local refusals, charges, i = gcra(rates_key, 6, now)

if max_concurrent >= 0 then
  local in_use = slots_in_use(open_key, now) - replaced_held
  if max_concurrent == 0 then
    refusals[#refusals + 1] = {'concurrency_never', '', '0'}
  elseif in_use >= max_concurrent then
    refusals[#refusals + 1] = {'concurrency', '', '0'}
  end
end

local budgets = tonumber(ARGV[i])
i = i + 1
if budgets > 0 then
  local day = day_of(seconds)
  local month = month_of(day)
  local s = redis.call('HMGET', spend_key, 'day', 'day_micros', 'month', 'month_micros',
    'reserved')
  local spent_day = (tonumber(s[1]) == day) and tonumber(s[2]) or 0
  local spent_month = (tonumber(s[3]) == month) and tonumber(s[4]) or 0
  local reserved = (tonumber(s[5]) or 0) - replaced_reserve
  for _ = 1, budgets do
    local name, period, limit = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
    i = i + 3
    local spent = period == 'day' and spent_day or spent_month
    if reserve > limit then
      refusals[#refusals + 1] = {'budget_never', name, '0'}
    elseif spent + reserved + reserve > limit then
      refusals[#refusals + 1] = {'budget', name, '0'}
    end
  end
end

if #refusals > 0 then
  return reply(0, now, refusals)
end

store_tats(rates_key, charges, now)
if replaced_held == 1 then
  redis.call('ZREM', open_key, replaced)
  if replaced_reserve > 0 then
    redis.call('HDEL', spend_key, 'r:' .. replaced)
    redis.call('HINCRBY', spend_key, 'reserved', int_str(-replaced_reserve))
  end
end
redis.call('ZADD', open_key, int_str(now + hold), ticket)
keep_for(open_key, hold / 1000 + 1000)
if reserve > 0 then
  redis.call('HSET', spend_key, 'r:' .. ticket, int_str(reserve))
  redis.call('HINCRBY', spend_key, 'reserved', int_str(reserve))
  keep_for(spend_key, math.max(SPEND_TTL_MS, hold / 1000 + 1000))
end
return reply(1, now, {})
