"""Message deduplication by ``message_id`` and the per-user rate limit, on a ``KeyValueStore``.

Both live in the session store's backend, so they hold across every worker sharing it.

Deduplication: the first request with a given (user, message id) claims the key with
``set_if_absent``; when its turn is done, the answer (the JSON body as sent) replaces the claim
for 24 hours. A repeat gets that answer. A repeat that arrives while the first is still running
waits for the answer (polling the key) instead of running the turn a second time.

A claim lives only ``claim_ttl_seconds`` (the session lock's TTL) and the running turn renews
it every third of that, so the claim of a process that was killed is gone within one claim TTL
and a retry then runs the turn itself. A repeat waits at most ``wait_seconds`` (a turn's
longest plausible run) for a live first attempt.

If the first attempt fails, its claim is dropped so the client's retry runs the turn afresh at
once. A failed turn may already have written its work order (the session commit failed after
the orders write); running it again is still safe, because the orders store keys every create
and close by its message and answers a repeat with the order the first attempt wrote. Keeping
the claim instead would only make the retry wait for the claim to expire and then do the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Awaitable, Callable
from random import getrandbits
from typing import Final

from snapreport.errors import RateLimited, SessionBusy, SnapreportError, StoreUnavailable
from snapreport.kv.base import KeyValueStore
from snapreport.kv.keys import key_of
from snapreport.logs import get_logger

log = get_logger("snapreport.http")

ANSWER_TTL_SECONDS: Final = 86_400.0
_PENDING: Final = b"pending:"
_DONE: Final = b"done:"
_POLL_START: Final = 0.01
_POLL_MAX: Final = 0.25

Answer = bytes  # the answer's JSON body, as it was sent


class Idempotency:
    """Runs a message's turn at most once per (user id, message id)."""

    def __init__(
        self,
        kv: KeyValueStore,
        *,
        claim_ttl_seconds: float,
        wait_seconds: float,
        answer_ttl_seconds: float = ANSWER_TTL_SECONDS,
    ) -> None:
        self._kv = kv
        self._claim_ttl = claim_ttl_seconds
        self._renew_every = claim_ttl_seconds / 3
        self._wait_seconds = wait_seconds
        self._answer_ttl = answer_ttl_seconds

    @staticmethod
    def key(user_id: str, message_id: str) -> str:
        return key_of("msg", user_id, message_id)

    async def run(
        self,
        user_id: str,
        message_id: str,
        turn: Callable[[], Awaitable[Answer]],
        *,
        admit: Callable[[], Awaitable[None]] | None = None,
    ) -> tuple[Answer, bool]:
        """``(answer, duplicate)``: run ``turn`` unless this message was or is being handled.

        ``admit`` runs first for a message that is not a duplicate (the rate limit): if it
        raises, the message is not claimed and its retry is a new message again.
        """
        key = self.key(user_id, message_id)
        while True:
            # unique, not secret: no system call for it (the random module reseeds on fork)
            claim = b"%s%016x" % (_PENDING, getrandbits(64))
            if await self._kv.set_if_absent(key, claim, ttl_seconds=self._claim_ttl):
                if admit is not None:
                    try:
                        await admit()
                    except BaseException:
                        await _forget(self._kv, key, claim)
                        raise
                return await self._run_claimed(key, claim, turn), False
            answer = await self._wait(key)
            if answer is not None:
                return answer, True
            # the first attempt failed and gave its claim up: try to claim it ourselves

    async def _run_claimed(
        self, key: str, claim: bytes, turn: Callable[[], Awaitable[Answer]]
    ) -> Answer:
        renewal = asyncio.create_task(self._renew(key, claim), name="idempotency-renewal")
        try:
            answer = await turn()
        except BaseException:
            await _stop(renewal)
            await _forget(self._kv, key, claim)
            raise
        await _stop(renewal)
        try:
            await self._kv.set(key, _DONE + answer, ttl_seconds=self._answer_ttl)
        except SnapreportError as exc:
            # the turn happened; answering it matters more than remembering the answer
            log.warning("answer_not_remembered", key=key, error=exc.message)
        return answer

    async def _renew(self, key: str, claim: bytes) -> None:
        """Keep our claim alive while the turn runs; stop if it is no longer ours."""
        while True:
            await asyncio.sleep(self._renew_every)
            try:
                kept = await self._kv.replace_if(key, claim, claim, ttl_seconds=self._claim_ttl)
            except SnapreportError as exc:
                log.warning("claim_not_renewed", key=key, error=exc.message)
                continue
            if not kept:
                log.warning("claim_lost", key=key)
                return

    async def _wait(self, key: str) -> Answer | None:
        """Poll until the key holds an answer (returned) or nothing (None)."""
        delay = _POLL_START
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._wait_seconds
        while True:
            value = await self._kv.get(key)
            if value is None:
                return None
            answer = _answer(value)
            if answer is not None:
                return answer
            if loop.time() >= deadline:
                raise SessionBusy("the same message is still being handled; try again later")
            await asyncio.sleep(delay)
            delay = min(delay * 2, _POLL_MAX)


class RateLimiter:
    """At most ``per_minute`` new messages per user in each clock minute (fixed windows)."""

    def __init__(self, kv: KeyValueStore, *, per_minute: int, clock: Callable[[], float]) -> None:
        self._kv = kv
        self._limit = per_minute
        self._clock = clock

    async def hit(self, user_id: str) -> None:
        """Count one message; ``RateLimited`` (with the seconds to wait) beyond the limit."""
        now = self._clock()
        window = math.floor(now / 60)
        count = await self._kv.incr(key_of("rate", user_id, window), ttl_seconds=120.0)
        if count > self._limit:
            retry_after = (window + 1) * 60 - now
            raise RateLimited(
                f"more than {self._limit} messages a minute from {user_id!r}; "
                f"try again in {math.ceil(retry_after)} s",
                retry_after=retry_after,
            )


def _answer(value: bytes | None) -> Answer | None:
    if value is None or not value.startswith(_DONE):
        return None
    return value[len(_DONE) :]


async def _stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.wait({task})


async def _forget(kv: KeyValueStore, key: str, claim: bytes) -> None:
    """Give up our claim, unless it expired and someone else's claim or answer is there now."""

    async def forget() -> None:
        if await kv.get(key) == claim:
            await kv.delete(key)

    # the claim expires on its own anyway; the original error matters more
    with contextlib.suppress(StoreUnavailable, asyncio.CancelledError):
        await asyncio.shield(forget())
