-- One page of a client's submitted jobs.
-- ARGV: P, client, from score ('+inf': the newest), after id ('' : none), count, state
-- ('' for any). Newest first; equal scores come by id, descending, as Redis orders them.
local client, after, count, state = ARGV[2], ARGV[4], tonumber(ARGV[5]), ARGV[6]
local out = {}
local from = ARGV[3]
local offset = 0
for _ = 1, 20 do
  local ids = redis.call('ZREVRANGEBYSCORE', P .. 'list:' .. client, from, '-inf',
    'WITHSCORES', 'LIMIT', offset, count)
  if #ids == 0 then break end
  offset = offset + #ids / 2
  for i = 1, #ids, 2 do
    local id = ids[i]
    if not (after ~= '' and ids[i + 1] == from and id >= after) then
      local fields = redis.call('HGETALL', job(id))
      if #fields == 0 then
        redis.call('ZREM', P .. 'list:' .. client, id)
        offset = offset - 1
      elseif state == '' or redis.call('HGET', job(id), 's') == state then
        table.insert(out, fields)
        if #out >= count then return out end
      end
    end
  end
end
return out
