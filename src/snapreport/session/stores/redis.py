"""``RedisSessionStore``: sessions shared by every worker process and machine (Redis 6.2+, Valkey).

Keys (``P`` is the configurable prefix; ``{user}`` is a Redis Cluster hash tag, so all of one
user's keys live in one slot and every per-turn script touches a single slot)::

    P:{user}:s        string "<expires_at>|<keep_until>|<blob>", SET with PX = keep_until - now
    P:{user}:l        lock  the holder's token, PX lock_ttl (renewed during long turns)
    P:{user}:q        list  waiters in arrival order, "token|deadline_ms"
    P:{user}:w:<id>   list  wake-ups for the waiters of one store instance (BLPOP)
    {P:idx}:exp       zset  user -> expires_at (logical expiry: counting)
    {P:idx}:lex       zset  user, score 0 (paging by user id, ZRANGEBYLEX)
    {P:idx}:kept      zset  user -> keep_until, for expired records kept for the notice

A turn is two round trips: ACQUIRE (take the lock if free and nobody queues, load the blob)
and COMMIT (check the token, write the record with its TTL and the index, drop the lock and hand
it to the first live waiter). Both are Lua scripts run by EVALSHA, reloaded on NOSCRIPT. Each
per-user script is given one key, the record, and derives the user's other keys from it: they
share its hash tag, hence its slot.

Failures: no automatic retries (a script whose reply was lost may have run, and ACQUIRE or
COMMIT run twice is not the same as once); connection errors and timeouts become
``StoreUnavailable`` at once (connect timeout 1 s, socket timeout 5 s by default), and the same
store works again when Redis is back.

Fencing: COMMIT refuses to write unless the lock still holds the turn's token; the refusal
surfaces as ``LockLost``. A lock outlives its holder by at most ``lock_ttl``: a renewal task
extends the locks this store holds every ``lock_ttl / 3`` and stops at commit or release.

Waiting: a busy user's lock is queued for in arrival order (the order the ACQUIRE scripts ran;
one store instance sends its ACQUIREs for one user one after another, so within a process that
is the order of ``acquire`` calls) and handed over directly by COMMIT/RELEASE, which pushes
the new holder's token onto the wake list of the store instance that waits for it. Each store
instance runs one BLPOP per user that has waiters here (not one per waiter), waking every
``poll`` seconds to notice a holder that died (its lock expired): then the first live waiter
is given the lock. A waiter that died is skipped once its wait has run out; one handed the
lock before that holds it up for at most ``lock_ttl``. ``SessionBusy`` ends a wait that runs
out.

The index and Redis Cluster: the three index sorted sets share their own slot, so a script that
updates a session and the index is cross-slot. That is fine on a single shard (standalone,
Sentinel, Valkey) and is the default (``index=True``): counting is one ZCOUNT, paging walks the
lex index, purging pops a range of the expiry index. On Redis Cluster pass ``index=False``:
every script then touches one user's slot only, and counting, paging and purging SCAN the
session keys on every node (O(sessions) per call; admin paths only, and Redis's own key TTL does
the physical expiry).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import secrets
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError, RedisError

from snapreport.errors import (
    ConfigurationError,
    LockLost,
    SessionBusy,
    StoreUnavailable,
)
from snapreport.session.stores.base import Lease, SessionPage

DEFAULT_LOCK_TTL_SECONDS: Final = 60.0
DEFAULT_SOCKET_TIMEOUT_SECONDS: Final = 5.0
DEFAULT_CONNECT_TIMEOUT_SECONDS: Final = 1.0
DEFAULT_MAX_CONNECTIONS: Final = 1024

# -- Lua ---------------------------------------------------------------------------------------

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


@dataclass(frozen=True, slots=True)
class _Script:
    source: str
    sha: bytes  # pre-encoded: redis-py passes bytes through untouched


def _script(source: str) -> _Script:
    import hashlib

    return _Script(source, hashlib.sha1(source.encode()).hexdigest().encode())  # noqa: S324


@functools.cache
def _turn_scripts(ttl_ms: bytes) -> tuple[_Script, _Script]:
    """ACQUIRE and COMMIT with the lock TTL (milliseconds) written in."""
    ttl = ttl_ms.decode()
    return _script(_ACQUIRE.replace(_TTL, ttl)), _script(_COMMIT.replace(_TTL, ttl))


# the numkeys argument of EVALSHA, pre-encoded
_NUMKEYS: Final = (b"0", b"1", b"2", b"3")

_S_RELEASE = _script(_RELEASE)
_S_RECHECK = _script(_RECHECK)
_S_CLAIM = _script(_CLAIM)
_S_CANCEL = _script(_CANCEL)
_S_RENEW = _script(_RENEW)
_S_PAGE = _script(_PAGE)
_S_PURGE = _script(_PURGE)
_S_DROP = _script(_DROP_IF_KEPT_OUT)


# -- bookkeeping -------------------------------------------------------------------------------


@dataclass(slots=True, eq=False)
class _Held:
    """A lock this store holds (``Lease.handle``); the renewal task extends it."""

    user_id: str
    token: str
    renewed_at: float


@dataclass(slots=True, eq=False)
class _WaitGroup:
    """The waiters of one user in this store instance, and the one task that BLPOPs for them."""

    futures: dict[str, asyncio.Future[None]] = field(default_factory=dict)
    task: asyncio.Task[None] | None = None


class RedisSessionStore:
    """Sessions in Redis: one key per session, a fenced per-user lock, FIFO handover."""

    def __init__(
        self,
        client: aioredis.Redis,
        *,
        prefix: str = "snapreport",
        clock: Callable[[], float] = time.time,
        lock_ttl: float = DEFAULT_LOCK_TTL_SECONDS,
        index: bool = True,
        poll: float | None = None,
        renew: bool = True,
        owns_client: bool = False,
    ) -> None:
        if not prefix or any(c in prefix for c in "{}*?[]"):
            raise ConfigurationError(f"redis key prefix {prefix!r} must be plain text")
        if lock_ttl <= 0:
            raise ConfigurationError("lock_ttl must be positive")
        self._redis = client
        self._owns_client = owns_client
        self._prefix = prefix
        self._clock = clock
        self._ttl_ms = str(max(1, int(lock_ttl * 1000))).encode()
        self._s_acquire, self._s_commit = _turn_scripts(self._ttl_ms)
        self._index = index
        self._renew_every = lock_ttl / 3
        self._renew = renew
        # a BLPOP must return before the socket timeout would call the connection dead
        pool = getattr(client, "connection_pool", None)
        kwargs = getattr(pool, "connection_kwargs", {})
        socket_timeout = kwargs.get("socket_timeout") or DEFAULT_SOCKET_TIMEOUT_SECONDS
        self._poll = poll if poll is not None else min(1.0, lock_ttl / 4, socket_timeout / 2)
        # a token is this instance's random id and a counter: unique without a random draw
        # (a system call) per turn
        self._id = secrets.token_hex(8)
        self._seq = itertools.count(1)
        tag = f"{{{prefix}:idx}}"
        self._idx_keys = [f"{tag}:exp", f"{tag}:lex", f"{tag}:kept"]
        self._held: dict[str, _Held] = {}
        self._groups: dict[str, _WaitGroup] = {}
        self._sending: dict[str, asyncio.Future[None]] = {}
        self._renewer: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        prefix: str = "snapreport",
        clock: Callable[[], float] = time.time,
        lock_ttl: float = DEFAULT_LOCK_TTL_SECONDS,
        socket_timeout: float = DEFAULT_SOCKET_TIMEOUT_SECONDS,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT_SECONDS,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        index: bool = True,
        **kwargs: Any,
    ) -> RedisSessionStore:
        """A store on its own connection pool, which ``aclose`` closes.

        The pool opens at most ``max_connections`` (past that a command fails with
        StoreUnavailable). A turn uses one at a time, and each user with waiters in this
        process holds one for its BLPOP. (redis-py's BlockingConnectionPool would queue instead,
        but costs a third of the throughput.)

        No automatic retries: a script whose reply was lost may have run, and running ACQUIRE
        or COMMIT twice would not be the same as once; a failure surfaces as StoreUnavailable.
        """
        pool = aioredis.ConnectionPool.from_url(
            url,
            max_connections=max_connections,
            decode_responses=False,
            socket_timeout=socket_timeout,
            socket_connect_timeout=connect_timeout,
            retry=Retry(NoBackoff(), 0),
        )
        client = aioredis.Redis(connection_pool=pool)
        client.auto_close_connection_pool = True
        return cls(
            client,
            prefix=prefix,
            clock=clock,
            lock_ttl=lock_ttl,
            index=index,
            owns_client=True,
            **kwargs,
        )

    # -- keys --------------------------------------------------------------------------------

    def _key(self, user_id: str, kind: str) -> str:
        return f"{self._prefix}:{{{user_id}}}:{kind}"

    @property
    def prefix(self) -> str:
        return self._prefix

    # -- scripts -----------------------------------------------------------------------------

    async def _run(self, script: _Script, keys: Sequence[str], args: Sequence[Any]) -> Any:
        run = self._redis.execute_command
        try:
            try:
                return await run("EVALSHA", script.sha, _NUMKEYS[len(keys)], *keys, *args)  # type: ignore[no-untyped-call]
            except NoScriptError:
                # EVAL runs it and caches it: a restarted or flushed server costs one EVAL
                return await run("EVAL", script.source, _NUMKEYS[len(keys)], *keys, *args)  # type: ignore[no-untyped-call]
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"redis session store: {exc or type(exc).__name__}") from exc

    # -- locking -----------------------------------------------------------------------------

    async def acquire(self, user_id: str, *, timeout: float) -> Lease:  # noqa: ASYNC109
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        key = self._key(user_id, "s")
        while True:
            token = f"{self._id}.{next(self._seq):x}"
            group: _WaitGroup | None = None
            future: asyncio.Future[None] | None = None
            # This store's ACQUIREs for one user reach Redis in call order (the next is sent
            # once the previous has answered), so queue order is arrival order here. It also
            # means no listener of ours can pop our wake-up before we register, unless one
            # already runs when we send: then we register first.
            previous = self._sending.get(user_id)
            sent = loop.create_future()
            self._sending[user_id] = sent
            try:
                try:
                    if previous is not None:
                        await asyncio.shield(previous)  # a cancelled caller keeps the chain
                    group = self._groups.get(user_id)
                    if group is not None:
                        future = group.futures[token] = loop.create_future()
                    wait_ms = max(1, int((deadline - loop.time()) * 1000))
                    got = await self._run(self._s_acquire, (key,), (token, wait_ms))
                finally:
                    sent.set_result(None)
                    if self._sending.get(user_id) is sent:
                        del self._sending[user_id]
                if got != 0:
                    return self._lease(user_id, token, got)
                if group is None:
                    group = self._groups.get(user_id)
                    if group is None:
                        group = self._groups[user_id] = _WaitGroup()
                if future is None:
                    future = group.futures[token] = loop.create_future()
                if group.task is None or group.task.done():
                    group.task = asyncio.create_task(self._listen(user_id, group))
                lease = await self._wait(user_id, token, future, deadline, timeout)
                if lease is not None:
                    return lease
                # handed the lock, but it expired before we claimed it: queue again
            except asyncio.CancelledError:
                # the script may have run: leave the queue or pass the lock on, in the background
                self._background(self._abandon(user_id, token))
                raise
            finally:
                if group is not None:
                    self._forget(user_id, group, token)

    async def _wait(
        self,
        user_id: str,
        token: str,
        future: asyncio.Future[None],
        deadline: float,
        timeout: float,  # noqa: ASYNC109 (for the message only)
    ) -> Lease | None:
        keys = (self._key(user_id, "s"),)
        try:
            async with asyncio.timeout_at(deadline):
                await future
        except TimeoutError:
            got = await self._run(_S_CANCEL, keys, (token, self._ttl_ms))
            if got != 0:  # handed over just as the wait ran out
                return self._lease(user_id, token, got)
            raise SessionBusy(
                f"user {user_id!r} is busy: waited {timeout:g}s for the previous message"
            ) from None
        except StoreUnavailable:
            with contextlib.suppress(StoreUnavailable):
                await self._abandon(user_id, token)
            raise
        got = await self._run(_S_CLAIM, keys, (token, self._ttl_ms))
        if got != 0:
            return self._lease(user_id, token, got)
        return None

    async def _abandon(self, user_id: str, token: str) -> None:
        """Leave the queue; if the lock was handed to us meanwhile, pass it on."""
        self._held.pop(token, None)
        got = await self._run(_S_CANCEL, (self._key(user_id, "s"),), (token, self._ttl_ms))
        if got != 0:
            await self._release_token(user_id, token)

    def _background(self, coro: Coroutine[Any, Any, None]) -> None:
        async def quietly() -> None:
            with contextlib.suppress(StoreUnavailable):
                await coro

        task = asyncio.create_task(quietly())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _forget(self, user_id: str, group: _WaitGroup, token: str) -> None:
        group.futures.pop(token, None)
        idle = not group.futures and (group.task is None or group.task.done())
        if idle and self._groups.get(user_id) is group:
            del self._groups[user_id]

    async def _listen(self, user_id: str, group: _WaitGroup) -> None:
        """One BLPOP loop per user with waiters in this store instance."""
        wake = self._key(user_id, "w:") + self._id
        keys = (self._key(user_id, "s"),)
        try:
            while group.futures:
                try:
                    popped: Any = await self._redis.blpop([wake], timeout=self._poll)
                    if popped is None:
                        # nobody handed over: maybe the holder died and its lock expired
                        await self._run(_S_RECHECK, keys, (self._ttl_ms,))
                        continue
                except (RedisError, OSError, StoreUnavailable) as exc:
                    error = StoreUnavailable(f"redis session store: {exc or type(exc).__name__}")
                    for future in group.futures.values():
                        if not future.done():
                            future.set_exception(error)
                    return
                token = popped[1].decode()
                waiter = group.futures.get(token)
                if waiter is not None:
                    if not waiter.done():
                        waiter.set_result(None)
                elif token not in self._held:  # its waiter is gone: do not sit on the lock
                    self._background(self._release_token(user_id, token))
        finally:
            if not group.futures and self._groups.get(user_id) is group:
                del self._groups[user_id]

    async def _release_token(self, user_id: str, token: str) -> None:
        await self._run(_S_RELEASE, (self._key(user_id, "s"),), (token, self._ttl_ms))

    def _lease(self, user_id: str, token: str, reply: bytes | int) -> Lease:
        blob = _blob_of(reply) if isinstance(reply, bytes) else None
        held = _Held(user_id, token, time.monotonic())
        self._held[token] = held
        if self._renew and (self._renewer is None or self._renewer.done()) and not self._closed:
            self._renewer = asyncio.create_task(self._renew_loop())
        return Lease(user_id, token, blob, held)

    async def _renew_loop(self) -> None:
        """Extend the locks of turns still running; one task for the whole store, which ends
        after a round with nothing to renew (and starts again with the next lease)."""
        while True:
            await asyncio.sleep(self._renew_every)
            if not self._held:
                return
            cutoff = time.monotonic() - self._renew_every * 0.9
            for held in [h for h in self._held.values() if h.renewed_at <= cutoff]:
                if held.token not in self._held:
                    continue
                try:
                    ok = await self._run(
                        _S_RENEW, (self._key(held.user_id, "s"),), (held.token, self._ttl_ms)
                    )
                except StoreUnavailable:
                    continue  # try again next round; the lock may still be ours
                held.renewed_at = time.monotonic()
                if not ok:
                    self._held.pop(held.token, None)

    async def commit(
        self, lease: Lease, blob: bytes | None, *, expires_at: float, keep_until: float
    ) -> None:
        user_id, token = lease.user_id, lease.token
        self._held.pop(token, None)  # renewal stops here, whatever the outcome
        keep_until = max(keep_until, expires_at)
        session_key = self._key(user_id, "s")
        keys = (session_key, self._idx_keys[0]) if self._index else (session_key,)
        if blob is None:
            record = b""
        else:
            record = f"{float(expires_at)!r}|{float(keep_until)!r}|".encode() + blob
        keep_px = max(1, int((keep_until - self._clock()) * 1000))
        if not await self._run(self._s_commit, keys, (token, record, keep_px)):
            raise LockLost(f"the lock of {user_id!r} is no longer held; nothing was saved")

    async def release(self, lease: Lease) -> None:
        self._held.pop(lease.token, None)
        await self._release_token(lease.user_id, lease.token)

    # -- reading -----------------------------------------------------------------------------

    async def load(self, user_id: str) -> bytes | None:
        try:
            record: Any = await self._redis.get(self._key(user_id, "s"))
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"redis session store: {exc or type(exc).__name__}") from exc
        return _blob_of(record)

    async def count_active(self, now: float) -> int:
        if not self._index:
            return sum(1 for _ in await self._scan_active(now))
        try:
            return int(await self._redis.zcount(self._idx_keys[0], f"({float(now)!r}", "+inf"))
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"redis session store: {exc or type(exc).__name__}") from exc

    async def page_active(self, now: float, cursor: str | None, limit: int) -> SessionPage:
        if not self._index:
            return await self._page_by_scan(now, cursor, limit)
        head, tail = f"{self._prefix}:{{", "}:s"
        out = await self._run(
            _S_PAGE, self._idx_keys[:2], (repr(float(now)), cursor or "", limit, head, tail)
        )
        more = out.pop() == 1
        items = [(out[i].decode(), _blob_of(out[i + 1]) or b"") for i in range(0, len(out), 2)]
        return SessionPage(items, items[-1][0] if more and items else None)

    # -- expiry ------------------------------------------------------------------------------

    async def purge_expired(self, now: float, limit: int) -> int:
        if limit <= 0:
            return 0
        if not self._index:
            return await self._purge_by_scan(now, limit)
        head, tail = f"{self._prefix}:{{", "}:s"
        return int(await self._run(_S_PURGE, self._idx_keys, (repr(float(now)), limit, head, tail)))

    # -- scan mode (Redis Cluster) -----------------------------------------------------------

    async def _scan_records(self) -> list[tuple[str, float, float]]:
        """Every session record as (user, expires_at, keep_until), by SCAN on every node."""
        head = f"{self._prefix}:{{"
        out: list[tuple[str, float, float]] = []
        try:
            keys = [k async for k in self._redis.scan_iter(match=f"{head}*}}:s", count=1000)]
            for start in range(0, len(keys), 500):
                chunk = keys[start : start + 500]
                async with self._redis.pipeline(transaction=False) as pipe:
                    for key in chunk:
                        pipe.getrange(key, 0, 63)
                    rows = await pipe.execute()
                for key, row in zip(chunk, rows, strict=True):
                    parts = row.split(b"|", 2)
                    if len(parts) == 3:
                        user = key.decode()[len(head) : -len("}:s")]
                        out.append((user, float(parts[0]), float(parts[1])))
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"redis session store: {exc or type(exc).__name__}") from exc
        return out

    async def _scan_active(self, now: float) -> list[str]:
        return sorted(user for user, e, _ in await self._scan_records() if e > now)

    async def _page_by_scan(self, now: float, cursor: str | None, limit: int) -> SessionPage:
        ids = [u for u in await self._scan_active(now) if cursor is None or u > cursor]
        items: list[tuple[str, bytes]] = []
        for user in ids:
            if len(items) == limit:
                return SessionPage(items, items[-1][0])
            blob = await self.load(user)
            if blob is not None:
                items.append((user, blob))
        return SessionPage(items, None)

    async def _purge_by_scan(self, now: float, limit: int) -> int:
        done = 0
        for user, _, keep in await self._scan_records():
            if done >= limit:
                break
            if keep <= now:
                done += int(await self._run(_S_DROP, (self._key(user, "s"),), (repr(now),)))
        return done

    # -- lifecycle ---------------------------------------------------------------------------

    async def ping(self) -> None:
        try:
            await self._redis.ping()
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"redis session store: {exc or type(exc).__name__}") from exc

    async def aclose(self) -> None:
        self._closed = True
        tasks = [g.task for g in self._groups.values() if g.task is not None]
        tasks += self._tasks
        if self._renewer is not None:
            tasks.append(self._renewer)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._held.clear()
        if self._owns_client:
            with contextlib.suppress(RedisError, OSError):
                await self._redis.aclose()

    @property
    def held_locks(self) -> int:
        """How many locks this store instance holds for running turns."""
        return len(self._held)


def _blob_of(record: bytes | None) -> bytes | None:
    """The blob inside a stored record ``b"<expires_at>|<keep_until>|<blob>"``."""
    if record is None:
        return None
    return record.split(b"|", 2)[2]
