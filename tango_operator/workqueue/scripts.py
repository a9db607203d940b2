"""The Lua scripts that make each queue operation atomic in Redis.

Loaded by ``tango_operator.workqueue.queue`` through ``redis.Redis.register_script`` (EVALSHA,
reloaded transparently after a Redis restart). Each script's KEYS/ARGV layout is written
above it and must match the call in ``WorkQueue``. ENQUEUE, BEGIN and RENEW run behind the
epoch guard (``tango_operator.workqueue.epoch.guarded``): their last KEY is the epoch and
their last ARGV the epoch id the caller knows, appended by ``Epoch.call``. Times are seconds
(floats) from the caller's clock; lease lengths are milliseconds because the lock's TTL is
Redis's own.
Per-key names are ``<prefix>lock:<member>``, ``<prefix>dirty:<member>`` and
``<prefix>attempts:<member>``; DUE derives two of them from the prefix, which is fine on a
single Redis (with or without Sentinel) but not on Redis Cluster, which Celery's Redis
transport does not support either.
"""

from __future__ import annotations

from tango_operator.workqueue.epoch import guarded

# KEYS: queued, lock, dirty, epoch.
# ARGV: member, now, stale_after, dirty_ttl_ms, weak ('1'/'0'), known epoch.
# Being processed -> mark dirty (weak: duplicate, the run in progress is enough); queued
# recently -> duplicate; else mark queued -> send.
ENQUEUE = guarded("""
if redis.call('EXISTS', KEYS[2]) == 1 then
  if ARGV[5] == '1' then
    return 'DUPLICATE'
  end
  redis.call('SET', KEYS[3], '1', 'PX', ARGV[4])
  return 'DIRTY'
end
local since = redis.call('ZSCORE', KEYS[1], ARGV[1])
if since and tonumber(ARGV[2]) - tonumber(since) < tonumber(ARGV[3]) then
  return 'DUPLICATE'
end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
return 'SEND'
""")

# KEYS: lock, queued, dirty, attempts, processing, grace, epoch.
# ARGV: member, token, lease_ms, now, lease_seconds, housekeeping_ms, known epoch.
# The delivered message is consumed either way, so the key leaves `queued`.
# Taken  -> {1, attempt, queued_at or ''}; the epoch records the longest lease granted.
# Busy   -> {0, holder's remaining ms, queued_at or ''}; the key is marked dirty and
#           kept in `processing` so that DUE finds it if the holder dies.
# Grace  -> {0, grace left in ms, queued_at or ''}: Redis lost its data and leases of
#           before may still be running (tango_operator.workqueue.epoch). Marked dirty, in
#           `processing` until the grace ends, so that DUE hands it back then.
BEGIN = guarded("""
local queued_at = redis.call('ZSCORE', KEYS[2], ARGV[1]) or ''
redis.call('ZREM', KEYS[2], ARGV[1])
local grace = redis.call('PTTL', KEYS[6])
if grace > 0 then
  redis.call('SET', KEYS[3], '1', 'PX', ARGV[6])
  redis.call('ZADD', KEYS[5], 'GT', tonumber(ARGV[4]) + grace / 1000, ARGV[1])
  return {0, grace, queued_at}
end
if redis.call('SET', KEYS[1], ARGV[2], 'NX', 'PX', ARGV[3]) then
  redis.call('DEL', KEYS[3])
  local attempt = redis.call('INCR', KEYS[4])
  redis.call('PEXPIRE', KEYS[4], ARGV[6])
  redis.call('ZADD', KEYS[5], tonumber(ARGV[4]) + tonumber(ARGV[5]), ARGV[1])
  if tonumber(redis.call('HGET', KEYS[7], 'lease') or '0') < tonumber(ARGV[5]) then
    redis.call('HSET', KEYS[7], 'lease', ARGV[5])
  end
  return {1, attempt, queued_at}
end
redis.call('SET', KEYS[3], '1', 'PX', ARGV[6])
local pttl = redis.call('PTTL', KEYS[1])
if pttl < 0 then pttl = tonumber(ARGV[3]) end
redis.call('ZADD', KEYS[5], 'NX', tonumber(ARGV[4]) + pttl / 1000, ARGV[1])
return {0, pttl, queued_at}
""")

