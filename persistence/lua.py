"""Every Lua script the bot runs in Redis, in one place, built on one timeline-append fragment.

Scripts make a check and its write one atomic step (Redis runs a script alone): the fenced action queue
and lock, and timeline appends that must happen together with a state change (an action's audit line
with its final status) or only once (a dedupe identity). The timeline's wire format — fields ``kind``,
``actor``, ``at`` (epoch seconds), ``data`` (JSON) — is written by :data:`TIMELINE_APPEND` in Lua and by
:func:`persistence.timeline.entry_fields` in Python, and nowhere else.
"""

from __future__ import annotations

TIMELINE_APPEND = """
local function timeline_append(stream, kind, actor, at, data)
  return redis.call('XADD', stream, '*', 'kind', kind, 'actor', actor, 'at', at, 'data', data)
end
"""
"""Lua: ``timeline_append(stream, kind, actor, at, data)`` — the one writer of a timeline entry in scripts."""

# Append atomically, unless the dedupe identity was already recorded.
# KEYS: stream, seen set; ARGV: dedupe identity (or ""), kind, actor, at, data json
TIMELINE_APPEND_ONCE = TIMELINE_APPEND + """
if ARGV[1] ~= '' then
  if redis.call('SADD', KEYS[2], ARGV[1]) == 0 then return false end
end
return timeline_append(KEYS[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5])
"""

QUEUE_START = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 'lost' end
if redis.call('LINDEX', KEYS[2], 0) ~= ARGV[2] then return 'moved' end
local status = redis.call('HGET', KEYS[3], 'status')
if status ~= 'queued' then return status or 'missing' end
redis.call('HSET', KEYS[3], 'status', 'running', 'fence', ARGV[3], 'started_at', ARGV[4], 'worker', ARGV[5])
return 'started'
"""

# KEYS: action hash, queue, timeline; ARGV: id, fence, final status, outcome, finished_at, audit json, actor, has timeline
QUEUE_FINISH = TIMELINE_APPEND + """
if redis.call('HGET', KEYS[1], 'status') ~= 'running' then return 0 end
if redis.call('HGET', KEYS[1], 'fence') ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], 'status', ARGV[3], 'outcome', ARGV[4], 'finished_at', ARGV[5])
redis.call('LREM', KEYS[2], 1, ARGV[1])
if ARGV[8] == '1' then
  timeline_append(KEYS[3], 'action', ARGV[7], ARGV[5], ARGV[6])
end
return 1
"""

# KEYS: lock, action hash, queue, timeline; ARGV: our token, id, stale fence, outcome, now, audit json, actor, has timeline
QUEUE_MARK_UNKNOWN = TIMELINE_APPEND + """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if redis.call('HGET', KEYS[2], 'status') ~= 'running' then return 0 end
if redis.call('HGET', KEYS[2], 'fence') ~= ARGV[3] then return 0 end
redis.call('HSET', KEYS[2], 'status', 'outcome_unknown', 'outcome', ARGV[4], 'finished_at', ARGV[5])
redis.call('LREM', KEYS[3], 1, ARGV[2])
if ARGV[8] == '1' then
  timeline_append(KEYS[4], 'action', ARGV[7], ARGV[5], ARGV[6])
end
return 1
"""

# KEYS: action hash, queue; ARGV: id, user, now
QUEUE_CANCEL = """
local status = redis.call('HGET', KEYS[1], 'status')
if status == 'queued' then
  redis.call('LREM', KEYS[2], 0, ARGV[1])
elseif status ~= 'awaiting_confirmation' and status ~= 'preparing' then
  return status or 'missing'
end
redis.call('HSET', KEYS[1], 'status', 'cancelled', 'cancelled_by', ARGV[2], 'finished_at', ARGV[3])
return 'cancelled'
"""

LOCK_ACQUIRE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return false end
local fence = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], fence .. ':' .. ARGV[1], 'PX', ARGV[2])
return fence
"""

LOCK_RENEW = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
return redis.call('PEXPIRE', KEYS[1], ARGV[2])
"""

LOCK_RELEASE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
return redis.call('DEL', KEYS[1])
"""


