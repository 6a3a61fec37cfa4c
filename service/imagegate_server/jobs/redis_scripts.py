"""The Lua scripts of :mod:`.redis_store`: each change of a job is one of them.

Every key is ``<prefix>{jobs}:<name>`` (``P`` below, the first argument of every
script), so all of them hash to one Cluster slot and a script may touch any of
them; ``KEYS[1]`` is always ``P .. 'ready'``, which routes the script to that
slot's node. Job hashes use short field names (``s`` state, ``c`` client, ``own``
owner...; :mod:`.redis_store` maps them).

    P job:<id>          hash: the job (expires a day after its retention ends)
    P rid:<client>:<id> the job of a request id
    P q:<client>        list: the client's queued job ids, oldest first
    P list:<client>     sorted set: the client's submitted jobs by creation time
    P running:<client>  set: the client's jobs held by a runner
    P ready             stream (group ``runners``): one entry per client whose
                        turn it is; taking one gives one job and puts the client's
                        next turn at the end (round robin across clients)
    P tokened           hash: clients with a turn in ``ready`` or in ``parked``
    P parked            sorted set: client -> when its turn comes back (a limit
                        refused its last job; a job of it ending brings it back)
    P leases            sorted set: job id -> when its runner's lease lapses
    P expiry            sorted set: finished job id -> when it is forgotten
    P clients           set: clients with queued or held jobs (metrics)
    P events            stream (capped): job ended / cancel asked for
"""

from __future__ import annotations

_COMMON = """
local P = ARGV[1]
local function job(id) return P .. 'job:' .. id end
local function event(kind, id, owner)
  redis.call('XADD', P .. 'events', 'MAXLEN', '~', 10000, '*', 't', kind, 'id', id, 'o', owner)
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
"""

# ARGV: P, id, client, kind, request_id, max_queued (-1: none), created_ms, lease_until,
# ttl_ms, then field, value pairs.
CREATE = (
    _COMMON
    + """
local id, client, kind, rid = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local max_queued = tonumber(ARGV[6])
if rid ~= '' then
  local existing = redis.call('GET', P .. 'rid:' .. client .. ':' .. rid)
  if existing then
    local fields = redis.call('HGETALL', job(existing))
    local expires = tonumber(redis.call('HGET', job(existing), 'ex') or '0')
    local state = redis.call('HGET', job(existing), 's')
    local done = state == 'succeeded' or state == 'failed' or state == 'cancelled'
    if #fields > 0 and not (done and expires <= tonumber(ARGV[7])) then
      return {0, existing, fields}
    end
  end
end
if kind == 'job' then
  local queued = redis.call('LLEN', P .. 'q:' .. client)
  if max_queued >= 0 and queued >= max_queued then return {2, queued} end
end
redis.call('HSET', job(id), unpack(ARGV, 10))
redis.call('PEXPIRE', job(id), ARGV[9])
if rid ~= '' then redis.call('SET', P .. 'rid:' .. client .. ':' .. rid, id, 'PX', ARGV[9]) end
redis.call('SADD', P .. 'clients', client)
if kind == 'job' then
  redis.call('RPUSH', P .. 'q:' .. client, id)
  redis.call('ZADD', P .. 'list:' .. client, ARGV[7], id)
  turn(client)
else
  redis.call('ZADD', P .. 'leases', ARGV[8], id)
  redis.call('SADD', P .. 'running:' .. client, id)
end
return {1}
"""
)

# ARGV: P, stream entry id, client, owner, now_ms, lease_ms
TAKE = (
    _COMMON
    + """
local entry, client, owner, now = ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
redis.call('XACK', P .. 'ready', 'runners', entry)
redis.call('XDEL', P .. 'ready', entry)
local retry = redis.call('ZSCORE', P .. 'parked', client)
if retry then
  if tonumber(retry) > now then return {} end
  redis.call('ZREM', P .. 'parked', client)
end
local id = redis.call('LPOP', P .. 'q:' .. client)
if not id then
  redis.call('HDEL', P .. 'tokened', client)
  return {}
end
if redis.call('LLEN', P .. 'q:' .. client) > 0 then
  redis.call('XADD', P .. 'ready', '*', 'c', client)
else
  redis.call('HDEL', P .. 'tokened', client)
end
redis.call('HSET', job(id), 'own', owner, 'up', now)
redis.call('ZADD', P .. 'leases', now + tonumber(ARGV[6]), id)
redis.call('SADD', P .. 'running:' .. client, id)
return redis.call('HGETALL', job(id))
"""
)

