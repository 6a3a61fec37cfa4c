-- Shared by every jobs script (put before each one's body): the key prefix P, the
-- first argument of every script, and the steps several scripts take.
local P = ARGV[1]
local function job(id) return P .. 'job:' .. id end
local function event(kind, id, owner)
  redis.call('XADD', P .. 'events', 'MAXLEN', '~', 10000, '*', 't', kind, 'id', id, 'o', owner)
end
-- A job ended: every process is told only if one waits for it (watch.lua's flag); the
-- process that ended it tells its own waiters itself.
local function ended(id)
  if redis.call('DEL', P .. 'watched:' .. id) == 1 then event('done', id, '') end
end
local function turn(client)
  if redis.call('HSETNX', P .. 'tokened', client, 1) == 1 then
    redis.call('XADD', P .. 'ready', '*', 'c', client)
  end
end
local function unpark(client)
  if redis.call('ZREM', P .. 'parked', client) == 1 then
    redis.call('XADD', P .. 'ready', '*', 'c', client)
  end
end
local function let_go(id, client)
  redis.call('ZREM', P .. 'leases', id)
  redis.call('SREM', P .. 'running:' .. client, id)
end
local function forget_after(id, rid, client, expires)
  redis.call('ZADD', P .. 'expiry', expires, id)
  redis.call('PEXPIREAT', job(id), expires + 86400000)
  if rid and rid ~= '' then
    redis.call('PEXPIREAT', P .. 'rid:' .. client .. ':' .. rid, expires + 86400000)
  end
end
