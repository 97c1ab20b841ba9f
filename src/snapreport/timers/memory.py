"""Expiry timers in this process (the memory session store is single-process too)."""

from __future__ import annotations

import heapq


class MemoryExpiryTimers:
    """Timers in this process (the memory session store is single-process too)."""

    def __init__(self) -> None:
        self._due: dict[str, float] = {}
        self._heap: list[tuple[float, str]] = []

    async def schedule(self, user_id: str, due: float) -> None:
        self._due[user_id] = due
        heapq.heappush(self._heap, (due, user_id))

    async def cancel(self, user_id: str) -> None:
        self._due.pop(user_id, None)

    async def claim_due(self, now: float, limit: int) -> list[str]:
        claimed: list[str] = []
        while self._heap and self._heap[0][0] <= now and len(claimed) < limit:
            due, user_id = heapq.heappop(self._heap)
            # heap entries of replaced or cancelled timers are skipped here, not searched for
            if self._due.get(user_id) == due:
                del self._due[user_id]
                claimed.append(user_id)
        return claimed

    async def aclose(self) -> None:
        return None
