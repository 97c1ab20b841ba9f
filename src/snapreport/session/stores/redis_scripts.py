"""The Lua scripts of ``RedisSessionStore`` (see its module docstring for the key layout).

Every per-user script is given ONE key, the user's record ``P:{user}:s``, and derives the
user's other keys from it (same hash tag, so the same Cluster slot). Scripts use only commands
of Redis 6.2; they run by EVALSHA and are loaded again on NOSCRIPT.
"""

from __future__ import annotations

import functools

from snapreport.redis_link import Script, script

# Every per-user script is given ONE key, the user's record ``P:{user}:s``, and derives the
# user's other keys from it (same hash tag, so same Cluster slot): fewer arguments to encode on
# the hot path. ``base`` is ``P:{user}:``.
_LUA_HELPERS = """
local sess = KEYS[1]
local base = string.sub(sess, 1, -2)
local lock, queue = base .. 'l', base .. 'q'
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
-- give the lock to the first waiter whose wait has not run out; wake it
local function handover(ttl)
  local now = nil
  while true do
    local e = redis.call('LPOP', queue)
    if not e then return false end
    local bar = string.find(e, '|', 1, true)
    local tok = string.sub(e, 1, bar - 1)
    now = now or now_ms()
    if tonumber(string.sub(e, bar + 1)) > now then
      redis.call('SET', lock, tok, 'PX', ttl)
      local wake = base .. 'w:' .. string.sub(tok, 1, string.find(tok, '.', 1, true) - 1)
      redis.call('RPUSH', wake, tok)
      redis.call('PEXPIRE', wake, ttl)
      return tok
    end
  end
end
"""

# Scripts that may hand out the lock answer: the record (locked; it exists), 1 (locked; no
# record) or 0 (not locked). A bulk string or an integer: the cheapest replies to parse.
#
# The two scripts of every turn (ACQUIRE, COMMIT) are compiled per lock TTL: the TTL is written
# into their source as a string literal (``_TTL``), one argument fewer to encode and send on
# every call, and no number-to-string conversion inside Redis (Lua hands numbers to commands
# as text again, which costs more than the command itself for SET ... PX).
_TTL = "@LOCK_TTL_MS@"

# ARGV token wait_ms
_ACQUIRE = (
    _LUA_HELPERS
    + """
local token, ttl = ARGV[1], '@LOCK_TTL_MS@'
if redis.call('SET', lock, token, 'NX', 'PX', ttl) then
  if redis.call('LLEN', queue) == 0 then return redis.call('GET', sess) or 1 end
  -- the lock had expired while others waited: they go first
  redis.call('DEL', lock)
  handover(ttl)
  if redis.call('SET', lock, token, 'NX', 'PX', ttl) then
    return redis.call('GET', sess) or 1
  end
elseif redis.call('GET', lock) == token then
  return redis.call('GET', sess) or 1
end
local wait = tonumber(ARGV[2])
local entry = token .. '|' .. (now_ms() + wait)
redis.call('RPUSH', queue, entry)
local keep = wait + tonumber(ttl)
if redis.call('PTTL', queue) < keep then redis.call('PEXPIRE', queue, keep) end
return 0
"""
)

# KEYS record [exp] | ARGV token record keep_px -- an empty record deletes
_COMMIT = (
    _LUA_HELPERS
    + """
if redis.call('GET', lock) ~= ARGV[1] then return 0 end
local record, indexed = ARGV[2], #KEYS > 1
local user
if indexed then
  -- P:{user}:s, and a prefix has no braces
  user = string.sub(sess, string.find(sess, '{', 1, true) + 1, -4)
end
if record ~= '' then
  redis.call('SET', sess, record, 'PX', ARGV[3])
  -- 'exp' and 'lex' hold the same members (so 'lex' is written only for a new member); a
  -- stale 'kept' entry may stay, as PURGE re-reads keep_until before it deletes anything
  if indexed and redis.call('ZADD', KEYS[2], string.match(record, '^[^|]*'), user) == 1 then
    redis.call('ZADD', string.sub(KEYS[2], 1, -4) .. 'lex', 0, user)
  end
else
  redis.call('DEL', sess)
  if indexed then
    local idx = string.sub(KEYS[2], 1, -4)
    redis.call('ZREM', KEYS[2], user)
    redis.call('ZREM', idx .. 'lex', user)
    redis.call('ZREM', idx .. 'kept', user)
  end
end
redis.call('DEL', lock)
handover('@LOCK_TTL_MS@')
return 1
"""
)

# ARGV token ttl_ms
_RELEASE = (
    _LUA_HELPERS
    + """
if redis.call('GET', lock) ~= ARGV[1] then return 0 end
redis.call('DEL', lock)
handover(ARGV[2])
return 1
"""
)

# ARGV ttl_ms -- a waiter's periodic look for a holder that died (its lock expired)
_RECHECK = (
    _LUA_HELPERS
    + """
if redis.call('EXISTS', lock) == 1 or redis.call('LLEN', queue) == 0 then return 0 end
if handover(ARGV[1]) then return 1 end
return 0
"""
)

