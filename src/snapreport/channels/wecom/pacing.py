"""Per-member send pacing: WeCom drops, silently, messages beyond 30 a minute to one member.

Counts live in the shared ``KeyValueStore`` (one counter per member and minute), and the rate
is estimated over a sliding minute (this minute's count plus the share of the previous minute
that still falls inside it), so a burst across a minute boundary cannot slip through either.
A send over the limit waits for room instead of being dropped; the wait is bounded, and past
it the send goes out anyway with a warning in the log, so nothing is lost without a trace.
The hourly cap (1000 a member) is counted and logged when passed, not waited for.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Final

from snapreport.kv.base import KeyValueStore
from snapreport.kv.keys import key_of
from snapreport.logs import get_logger

log = get_logger(__name__)

WINDOW_SECONDS: Final = 60.0
# below WeCom's 30: workers that pass the check at the same moment can overshoot a little
DEFAULT_LIMIT: Final = 28
DEFAULT_MAX_WAIT_SECONDS: Final = 120.0
# WeCom's hourly cap per member; not waited for (that could hold a reply for an hour), only logged
HOURLY_LIMIT: Final = 1000


class SendPacer:
    """Waits, when needed, so that one member gets at most ``limit`` messages a minute."""

    def __init__(
        self,
        kv: KeyValueStore,
        *,
        prefix: str,
        limit: int = DEFAULT_LIMIT,
        max_wait_seconds: float = DEFAULT_MAX_WAIT_SECONDS,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._kv = kv
        self._prefix = prefix
        self._limit = limit
        self._max_wait = max_wait_seconds
        self._clock = clock
        self._sleep = sleep

    def _key(self, user_id: str, window: int | str) -> str:
        return key_of(self._prefix, user_id, window)

    async def delay_needed(self, user_id: str) -> float:
        """Seconds to wait before one more message to ``user_id`` fits; 0 if it fits now."""
        now = self._clock()
        window = int(now // WINDOW_SECONDS)
        elapsed = now - window * WINDOW_SECONDS
        current = int(await self._kv.get(self._key(user_id, window)) or 0)
        previous = int(await self._kv.get(self._key(user_id, window - 1)) or 0)
        if current + 1 > self._limit:
            return WINDOW_SECONDS - elapsed
        room = self._limit - 1 - current
        weight = 1.0 - elapsed / WINDOW_SECONDS
        if previous * weight <= room:
            return 0.0
        # the previous minute's share shrinks linearly; wait until it fits under ``room``
        return WINDOW_SECONDS * (1.0 - room / previous) - elapsed

    async def acquire(self, user_id: str) -> None:
        """Return when one more message to ``user_id`` may go out, and count it."""
        waited = 0.0
        while waited < self._max_wait:
            delay = await self.delay_needed(user_id)
            if delay <= 0:
                break
            step = min(max(delay, 0.05), self._max_wait - waited)
            await self._sleep(step)
            waited += step
        else:
            log.warning("wecom_pacing_gave_up_waiting", waited_seconds=round(waited))
        now = self._clock()
        await self._kv.incr(
            self._key(user_id, int(now // WINDOW_SECONDS)), ttl_seconds=3 * WINDOW_SECONDS
        )
        hourly = await self._kv.incr(self._key(user_id, f"h{int(now // 3600)}"), ttl_seconds=3600)
        if hourly > HOURLY_LIMIT:
            log.warning("wecom_pacing_hourly_limit_passed", limit=HOURLY_LIMIT)
