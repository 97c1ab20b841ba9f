"""``MemoryKeyValueStore``: one process; expired keys are dropped lazily and in small sweeps."""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable

SWEEP_PER_WRITE = 8


class MemoryKeyValueStore:
    """Keys in this process's memory, with an injected clock."""

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._data: dict[str, tuple[float, bytes]] = {}
        self._expiry: list[tuple[float, str]] = []

    def _live(self, key: str) -> bytes | None:
        item = self._data.get(key)
        if item is None:
            return None
        if item[0] <= self._clock():
            del self._data[key]
            return None
        return item[1]

    def _put(self, key: str, value: bytes, ttl_seconds: float) -> None:
        deadline = self._clock() + ttl_seconds
        self._data[key] = (deadline, value)
        heapq.heappush(self._expiry, (deadline, key))
        self._sweep(SWEEP_PER_WRITE)

    def _sweep(self, limit: int) -> None:
        now = self._clock()
        while self._expiry and limit > 0 and self._expiry[0][0] <= now:
            deadline, key = heapq.heappop(self._expiry)
            item = self._data.get(key)
            if item is not None and item[0] == deadline:
                del self._data[key]
            limit -= 1

    async def get(self, key: str) -> bytes | None:
        return self._live(key)

    async def set(self, key: str, value: bytes, *, ttl_seconds: float) -> None:
        self._put(key, value, ttl_seconds)

    async def set_if_absent(self, key: str, value: bytes, *, ttl_seconds: float) -> bool:
        if self._live(key) is not None:
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
        self._data[key] = (item[0], str(value).encode())
        return value

    async def aclose(self) -> None:
        return None
