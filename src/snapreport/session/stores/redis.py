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
store works again when Redis is back. The scripts are sent by a ``ScriptLink`` (redis-py's
connections and parser, without the client's per-command machinery; see ``redis_link``); the
few plain commands (BLPOP, GET, ZCOUNT, SCAN) go through the redis-py client.

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
import itertools
import secrets
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from snapreport.errors import (
    ConfigurationError,
    LockLost,
    SessionBusy,
    StoreUnavailable,
)
from snapreport.redis_link import (
    DEFAULT_CONNECT_TIMEOUT_SECONDS,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_SOCKET_TIMEOUT_SECONDS,
    Script,
    connect,
    link_or_client,
    run_script,
)
from snapreport.session.stores import redis_scripts as lua
from snapreport.session.stores.base import Lease, SessionPage

DEFAULT_LOCK_TTL_SECONDS: Final = 60.0

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
        # scripts go through a ScriptLink on a plain pool, else through the client itself
        self._link, self._call = link_or_client(client)
        self._prefix = prefix
        self._clock = clock
        self._ttl_ms = str(max(1, int(lock_ttl * 1000))).encode()
        self._s_acquire, self._s_commit = lua.turn_scripts(self._ttl_ms)
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

        The pool opens at most ``max_connections``, and the script link as many again (past
        that a command fails with StoreUnavailable). A turn uses one link connection at a
        time, and each user with waiters in this process holds one pool connection for its
        BLPOP. (redis-py's BlockingConnectionPool would queue instead, but costs a third of
        the throughput.)

        No automatic retries: a script whose reply was lost may have run, and running ACQUIRE
        or COMMIT twice would not be the same as once; a failure surfaces as StoreUnavailable.
        """
        client = connect(
            url,
            max_connections=max_connections,
            socket_timeout=socket_timeout,
            connect_timeout=connect_timeout,
        )
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

    async def _run(self, script: Script, keys: Sequence[str], args: Sequence[Any]) -> Any:
        try:
            return await run_script(self._call, script, keys, args)
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
            got = await self._run(lua.CANCEL, keys, (token, self._ttl_ms))
            if got != 0:  # handed over just as the wait ran out
                return self._lease(user_id, token, got)
            raise SessionBusy(
                f"user {user_id!r} is busy: waited {timeout:g}s for the previous message"
            ) from None
        except StoreUnavailable:
            with contextlib.suppress(StoreUnavailable):
                await self._abandon(user_id, token)
            raise
        got = await self._run(lua.CLAIM, keys, (token, self._ttl_ms))
        if got != 0:
            return self._lease(user_id, token, got)
        return None

    async def _abandon(self, user_id: str, token: str) -> None:
        """Leave the queue; if the lock was handed to us meanwhile, pass it on."""
        self._held.pop(token, None)
        got = await self._run(lua.CANCEL, (self._key(user_id, "s"),), (token, self._ttl_ms))
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
                        await self._run(lua.RECHECK, keys, (self._ttl_ms,))
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
        await self._run(lua.RELEASE, (self._key(user_id, "s"),), (token, self._ttl_ms))

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
                        lua.RENEW, (self._key(held.user_id, "s"),), (held.token, self._ttl_ms)
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
            lua.PAGE, self._idx_keys[:2], (repr(float(now)), cursor or "", limit, head, tail)
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
        args = (repr(float(now)), limit, head, tail)
        return int(await self._run(lua.PURGE, self._idx_keys, args))

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
                key = (self._key(user, "s"),)
                done += int(await self._run(lua.DROP_IF_KEPT_OUT, key, (repr(now),)))
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
        if self._link is not None:
            await self._link.aclose()
        if self._owns_client:
            with contextlib.suppress(RedisError, OSError):
                await self._redis.aclose()


def _blob_of(record: bytes | None) -> bytes | None:
    """The blob inside a stored record ``b"<expires_at>|<keep_until>|<blob>"``."""
    if record is None:
        return None
    return record.split(b"|", 2)[2]