# ARGV: P, now_ms. Turns whose time came back go to the end of ``ready``; replies the
# next time a parked turn comes back (or -1).
UNPARK = (
    _COMMON
    + """
local now = tonumber(ARGV[2])
for _, client in ipairs(redis.call('ZRANGEBYSCORE', P .. 'parked', '-inf', now, 'LIMIT', 0, 100)) do
  unpark(client)
end
local next = redis.call('ZRANGE', P .. 'parked', 0, 0, 'WITHSCORES')
if #next == 0 then return -1 end
return tonumber(next[2])
"""
)

# ARGV: P, id, client, retry_at_ms
RELEASE = (
    _COMMON
    + """
local id, client = ARGV[2], ARGV[3]
if redis.call('HGET', job(id), 's') ~= 'queued' then return 0 end
redis.call('LPUSH', P .. 'q:' .. client, id)
redis.call('HSET', job(id), 'own', '')
let_go(id, client)
redis.call('HSET', P .. 'tokened', client, 1)
redis.call('ZADD', P .. 'parked', ARGV[4], client)
return 1
"""
)

# ARGV: P, id, owner, now_ms, slot
MARK_SENT = (
    _COMMON
    + """
local id = ARGV[2]
local fields = redis.call('HMGET', job(id), 'own', 'cx', 's')
local live = fields[3] == 'queued' or fields[3] == 'running'
if fields[1] ~= ARGV[3] or fields[2] == '1' or not live then
  return 0
end
redis.call('HSET', job(id), 's', 'running', 'sent', '1', 'st', ARGV[4], 'up', ARGV[4],
  'sl', ARGV[5])
return 1
"""
)

# ARGV: P, id, partial_images, now_ms
PROGRESS = (
    _COMMON
    + """
if redis.call('EXISTS', job(ARGV[2])) == 1 then
  redis.call('HSET', job(ARGV[2]), 'pi', ARGV[3], 'up', ARGV[4])
end
return 1
"""
)

# ARGV: P, id, state, outcome, cost ('' for none), now_ms, expires_ms
FINISH = (
    _COMMON
    + """
local id = ARGV[2]
local fields = redis.call('HMGET', job(id), 's', 'c', 'rid')
local state, client = fields[1], fields[2]
if not state or state == 'succeeded' or state == 'failed' or state == 'cancelled' then
  return 0
end
redis.call('HSET', job(id), 's', ARGV[3], 'out', ARGV[4], 'cost', ARGV[5], 'en', ARGV[6],
  'up', ARGV[6], 'ex', ARGV[7])
let_go(id, client)
forget_after(id, fields[3], client, tonumber(ARGV[7]))
unpark(client)
event('done', id, '')
return 1
"""
)

# ARGV: P, owner, lease_until_ms, ids...
RENEW = (
    _COMMON
    + """
for i = 4, #ARGV do
  if redis.call('HGET', job(ARGV[i]), 'own') == ARGV[2] then
    redis.call('ZADD', P .. 'leases', 'XX', ARGV[3], ARGV[i])
  end
end
return 1
"""
)

# ARGV: P, now_ms, expires_ms, error outcome, limit. Replies {requeued, fields} pairs.
REAP = (
    _COMMON
    + """
local now, expires = ARGV[2], tonumber(ARGV[3])
local out = {}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', P .. 'leases', '-inf', now, 'LIMIT', 0, ARGV[5])) do
  local f = redis.call('HMGET', job(id), 'c', 'k', 'sent', 'rid', 'est', 's')
  local client = f[1]
  if not client then
    redis.call('ZREM', P .. 'leases', id)
  elseif f[6] == 'succeeded' or f[6] == 'failed' or f[6] == 'cancelled' then
    redis.call('ZREM', P .. 'leases', id)
  elseif f[3] ~= '1' and f[2] == 'job' then
    let_go(id, client)
    redis.call('HSET', job(id), 'own', '', 's', 'queued')
    redis.call('LPUSH', P .. 'q:' .. client, id)
    turn(client)
    table.insert(out, 1)
    table.insert(out, redis.call('HGETALL', job(id)))
  elseif f[3] ~= '1' then
    let_go(id, client)
    table.insert(out, 1)
    table.insert(out, redis.call('HGETALL', job(id)))
    redis.call('DEL', job(id), P .. 'rid:' .. client .. ':' .. (f[4] or ''))
    event('done', id, '')
  else
    let_go(id, client)
    redis.call('HSET', job(id), 's', 'failed', 'out', ARGV[4], 'en', now, 'up', now,
      'ex', expires, 'cost', f[5])
    forget_after(id, f[4], client, expires)
    unpark(client)
    event('done', id, '')
    table.insert(out, 0)
    table.insert(out, redis.call('HGETALL', job(id)))
  end
end
return out
"""
)