# KEYS: lock, processing, epoch.  ARGV: token, lease_ms, member, new_deadline, known epoch.
# A lock that is gone (Redis lost it, or it lapsed) while nobody else holds the key is
# taken back: the holder is still working on it.
RENEW = guarded("""
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
elseif not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
else
  return 0
end
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[3])
return 1
""")

# KEYS: lock, dirty, queued, attempts, failures, delayed, processing[, forget_in].
# ARGV: member, token, now, stale_after, success ('1'/'0'), requeue_after ('' = none),
#       backoff_base, backoff_cap, jitter, supersede ('1'/'0').
# Lease bookkeeping (processing entry, attempts, dirty follow-up, and the member's field
# of the optional hash forget_in) is settled only when the
# lease is still ours or nobody holds the key; a newer holder owns them otherwise. The
# outcome (failure count, next due time) is recorded in every case: the reconcile ran.
# A due time never replaces an earlier one (ZADD LT), unless a successful reconcile
# supersedes what earlier ones scheduled: then its requeue_after is the only one (or none).
# -> {released, follow_up, failures, effective due time or ''}
FINISH = """
local member = ARGV[1]
local now = tonumber(ARGV[3])
local holder = redis.call('GET', KEYS[1])
local released = 0
if holder == ARGV[2] then
  redis.call('DEL', KEYS[1])
  released = 1
end
local follow_up = 0
if released == 1 or not holder then
  redis.call('ZREM', KEYS[7], member)
  redis.call('DEL', KEYS[4])
  if KEYS[8] then redis.call('HDEL', KEYS[8], member) end
  if redis.call('DEL', KEYS[2]) == 1 then
    local since = redis.call('ZSCORE', KEYS[3], member)
    if not since or now - tonumber(since) >= tonumber(ARGV[4]) then
      redis.call('ZADD', KEYS[3], now, member)
      follow_up = 1
    end
  end
end
local failures = 0
local delay = nil
if ARGV[5] == '1' then
  redis.call('HDEL', KEYS[5], member)
  if ARGV[6] ~= '' then delay = tonumber(ARGV[6]) end
  if ARGV[10] == '1' then
    if delay then
      redis.call('ZADD', KEYS[6], now + delay, member)
      delay = nil
    else
      redis.call('ZREM', KEYS[6], member)
    end
  end
else
  failures = redis.call('HINCRBY', KEYS[5], member, 1)
  delay = tonumber(ARGV[7]) * 2 ^ (failures - 1)
  if delay > tonumber(ARGV[8]) then delay = tonumber(ARGV[8]) end
  delay = delay * tonumber(ARGV[9])
  if ARGV[6] ~= '' and tonumber(ARGV[6]) > delay then delay = tonumber(ARGV[6]) end
end
if delay then
  redis.call('ZADD', KEYS[6], 'LT', now + delay, member)
end
return {released, follow_up, failures, redis.call('ZSCORE', KEYS[6], member) or ''}
"""

# KEYS: delayed, processing.  ARGV: now, limit, prefix, lease_seconds.
# Pops up to `limit` due keys from `delayed`, then sweeps up to `limit` lapsed leases:
# a holder that still has its lock gets a new deadline; a holder whose lock is gone died
# (or finished without telling us): its entry is dropped and, if an event arrived while it
# held the key (dirty), the key is returned so that the follow-up is not lost.
DUE = """
local now = tonumber(ARGV[1])
local out = {}
local seen = {}
for _, member in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1],
                                   'LIMIT', 0, ARGV[2])) do
  redis.call('ZREM', KEYS[1], member)
  out[#out + 1] = member
  seen[member] = true
end
for _, member in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1],
                                   'LIMIT', 0, ARGV[2])) do
  local pttl = redis.call('PTTL', ARGV[3] .. 'lock:' .. member)
  if pttl == -2 then
    redis.call('ZREM', KEYS[2], member)
    if redis.call('EXISTS', ARGV[3] .. 'dirty:' .. member) == 1 and not seen[member] then
      out[#out + 1] = member
      seen[member] = true
    end
  else
    if pttl < 0 then pttl = tonumber(ARGV[4]) * 1000 end
    redis.call('ZADD', KEYS[2], now + pttl / 1000, member)
  end
end
return out
"""
