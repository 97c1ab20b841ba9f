"""``MemorySessionStore``: one process, O(1) turns, expiry cost proportional to what expires.

Built so that no request ever pays for the number of sessions, even at a million of them:

- Records: each user's blob is stored with a 16-byte header (its ``expires_at`` and
  ``keep_until``) as ONE exact-size bytes object, in one of 256 dicts chosen by the user id's
  hash. Sharding bounds the cost of the occasional dict resize (a single dict of a million
  entries stalls tens of milliseconds when it grows or compacts). A dict of strings to bytes
  is untracked by the garbage collector once a full collection has seen it, so collections
  do not walk the records either (a big sorted index of ids would be walked: there is none).
- Expiry: a timing wheel of one-second buckets, each a dict of the users whose deadline falls
  in it (their ``expires_at``; once expired, their ``keep_until``). A commit moves its user from
  one bucket to another: O(1). Purging empties the buckets that lie wholly in the past, so its
  cost is what expires, never the number of sessions; ``count_active`` also checks the one
  current bucket, record by record, so counts are exact.
- Expired records that must be kept (so that the engine can notice the expiry at the user's
  next message) stay in place until ``keep_until``; ``_kept`` names them.
- Listing (an admin's, not a request's) selects a page shard by shard, yielding in between.
- Locks: a user has an entry in the lock map only while someone holds their lock; waiters
  queue in arrival order and the lock is handed to the next one directly, so nobody barges in.

Each commit purges a few due records; ``purge_expired`` (the engine's sweeper) does the rest
in bounded steps. The store's clock must be the engine's: it decides what a commit may purge.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
import struct
import time
from collections import deque
from collections.abc import Callable
from typing import Final

from snapreport.errors import LockLost, SessionBusy
from snapreport.session.stores.base import Lease, SessionPage

PURGE_PER_COMMIT: Final = 16
PURGE_BATCH: Final = 512  # records per step when counting; a step takes well under 1 ms
SCAN_BATCH: Final = 4096  # records looked at between two yields to the event loop
SHARDS: Final = 256
BUCKET_SECONDS: Final = 1.0

_HEADER: Final = struct.Struct("<dd")  # expires_at, keep_until
_HEADER_SIZE: Final = _HEADER.size
_read_header: Final = _HEADER.unpack_from
_pack_header: Final = _HEADER.pack


_FAR: Final = 1e15  # beyond any clock; a record that never expires is filed here


def _bucket(t: float) -> int:
    return math.floor(min(t, _FAR) / BUCKET_SECONDS)


class _Lock:
    __slots__ = ("token", "waiters")

    def __init__(self, token: str) -> None:
        self.token = token
        self.waiters: deque[asyncio.Future[str]] = deque()


class MemorySessionStore:
    """Sessions in this process's memory: not shared across processes, lost on restart."""

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._shards: tuple[dict[str, bytes], ...] = tuple({} for _ in range(SHARDS))
        self._count = 0  # records held, live and kept
        self._kept: set[str] = set()  # records past expires_at, kept until keep_until
        self._wheel: dict[int, dict[str, None]] = {}  # bucket -> users whose deadline is in it
        self._buckets: list[int] = []  # heap of the wheel's buckets
        self._locks: dict[str, _Lock] = {}
        self._tokens = itertools.count(1)

    def _shard(self, user_id: str) -> dict[str, bytes]:
        return self._shards[hash(user_id) % SHARDS]

    # -- locking ---------------------------------------------------------------------------

    async def acquire(self, user_id: str, *, timeout: float) -> Lease:  # noqa: ASYNC109
        lock = self._locks.get(user_id)
        if lock is None:
            token = str(next(self._tokens))
            self._locks[user_id] = _Lock(token)
        else:
            token = await self._wait(user_id, lock, timeout)
        return Lease(user_id, token, self._blob(user_id))

    async def _wait(self, user_id: str, lock: _Lock, wait_seconds: float) -> str:
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        lock.waiters.append(future)
        try:
            async with asyncio.timeout(wait_seconds):
                return await asyncio.shield(future)
        except TimeoutError:
            if future.done() and not future.cancelled():
                return future.result()  # handed over just as the wait ran out
            future.cancel()
            raise SessionBusy(
                f"user {user_id!r} is busy: waited {wait_seconds:g}s for the previous message"
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
        shard = self._shard(user_id)
        old = shard.get(user_id)
        if old is not None:
            self._unfile(user_id, old)
        if blob is not None:
            # one exact-size object: msgspec's output buffer may be larger than its content
            shard[user_id] = _pack_header(expires_at, max(keep_until, expires_at)) + blob
            self._file(user_id, expires_at)
            if old is None:
                self._count += 1
        elif old is not None:
            self._drop(user_id, shard)
        self._hand_over(user_id, lease.token)
        if self._buckets:
            now = self._clock()
            if self._buckets[0] < _bucket(now):
                self._purge(now, PURGE_PER_COMMIT)

    async def release(self, lease: Lease) -> None:
        self._hand_over(lease.user_id, lease.token)

    # -- the wheel ---------------------------------------------------------------------------

    def _file(self, user_id: str, deadline: float) -> None:
        b = _bucket(deadline)
        members = self._wheel.get(b)
        if members is None:
            self._wheel[b] = members = {}
            heapq.heappush(self._buckets, b)
        members[user_id] = None

    def _unfile(self, user_id: str, record: bytes) -> None:
        """Take a record out of the wheel (and out of the kept ones)."""
        expires_at, keep_until = _read_header(record)
        kept = self._kept
        if kept and user_id in kept:
            kept.remove(user_id)
            deadline = keep_until
        else:
            deadline = expires_at
        members = self._wheel.get(_bucket(deadline))
        if members is not None:
            members.pop(user_id, None)

    def _drop(self, user_id: str, shard: dict[str, bytes]) -> None:
        del shard[user_id]
        self._count -= 1

    def _purge(self, now: float, limit: int) -> int:
        """Handle up to ``limit`` records whose deadline lies in a bucket wholly before
        ``now``: an expired record is dropped, or kept until its keep time if that is later."""
        current = _bucket(now)
        buckets, wheel, kept = self._buckets, self._wheel, self._kept
        done = 0
        while buckets and buckets[0] < current and done < limit:
            b = buckets[0]
            members = wheel[b]
            while members and done < limit:
                user_id, _ = members.popitem()
                done += 1
                shard = self._shard(user_id)
                if user_id in kept:
                    kept.remove(user_id)
                    self._drop(user_id, shard)
                    continue
                keep_until = _read_header(shard[user_id])[1]
                if keep_until > now:
                    kept.add(user_id)
                    self._file(user_id, keep_until)
                else:
                    self._drop(user_id, shard)
            if not members:
                heapq.heappop(buckets)
                del wheel[b]
        return done

    # -- reading ---------------------------------------------------------------------------

    def _blob(self, user_id: str) -> bytes | None:
        record = self._shard(user_id).get(user_id)
        return record[_HEADER_SIZE:] if record is not None else None

    async def load(self, user_id: str) -> bytes | None:
        return self._blob(user_id)

    async def count_active(self, now: float) -> int:
        current = _bucket(now)
        while self._buckets and self._buckets[0] < current:
            self._purge(now, PURGE_BATCH)
            await asyncio.sleep(0)  # let requests run between steps
        # what is left to expire lies in the current bucket: check it record by record
        members = list(self._wheel.get(current, ()))
        due = 0
        for start in range(0, len(members), SCAN_BATCH):
            if start:
                await asyncio.sleep(0)
            for user_id in members[start : start + SCAN_BATCH]:
                record = self._shard(user_id).get(user_id)
                if record is not None and user_id not in self._kept:
                    due += _read_header(record)[0] <= now
        return self._count - len(self._kept) - due

    async def page_active(self, now: float, cursor: str | None, limit: int) -> SessionPage:
        """The ``limit`` smallest live ids after ``cursor``, and whether there are more.

        An admin's listing, not a request's: it looks at every id, shard by shard (in C, by
        ``heapq.nsmallest``), and yields to the event loop between shards, so it never holds
        the loop for long. Keeping ids sorted instead would cost every new session and every
        expiry, and a large sorted structure is costly for the garbage collector."""
        want = limit + 1  # one more tells whether there is a next page
        found: list[str] = []
        scanned = 0
        for shard in self._shards:
            if scanned >= SCAN_BATCH:
                scanned = 0
                await asyncio.sleep(0)
            scanned += len(shard)
            low, live = cursor, 0
            while live < want:
                ids = heapq.nsmallest(want, shard if low is None else filter(low.__lt__, shard))
                for user_id in ids:
                    if _read_header(shard[user_id])[0] > now:
                        found.append(user_id)
                        live += 1
                if len(ids) < want:
                    break  # the shard has no more ids after ``low``
                low = ids[-1]
        items: list[tuple[str, bytes]] = []
        chosen = heapq.nsmallest(want, found)
        for user_id in chosen[:limit]:
            blob = self._blob(user_id)  # it may have gone while we yielded
            if blob is not None:
                items.append((user_id, blob))
        more = len(chosen) > limit and bool(items)
        return SessionPage(items, items[-1][0] if more else None)

    # -- expiry ----------------------------------------------------------------------------

    async def purge_expired(self, now: float, limit: int) -> int:
        return self._purge(now, limit)

    async def ping(self) -> None:
        return None

    async def aclose(self) -> None:
        return None

    @property
    def locked_users(self) -> int:
        """How many users' locks are held right now (the lock map never grows past this)."""
        return len(self._locks)

    def __len__(self) -> int:
        """Records held: live ones and expired ones kept for their expiry notice."""
        return self._count