# ARGV: P, client, id, outcome, now_ms, expires_ms. Replies {ended_now, fields} or {}.
CANCEL = (
    _COMMON
    + """
local client, id = ARGV[2], ARGV[3]
local f = redis.call('HMGET', job(id), 'c', 's', 'own', 'rid')
if f[1] ~= client then return {} end
if f[2] == 'succeeded' or f[2] == 'failed' or f[2] == 'cancelled' then
  return {0, redis.call('HGETALL', job(id))}
end
if f[3] == '' then
  redis.call('LREM', P .. 'q:' .. client, 0, id)
  redis.call('HSET', job(id), 's', 'cancelled', 'cx', '1', 'out', ARGV[4], 'en', ARGV[5],
    'up', ARGV[5], 'ex', ARGV[6], 'cost', '0')
  forget_after(id, f[4], client, tonumber(ARGV[6]))
  event('done', id, '')
  return {1, redis.call('HGETALL', job(id))}
end
redis.call('HSET', job(id), 'cx', '1', 'up', ARGV[5])
event('cancel', id, f[3])
return {0, redis.call('HGETALL', job(id))}
"""
)

# ARGV: P, client, id. Replies {deleted, fields} or {}.
DELETE = (
    _COMMON
    + """
local client, id = ARGV[2], ARGV[3]
local f = redis.call('HMGET', job(id), 'c', 's', 'rid')
if f[1] ~= client then return {} end
local fields = redis.call('HGETALL', job(id))
if f[2] ~= 'succeeded' and f[2] ~= 'failed' and f[2] ~= 'cancelled' then return {0, fields} end
redis.call('DEL', job(id), P .. 'rid:' .. client .. ':' .. (f[3] or ''))
redis.call('ZREM', P .. 'list:' .. client, id)
redis.call('ZREM', P .. 'expiry', id)
return {1, fields}
"""
)

# ARGV: P, id. A call that ended without a bill (or could not be kept): forgotten, so
# that its retry runs.
DISCARD = (
    _COMMON
    + """
local id = ARGV[2]
local f = redis.call('HMGET', job(id), 'c', 'rid', 'k')
if not f[1] or f[3] ~= 'call' then return 0 end
let_go(id, f[1])
redis.call('DEL', job(id), P .. 'rid:' .. f[1] .. ':' .. (f[2] or ''))
event('done', id, '')
return 1
"""
)

# ARGV: P, now_ms, limit. Removes finished jobs past retention; replies their fields.
EXPIRED = (
    _COMMON
    + """
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
"""
)

# ARGV: P, client. Replies {queued, held, oldest queued created_ms or ''}.
CLIENT_JOBS = (
    _COMMON
    + """
local client = ARGV[2]
local queued = redis.call('LLEN', P .. 'q:' .. client)
local held = redis.call('SCARD', P .. 'running:' .. client)
local oldest = ''
local head = redis.call('LINDEX', P .. 'q:' .. client, 0)
if head then oldest = redis.call('HGET', job(head), 'cr') or '' end
if queued == 0 and held == 0 then redis.call('SREM', P .. 'clients', client) end
return {queued, held, oldest}
"""
)

# ARGV: P, client, from score ('+inf': the newest), after id ('' : none), count, state
# ('' for any). Newest first; equal scores come by id, descending, as Redis orders them.
LIST = (
    _COMMON
    + """
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
"""
)
