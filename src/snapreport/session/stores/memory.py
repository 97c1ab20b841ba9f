"""``MemorySessionStore``: one process, O(1) turns, expiry cost proportional to what expires.

Records sit in an ``OrderedDict`` in order of expiry: the engine's TTL is constant and its
clock never goes back, so every commit moves its record to the end and the expired records are
always at the front. Purging pops from the front and stops at the first live record, so its
cost is what expires, never the number of sessions. A record kept past its expiry (so that the
expiry can be noticed later) moves to a second ordered map until its keep time passes.

Locks: a user has an entry in the lock map only while someone holds their lock; waiters queue
in arrival order and the lock is handed to the next one directly, so nobody can barge in.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import NamedTuple

from snapreport.errors import LockLost, SessionBusy
from snapreport.session.stores.base import Lease, SessionPage

PURGE_PER_COMMIT = 16
PURGE_BATCH = 4096


class _Entry(NamedTuple):
    expires_at: float
    keep_until: float
    blob: bytes


class _Lock:
    __slots__ = ("token", "waiters")

    def __init__(self, token: str) -> None:
        self.token = token
        self.waiters: deque[asyncio.Future[str]] = deque()


class MemorySessionStore:
    """Sessions in this process's memory: not shared across processes, lost on restart."""

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._live: OrderedDict[str, _Entry] = OrderedDict()
        self._kept: OrderedDict[str, _Entry] = OrderedDict()
        self._locks: dict[str, _Lock] = {}
        self._tokens = itertools.count(1)

    # -- locking ---------------------------------------------------------------------------

    async def acquire(self, user_id: str, *, timeout: float) -> Lease:
        lock = self._locks.get(user_id)
        if lock is None:
            token = str(next(self._tokens))
            self._locks[user_id] = _Lock(token)
        else:
            token = await self._wait(user_id, lock, timeout)
        entry = self._live.get(user_id) or self._kept.get(user_id)
        return Lease(user_id, token, entry.blob if entry is not None else None)

    async def _wait(self, user_id: str, lock: _Lock, timeout: float) -> str:
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        lock.waiters.append(future)
        try:
            async with asyncio.timeout(timeout):
                return await asyncio.shield(future)
        except TimeoutError:
            if future.done() and not future.cancelled():
                return future.result()  # handed over just as the wait ran out
            future.cancel()
            raise SessionBusy(
                f"user {user_id!r} is busy: waited {timeout:g}s for the previous message"
            ) from None
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self._hand_over(user_id, future.result())  # we got it; pass it on
            else:
                future.cancel()
            raise

    def _hand_over(self, user_id: str, token: str) -> None:
        lock = self._locks.get(user_id)
        if lock is None or lock.token != token:
            return
        while lock.waiters:
            future = lock.waiters.popleft()
            if not future.done():
                lock.token = str(next(self._tokens))
                future.set_result(lock.token)
                return
        del self._locks[user_id]

    async def commit(
        self, lease: Lease, blob: bytes | None, *, expires_at: float, keep_until: float
    ) -> None:
        user_id = lease.user_id
        lock = self._locks.get(user_id)
        if lock is None or lock.token != lease.token:
            raise LockLost(f"the lock of {user_id!r} is no longer held; nothing was saved")
        self._kept.pop(user_id, None)
        if blob is None:
            self._live.pop(user_id, None)
        else:
            self._live[user_id] = _Entry(expires_at, max(keep_until, expires_at), blob)
            self._live.move_to_end(user_id)
        self._hand_over(user_id, lease.token)
        self._purge(self._clock(), PURGE_PER_COMMIT)

    async def release(self, lease: Lease) -> None:
        self._hand_over(lease.user_id, lease.token)

    # -- reading ---------------------------------------------------------------------------

    async def load(self, user_id: str) -> bytes | None:
        entry = self._live.get(user_id) or self._kept.get(user_id)
        return entry.blob if entry is not None else None

    async def count_active(self, now: float) -> int:
        await self._purge_all(now)
        return len(self._live)

    async def page_active(self, now: float, cursor: str | None, limit: int) -> SessionPage:
        await self._purge_all(now)
        ids = sorted(self._live)
        start = bisect.bisect_right(ids, cursor) if cursor is not None else 0
        chosen = ids[start : start + limit]
        more = start + len(chosen) < len(ids)
        return SessionPage(
            [(u, self._live[u].blob) for u in chosen], chosen[-1] if more and chosen else None
        )

    # -- expiry ----------------------------------------------------------------------------

    async def purge_expired(self, now: float, limit: int) -> int:
        return self._purge(now, limit)

    async def _purge_all(self, now: float) -> None:
        while self._purge(now, PURGE_BATCH) == PURGE_BATCH:
            await asyncio.sleep(0)  # let requests run between batches

    def _purge(self, now: float, limit: int) -> int:
        """Expire up to ``limit`` live records due by ``now``; drop kept ones past keep time."""
        done = 0
        live, kept = self._live, self._kept
        while live and done < limit:
            user_id, entry = next(iter(live.items()))
            if entry.expires_at > now:
                break
            del live[user_id]
            if entry.keep_until > now:
                kept[user_id] = entry
            done += 1
        while kept and done < limit:
            user_id, entry = next(iter(kept.items()))
            if entry.keep_until > now:
                break
            del kept[user_id]
            done += 1
        return done

    async def ping(self) -> None:
        return None

    async def aclose(self) -> None:
        return None

    @property
    def locked_users(self) -> int:
        """How many users' locks are held right now (the lock map never grows past this)."""
        return len(self._locks)

    def __len__(self) -> int:
        return len(self._live) + len(self._kept)
