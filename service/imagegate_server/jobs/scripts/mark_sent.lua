-- Mark a job sent (RUNNING) just before its request goes upstream, unless it was asked
-- to cancel or another runner holds it.
-- ARGV: P, id, owner, now_ms, slot
local id = ARGV[2]
local fields = redis.call('HMGET', job(id), 'own', 'cx', 's')
local live = fields[3] == 'queued' or fields[3] == 'running'
if fields[1] ~= ARGV[3] or fields[2] == '1' or not live then
  return 0
end
redis.call('HSET', job(id), 's', 'running', 'sent', '1', 'st', ARGV[4], 'up', ARGV[4],
  'sl', ARGV[5])
return 1
