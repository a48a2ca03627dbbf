"""The Lua scripts behind the shared LLM limiter (`shared_limiter`): each runs atomically in
Redis, so every process sees one consistent pool of slots.

Keys, under ``<prefix>:llm:`` (see `SlotKeys`):

- ``holders``  sorted set: one member per slot in use, ``<process>:<n>|<user>``, scored by
  its lease's expiry (Redis server time, ms). A member whose lease ran out (its process died
  or lost Redis for longer than the lease) is reclaimed by the next admission.
- ``queue``    sorted set: the calls waiting for a slot, scored by ticket (FIFO).
- ``waiters``  sorted set: the same members scored by lease expiry, so a dead process's
  waiters leave the queue too.
- ``users``    hash: user → slots that user holds (the per-user bound).
- ``total``    the service-wide number of slots (set by the first process from its settings,
  changed by a live resize; expires a few leases after the last process stopped renewing it).
- ``ticket``   the queue's ticket counter.
- ``gone``     sorted set: members released or withdrawn in the last lease, so that a
  script call sent before the release but run after it does not bring them back.

Members carry their user after the first ``|`` (empty: no per-user bound).
"""

from __future__ import annotations

_PRELUDE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function user_of(m)
  return string.sub(m, string.find(m, '|', 1, true) + 1)
end
local function drop_holder(users, m)
  local u = user_of(m)
  if u ~= '' and redis.call('HINCRBY', users, u, -1) <= 0 then
    redis.call('HDEL', users, u)
  end
end
"""

# KEYS: holders, queue, waiters, users, total, ticket, gone
# ARGV: per_user, default total, lease ms, channel, members…
# Queues the members not queued yet (nor holding, nor gone: a waiter whose queue place expired
# while its process stalled comes back at the end), then admits waiters in ticket order: one
# whose user is at their bound is skipped, and an eligible waiter of another process ahead of
# ours keeps its slot (it takes it at its process's next attempt). Returns the members that
# hold a slot (admitted now or before). Slots reclaimed from expired leases are announced on
# the channel, as a release would be (when calls are waiting: nobody else listens for it).
ADMIT = (
    _PRELUDE
    + """
local holders, queue, waiters, users, gone = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[7]
local reclaimed = false
for _, m in ipairs(redis.call('ZRANGEBYSCORE', holders, '-inf', now)) do
  redis.call('ZREM', holders, m)
  drop_holder(users, m)
  reclaimed = true
end
for _, m in ipairs(redis.call('ZRANGEBYSCORE', waiters, '-inf', now)) do
  redis.call('ZREM', queue, m)
  redis.call('ZREM', waiters, m)
  reclaimed = true
end
redis.call('ZREMRANGEBYSCORE', gone, '-inf', now)
if reclaimed and redis.call('EXISTS', queue) == 1 then
  redis.call('PUBLISH', ARGV[4], 'reclaimed')
end
local per_user = tonumber(ARGV[1])
local total = tonumber(redis.call('GET', KEYS[5]) or ARGV[2])
local lease = tonumber(ARGV[3])
local mine = {}
local admitted = {}
for i = 5, #ARGV do
  local m = ARGV[i]
  if redis.call('ZSCORE', holders, m) then
    table.insert(admitted, m)
  elseif redis.call('ZSCORE', queue, m) then
    mine[m] = true
  elseif not redis.call('ZSCORE', gone, m) then
    redis.call('ZADD', queue, redis.call('INCR', KEYS[6]), m)
    redis.call('ZADD', waiters, now + lease, m)
    mine[m] = true
  end
end
local free = total - redis.call('ZCARD', holders)
if free <= 0 then
  return admitted
end
local counts, chosen, first = {}, {}, 0
while free > 0 do
  local chunk = redis.call('ZRANGE', queue, first, first + 99)
  if #chunk == 0 then
    break
  end
  for _, m in ipairs(chunk) do
    local u = user_of(m)
    local eligible = true
    if u ~= '' then
      local c = counts[u] or tonumber(redis.call('HGET', users, u) or '0')
      eligible = c < per_user
      if eligible then
        c = c + 1
      end
      counts[u] = c
    end
    if eligible then
      free = free - 1
      if mine[m] then
        table.insert(chosen, m)
      end
      if free <= 0 then
        break
      end
    end
  end
  first = first + 100
end
for _, m in ipairs(chosen) do
  redis.call('ZREM', queue, m)
  redis.call('ZREM', waiters, m)
  redis.call('ZADD', holders, now + lease, m)
  local u = user_of(m)
  if u ~= '' then
    redis.call('HINCRBY', users, u, 1)
  end
  table.insert(admitted, m)
end
return admitted
"""
)

# KEYS: holders, queue, waiters, users, gone
# ARGV: channel, lease ms, members…
# Releases the members' slots and takes them out of the queue (a waiter giving up, even one
# admitted meanwhile), marking them gone for a lease; announces it on the channel when a slot
# or a queue place was freed and calls are waiting. Returns the number of slots released.
RELEASE = (
    _PRELUDE
    + """
local holders, queue, waiters, users, gone = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local released, changed = 0, false
for i = 3, #ARGV do
  local m = ARGV[i]
  redis.call('ZADD', gone, now + tonumber(ARGV[2]), m)
  redis.call('ZREM', waiters, m)
  if redis.call('ZREM', queue, m) == 1 then
    changed = true
  end
  if redis.call('ZREM', holders, m) == 1 then
    drop_holder(users, m)
    released = released + 1
    changed = true
  end
end
if changed and redis.call('EXISTS', queue) == 1 then
  redis.call('PUBLISH', ARGV[1], 'released')
end
return released
"""
)

# KEYS: holders, waiters, total
# ARGV: lease ms, total's expiry ms, default total, members…
# Extends the leases of the members still there (a reclaimed member is not brought back),
# keeps the total alive (setting it to the default when missing). Returns the total.
RENEW = (
    _PRELUDE
    + """
local expiry = now + tonumber(ARGV[1])
for i = 4, #ARGV do
  redis.call('ZADD', KEYS[1], 'XX', expiry, ARGV[i])
  redis.call('ZADD', KEYS[2], 'XX', expiry, ARGV[i])
end
redis.call('SET', KEYS[3], ARGV[3], 'NX')
redis.call('PEXPIRE', KEYS[3], ARGV[2])
return redis.call('GET', KEYS[3])
"""
)

# KEYS: holders, waiters, total
# ARGV: default total
# Returns {total, slots in use, calls waiting} (live leases only).
STATISTICS = (
    _PRELUDE
    + """
local live = '(' .. now
return {
  tonumber(redis.call('GET', KEYS[3]) or ARGV[1]),
  redis.call('ZCOUNT', KEYS[1], live, '+inf'),
  redis.call('ZCOUNT', KEYS[2], live, '+inf'),
}
"""
)

# KEYS: total
# ARGV: total, total's expiry ms, channel
RESIZE = """
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('PUBLISH', ARGV[3], 'resized')
return 1
"""
