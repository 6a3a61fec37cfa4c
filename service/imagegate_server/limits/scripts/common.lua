-- Prepended to every imagegate limiter script (see limits/lua.py).
-- Numbers are Lua doubles: every value here is an integer below 2^53 (microseconds
-- since 1970 are about 1.8e15), so the arithmetic is exact. Values are written back
-- with int_str, never with Lua's default 14-digit number formatting.

-- Spend must outlive its month while the client is idle: the longest month plus a margin.
local SPEND_TTL_MS = 33 * 86400 * 1000

local function int_str(x)
  return string.format('%.0f', x)
end

-- Redis's clock, never a replica's: microseconds and whole seconds since 1970.
local function clock()
  local t = redis.call('TIME')
  local seconds = tonumber(t[1])
  return seconds * 1000000 + tonumber(t[2]), seconds
end

-- UTC day number (days since 1970-01-01) and month number (year * 12 + month - 1),
-- as limits/periods.py numbers them. The month comes from H. Hinnant's
-- civil_from_days, since scripts have no os.date.
local function day_of(seconds)
  return math.floor(seconds / 86400)
end

local function month_of(day)
  local z = day + 719468
  local era = math.floor(z / 146097)
  local doe = z - era * 146097
  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524)
    - math.floor(doe / 146096)) / 365)
  local year = yoe + era * 400
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local month = mp < 10 and mp + 3 or mp - 9
  if month <= 2 then year = year + 1 end
  return year * 12 + month - 1
end

-- Keys expire when idle; a write only ever lengthens their life.
local function keep_for(key, ms)
  local ttl = redis.call('PTTL', key)
  if ttl < ms then redis.call('PEXPIRE', key, int_str(math.ceil(ms))) end
end

-- GCRA over the rates in ARGV[first ...] (count, then name, emission_us,
-- tolerance_us, cost per rate), stored as fields of the hash `key`. Writes nothing:
-- returns the refusals ({kind, name, wait_us}) and the TATs to store if all pass.
local function gcra(key, first, now)
  local count = tonumber(ARGV[first])
  local refusals, charges = {}, {}
  local i = first + 1
  for _ = 1, count do
    local name = ARGV[i]
    local emission, tolerance, cost = tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2]),
      tonumber(ARGV[i + 3])
    i = i + 4
    if cost * emission > tolerance then
      refusals[#refusals + 1] = {'never', name, '0'}
    else
      local tat = tonumber(redis.call('HGET', key, name)) or now
      if tat < now then tat = now end
      local new = tat + cost * emission
      local wait = new - tolerance - now
      if wait > 0 then
        refusals[#refusals + 1] = {'rate', name, int_str(wait)}
      else
        charges[#charges + 1] = {name, new}
      end
    end
  end
  return refusals, charges, i
end

local function store_tats(key, charges, now)
  if #charges == 0 then return end
  local longest = 0
  for _, charge in ipairs(charges) do
    redis.call('HSET', key, charge[1], int_str(charge[2]))
    if charge[2] - now > longest then longest = charge[2] - now end
  end
  keep_for(key, longest / 1000 + 1000)
end

-- {status, now, kind1, name1, wait1, kind2, ...}: the flat reply of an admit script.
local function reply(status, now, refusals)
  local out = {status, int_str(now)}
  for _, refusal in ipairs(refusals) do
    out[#out + 1] = refusal[1]
    out[#out + 1] = refusal[2]
    out[#out + 1] = refusal[3]
  end
  return out
end

-- Add cost to the current UTC day's and month's spend in the hash `key` (fields day,
-- day_micros, month, month_micros), starting a period afresh when it changed.
local function add_spend(key, cost, seconds)
  local day = day_of(seconds)
  local month = month_of(day)
  local s = redis.call('HMGET', key, 'day', 'month')
  if tonumber(s[1]) == day then
    redis.call('HINCRBY', key, 'day_micros', int_str(cost))
  else
    redis.call('HSET', key, 'day', int_str(day), 'day_micros', int_str(cost))
  end
  if tonumber(s[2]) == month then
    redis.call('HINCRBY', key, 'month_micros', int_str(cost))
  else
    redis.call('HSET', key, 'month', int_str(month), 'month_micros', int_str(cost))
  end
end

-- Calls holding a concurrency slot: the open tickets not yet expired, but for
-- reservations that hold budget only (ids starting 'r-': a queued job's).
local function slots_in_use(open_key, now)
  local live = redis.call('ZRANGEBYSCORE', open_key, '(' .. int_str(now), '+inf')
  local n = 0
  for _, id in ipairs(live) do
    if string.sub(id, 1, 2) ~= 'r-' then n = n + 1 end
  end
  return n
end