# The outbox (persistence/outbox.py). KEYS: channel list, ready zset[, pushed marker]; ARGV: channel, intent json,
# now ms[, marker ttl s]. With the marker (a replayed command's deterministic post id) a post is queued once.
OUTBOX_PUSH = """
if KEYS[3] and not redis.call('SET', KEYS[3], '1', 'NX', 'EX', ARGV[4]) then return redis.call('LLEN', KEYS[1]) end
redis.call('RPUSH', KEYS[1], ARGV[2])
redis.call('ZADD', KEYS[2], 'NX', ARGV[3], ARGV[1])
return redis.call('LLEN', KEYS[1])
"""

# KEYS: lease, channel list, ready zset, attempts hash; ARGV: channel, owner, lease ms, now ms
OUTBOX_CLAIM = """
local due = redis.call('ZSCORE', KEYS[3], ARGV[1])
if not due or tonumber(due) > tonumber(ARGV[4]) then return false end
if not redis.call('SET', KEYS[1], ARGV[2], 'NX', 'PX', ARGV[3]) then return false end
local head = redis.call('LINDEX', KEYS[2], 0)
if not head then
  redis.call('ZREM', KEYS[3], ARGV[1])
  redis.call('DEL', KEYS[1])
  return false
end
-- Not due while it is being sent (done/defer set the next time); due again if the sender dies with the lease.
redis.call('ZADD', KEYS[3], tonumber(ARGV[4]) + tonumber(ARGV[3]), ARGV[1])
return {head, redis.call('HINCRBY', KEYS[4], ARGV[1], 1)}
"""

# KEYS: lease, channel list, ready zset, attempts hash; ARGV: channel, owner, head json, next ready ms
OUTBOX_DONE = """
if redis.call('GET', KEYS[1]) ~= ARGV[2] then return 0 end
if redis.call('LINDEX', KEYS[2], 0) == ARGV[3] then redis.call('LPOP', KEYS[2]) end
redis.call('HDEL', KEYS[4], ARGV[1])
if redis.call('LLEN', KEYS[2]) == 0 then
  redis.call('ZREM', KEYS[3], ARGV[1])
else
  redis.call('ZADD', KEYS[3], ARGV[4], ARGV[1])
end
redis.call('DEL', KEYS[1])
return 1
"""

# KEYS: lease, ready zset; ARGV: channel, owner, ready again at (ms)
OUTBOX_DEFER = """
if redis.call('GET', KEYS[1]) ~= ARGV[2] then return 0 end
redis.call('ZADD', KEYS[2], 'XX', ARGV[3], ARGV[1])
redis.call('DEL', KEYS[1])
return 1
"""


# KEYS: lease, channel list, ready zset, attempts hash; ARGV: channel, owner, old count, new count, old items…,
# new items…, ready at (ms). Replace the channel's first items (still exactly ``old items``) by ``new items``.
OUTBOX_REWRITE = """
if redis.call('GET', KEYS[1]) ~= ARGV[2] then return 0 end
local n_old, n_new = tonumber(ARGV[3]), tonumber(ARGV[4])
local head = redis.call('LRANGE', KEYS[2], 0, n_old - 1)
if #head ~= n_old then return 0 end
for i = 1, n_old do
  if head[i] ~= ARGV[4 + i] then return 0 end
end
redis.call('LTRIM', KEYS[2], n_old, -1)
for i = n_new, 1, -1 do
  redis.call('LPUSH', KEYS[2], ARGV[4 + n_old + i])
end
redis.call('ZADD', KEYS[3], ARGV[5 + n_old + n_new], ARGV[1])
redis.call('HDEL', KEYS[4], ARGV[1])
redis.call('DEL', KEYS[1])
return 1
"""

# --- action requests (persistence.action_store) ------------------------------------------------------