# ARGV token ttl_ms -- a woken waiter takes what was handed to it
_CLAIM = (
    _LUA_HELPERS
    + """
if redis.call('GET', lock) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', lock, ARGV[2])
return redis.call('GET', sess) or 1
"""
)

# ARGV token ttl_ms -- a wait ran out or was given up: leave the queue, or take the lock if it
#   was handed over meanwhile
_CANCEL = (
    _LUA_HELPERS
    + """
if redis.call('GET', lock) == ARGV[1] then
  redis.call('PEXPIRE', lock, ARGV[2])
  return redis.call('GET', sess) or 1
end
local mine = ARGV[1] .. '|'
for _, e in ipairs(redis.call('LRANGE', queue, 0, -1)) do
  if string.sub(e, 1, #mine) == mine then
    redis.call('LREM', queue, 1, e)
    break
  end
end
return 0
"""
)

# ARGV token ttl_ms
_RENEW = (
    _LUA_HELPERS
    + """
if redis.call('GET', lock) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', lock, ARGV[2])
return 1
"""
)

# KEYS exp lex | ARGV now cursor limit key_head key_tail -> {user, blob, ..., more}
_PAGE = """
local exp, lex = KEYS[1], KEYS[2]
local now, limit = tonumber(ARGV[1]), tonumber(ARGV[3])
local start = '-'
if ARGV[2] ~= '' then start = '(' .. ARGV[2] end
local out, found = {}, 0
while true do
  local ids = redis.call('ZRANGEBYLEX', lex, start, '+', 'LIMIT', 0, 256)
  if #ids == 0 then break end
  for _, id in ipairs(ids) do
    local score = redis.call('ZSCORE', exp, id)
    if score and tonumber(score) > now then
      local blob = redis.call('GET', ARGV[4] .. id .. ARGV[5])
      if blob then
        if found == limit then
          out[#out + 1] = 1
          return out
        end
        found = found + 1
        out[#out + 1] = id
        out[#out + 1] = blob
      end
    end
  end
  start = '(' .. ids[#ids]
end
out[#out + 1] = 0
return out
"""

# a record is "<expires_at>|<keep_until>|<blob>": its header, without reading the blob
_KEEP_OF = """
local function keep_of(key)
  local head = redis.call('GETRANGE', key, 0, 63)
  local bar = string.find(head, '|', 1, true)
  if not bar then return nil end
  return tonumber(string.sub(head, bar + 1, string.find(head, '|', bar + 1, true) - 1))
end
"""

# KEYS exp lex kept | ARGV now limit key_head key_tail -> how many records left the live set
#   or were dropped (an expired record still to be noticed moves to 'kept' until keep_until)
_PURGE = (
    _KEEP_OF
    + """
local exp, lex, kept = KEYS[1], KEYS[2], KEYS[3]
local now, limit = tonumber(ARGV[1]), tonumber(ARGV[2])
local done = 0
local ids = redis.call('ZRANGEBYSCORE', exp, '-inf', now, 'LIMIT', 0, limit)
for _, id in ipairs(ids) do
  redis.call('ZREM', exp, id)
  redis.call('ZREM', lex, id)
  local sess = ARGV[3] .. id .. ARGV[4]
  local keep = keep_of(sess)
  if keep and keep > now then
    redis.call('ZADD', kept, keep, id)
  else
    redis.call('DEL', sess)
  end
  done = done + 1
end
if done < limit then
  ids = redis.call('ZRANGEBYSCORE', kept, '-inf', now, 'LIMIT', 0, limit - done)
  for _, id in ipairs(ids) do
    redis.call('ZREM', kept, id)
    local sess = ARGV[3] .. id .. ARGV[4]
    local keep = keep_of(sess)
    if keep and keep <= now then redis.call('DEL', sess) end
    done = done + 1
  end
end
return done
"""
)

# KEYS session | ARGV now -- scan mode: drop one record if its keep time has passed
_DROP_IF_KEPT_OUT = (
    _KEEP_OF
    + """
local keep = keep_of(KEYS[1])
if keep and keep <= tonumber(ARGV[1]) then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
"""
)


@functools.cache
def turn_scripts(ttl_ms: bytes) -> tuple[Script, Script]:
    """ACQUIRE and COMMIT with the lock TTL (milliseconds) written in."""
    ttl = ttl_ms.decode()
    return script(_ACQUIRE.replace(_TTL, ttl)), script(_COMMIT.replace(_TTL, ttl))


RELEASE = script(_RELEASE)
RECHECK = script(_RECHECK)
CLAIM = script(_CLAIM)
CANCEL = script(_CANCEL)
RENEW = script(_RENEW)
PAGE = script(_PAGE)
PURGE = script(_PURGE)
DROP_IF_KEPT_OUT = script(_DROP_IF_KEPT_OUT)
