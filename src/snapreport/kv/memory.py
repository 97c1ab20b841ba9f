"""``MemoryKeyValueStore``: one process; expired keys are dropped lazily and in small sweeps.

Expiry is filed by the second: each key is appended to the list of the second its deadline
falls in, and a small heap holds those seconds (one entry per second in use, however many keys
share it). Filing a key is a dict lookup and a list append, whatever the number of keys;
every write then sweeps a few keys from the oldest second that has passed.

The number of keys is bounded: past ``max_entries`` the least recently used key is evicted
(reads and writes both count as use), so memory stays bounded whatever the traffic, at the
price of forgetting the oldest entries early (a message id seen long ago and evicted runs
again if it is repeated). The expiry filing is rebuilt from the live keys whenever it holds
more than twice as many names as there are keys, so evicted keys do not linger there either.
"""

from __future__ import annotations

import heapq
import math
import time
from collections.abc import Callable

SWEEP_PER_WRITE = 8
DEFAULT_MAX_ENTRIES = 50_000


class MemoryKeyValueStore:
    """Keys in this process's memory, with an injected clock."""

    def __init__(
        self, *, clock: Callable[[], float] = time.time, max_entries: int = DEFAULT_MAX_ENTRIES
    ) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self._clock = clock
        self.max_entries = max_entries
        # insertion order is recency: a key used is moved to the end, the first is evicted
        self._data: dict[str, tuple[float, bytes]] = {}
        self._due: dict[int, list[str]] = {}  # second -> keys whose deadline falls in it
        self._seconds: list[int] = []  # a heap of the keys of ``_due``
        self._filed = 0  # names held in ``_due``

    def _live(self, key: str) -> bytes | None:
        item = self._data.get(key)
        if item is None:
            return None
        if item[0] <= self._clock():
            del self._data[key]
            return None
        self._data[key] = self._data.pop(key)  # most recently used
        return item[1]

    def _put(self, key: str, value: bytes, ttl_seconds: float) -> None:
        now = self._clock()
        deadline = now + ttl_seconds
        data = self._data
        data.pop(key, None)
        data[key] = (deadline, value)
        if len(data) > self.max_entries:
            del data[next(iter(data))]  # the least recently used
        self._file(key, deadline)
        self._sweep(now, SWEEP_PER_WRITE)
        if self._filed > 2 * self.max_entries:
            self._refile()

    def _file(self, key: str, deadline: float) -> None:
        second = math.floor(deadline)
        keys = self._due.get(second)
        if keys is None:
            keys = self._due[second] = []
            heapq.heappush(self._seconds, second)
        keys.append(key)
        self._filed += 1

    def _refile(self) -> None:
        """File the live keys afresh, dropping the names of evicted and rewritten ones."""
        self._due = {}
        self._seconds = []
        self._filed = 0
        for key, (deadline, _) in self._data.items():
            self._file(key, deadline)

    def _sweep(self, now: float, limit: int) -> None:
        """Drop up to ``limit`` filed keys of seconds that have wholly passed."""
        seconds, due, data = self._seconds, self._due, self._data
        while seconds and seconds[0] + 1 <= now and limit > 0:
            keys = due[seconds[0]]
            while keys and limit > 0:
                key = keys.pop()
                self._filed -= 1
                item = data.get(key)
                if item is not None and item[0] <= now:  # not written again since
                    del data[key]
                limit -= 1
            if not keys:
                del due[heapq.heappop(seconds)]

    async def get(self, key: str) -> bytes | None:
        return self._live(key)

    async def set(self, key: str, value: bytes, *, ttl_seconds: float) -> None:
        self._put(key, value, ttl_seconds)

    async def set_if_absent(self, key: str, value: bytes, *, ttl_seconds: float) -> bool:
        if self._live(key) is not None:
            return False
        self._put(key, value, ttl_seconds)
        return True

    async def replace_if(
        self, key: str, expected: bytes, value: bytes, *, ttl_seconds: float
    ) -> bool:
        if self._live(key) != expected:
            return False
        self._put(key, value, ttl_seconds)
        return True

    async def delete(self, key: str) -> None:
        self._data.pop(key, None)

    async def incr(self, key: str, *, ttl_seconds: float) -> int:
        item = self._data.get(key)
        if item is None or item[0] <= self._clock():
            self._put(key, b"1", ttl_seconds)
            return 1
        value = int(item[1]) + 1
        del self._data[key]
        self._data[key] = (item[0], str(value).encode())  # most recently used
        return value

    async def aclose(self) -> None:
        return None