ACTION_CONFIRM = """
local h = KEYS[1]
if redis.call('EXISTS', h) == 0 then return {'missing'} end
local status = redis.call('HGET', h, 'status')
local confirmed = redis.call('HGET', h, 'confirmed_by') or ''
if status ~= 'awaiting_confirmation' then return {'status', status, confirmed} end
local deadline = tonumber(redis.call('HGET', h, 'confirm_deadline'))
if tonumber(ARGV[2]) > deadline then
  redis.call('HSET', h, 'status', 'expired', 'finished_at', ARGV[2])
  return {'expired'}
end
for who in string.gmatch(confirmed, '[^,]+') do
  if who == ARGV[1] then return {'twice', confirmed} end
end
local guard = redis.call('HGET', h, 'guard') or ''
local acked = redis.call('HGET', h, 'guard_ack_by') or ''
if guard ~= '' and acked == '' then
  if ARGV[3] ~= '1' then return {'guard', guard} end
  redis.call('HSET', h, 'guard_ack_by', ARGV[1])
end
if confirmed == '' then confirmed = ARGV[1] else confirmed = confirmed .. ',' .. ARGV[1] end
redis.call('HSET', h, 'confirmed_by', confirmed)
local _, commas = string.gsub(confirmed, ',', ',')
local needed = tonumber(redis.call('HGET', h, 'confirmers_needed') or '1')
if commas + 1 < needed then return {'more', tostring(commas + 1), tostring(needed)} end
redis.call('HSET', h, 'status', 'queued', 'queued_at', ARGV[2], 'ticket', redis.call('INCR', KEYS[3]))
local length = redis.call('RPUSH', KEYS[2], redis.call('HGET', h, 'id'))
return {'queued', tostring(length)}
"""
"""One confirm click: refused (and why) unless the request waits for confirmation, has not expired, was not
confirmed by this person, and — when the recovery-order guard holds it — is confirmed with *Proceed anyway*;
the last needed confirmation queues it (``RPUSH`` onto the cluster's FIFO, with the next ticket)."""

ACTION_EXPIRE = """
if redis.call('HGET', KEYS[1], 'status') ~= 'awaiting_confirmation' then return 0 end
if tonumber(ARGV[1]) < tonumber(redis.call('HGET', KEYS[1], 'confirm_deadline')) then return 0 end
redis.call('HSET', KEYS[1], 'status', 'expired', 'finished_at', ARGV[1])
return 1
"""
"""``awaiting_confirmation`` → ``expired`` once the deadline has passed."""

ACTION_NEW = """
local existing = redis.call('GET', KEYS[2])
if existing then return existing end
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
redis.call('SET', KEYS[2], ARGV[1], 'EX', tonumber(ARGV[2]))
return ARGV[1]
"""
"""Store a new request unless the effect that asks for it (KEYS[2], an inbox effect id) already stored one:
returns the id of the request that effect owns — a replayed command or click finds its first run's request."""

ACTION_SET_IF_STATUS = """
if redis.call('HGET', KEYS[1], 'status') ~= ARGV[1] then return 0 end
for i = 2, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
return 1
"""
"""Set fields only while the request is still in the expected status."""


# --- the command inbox (persistence.inbox) -------------------------------------------------------------
# KEYS: entries hash, due zset, owners hash, attempts hash

INBOX_RECORD = """
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[3], ARGV[1], ARGV[3])
redis.call('HSET', KEYS[4], ARGV[1], 1)
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
return 1
"""
"""ARGV: id, entry json, owner, lease ends (ms). The entry is ours (attempt 1) before Slack is acknowledged."""

INBOX_RENEW = """
local renewed = 0
for i = 3, #ARGV do
  if redis.call('HGET', KEYS[3], ARGV[i]) == ARGV[1] then
    redis.call('ZADD', KEYS[2], 'XX', ARGV[2], ARGV[i])
    renewed = renewed + 1
  end
end
return renewed
"""
"""ARGV: owner, lease ends (ms), ids…: extend the leases this owner still holds."""

INBOX_CLAIM = """
local claimed = {}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[2], 'LIMIT', 0, tonumber(ARGV[4]))) do
  local entry = redis.call('HGET', KEYS[1], id)
  if entry then
    redis.call('HSET', KEYS[3], id, ARGV[1])
    redis.call('ZADD', KEYS[2], ARGV[3], id)
    table.insert(claimed, {id, entry, redis.call('HINCRBY', KEYS[4], id, 1)})
  else
    redis.call('ZREM', KEYS[2], id)
  end
end
return claimed
"""
"""ARGV: owner, now (ms), lease ends (ms), limit: take over entries whose lease ended (their process died)."""

INBOX_DONE = """
if redis.call('HGET', KEYS[3], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
redis.call('HDEL', KEYS[4], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return 1
"""
"""ARGV: id, owner: the work is done; only the entry's current owner removes it (a fenced finish)."""
