-- Forget finished jobs past their retention.
-- ARGV: P, now_ms, limit. Removes finished jobs past retention; replies their fields.
local out = {}
local due = redis.call('ZRANGEBYSCORE', P .. 'expiry', '-inf', ARGV[2], 'LIMIT', 0, ARGV[3])
for _, id in ipairs(due) do
  redis.call('ZREM', P .. 'expiry', id)
  local fields = redis.call('HGETALL', job(id))
  if #fields > 0 then
    local f = redis.call('HMGET', job(id), 'c', 'rid')
    redis.call('DEL', job(id), P .. 'rid:' .. f[1] .. ':' .. (f[2] or ''))
    redis.call('ZREM', P .. 'list:' .. f[1], id)
    table.insert(out, fields)
  end
end
return out
