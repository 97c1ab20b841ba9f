"""The proactive expiry notice: tell a WeCom user when their pending report or close lapsed.

After every handled turn the channel calls ``after_turn``: a session left waiting for the user
gets a timer at its expiry time, an idle one loses its timer. Every worker polls; a due timer
is claimed by exactly one of them (see ``snapreport.timers``), which then looks at the session:

- gone or idle: nothing to say;
- not expired yet (the user came back, perhaps through another channel): timer moved to the
  new expiry time;
- expired while still waiting: in one session turn (under the user's lock, so a message that
  arrives at the same moment is not overtaken) the session is reset to idle, then the notice
  is sent. Resetting records that the user has been told, so their next message is handled
  from idle without saying it a second time.

A worker that dies between claiming a timer and sending loses that one notice; the user still
hears about the expiry from the dialogue at their next message.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Final

from snapreport.errors import SnapreportError
from snapreport.logs import get_logger
from snapreport.session.engine import SessionEngine
from snapreport.session.model import ExpiredSession, State
from snapreport.timers.base import ExpiryTimers
from snapreport.workflow.texts import load_texts

log = get_logger(__name__)

Send = Callable[[str, str], Awaitable[None]]

DEFAULT_POLL_SECONDS: Final = 5.0
DEFAULT_BATCH: Final = 100
# fire a little after the expiry time, so the session is surely expired when it is looked at
SLACK_SECONDS: Final = 0.5


def notice_text(expired: ExpiredSession, *, ttl_seconds: float, language: str) -> str:
    """The notice for a session that expired in ``expired.state``."""
    texts = load_texts(language)
    lapse = texts.duration(ttl_seconds)
    if expired.state == "waiting_close_photo":
        return texts("wecom.notice.close", duration=lapse, number=expired.slots.order_id or "-")
    return texts("wecom.notice.report", duration=lapse)


class _StillLive(Exception):
    """The session was not expired after all: leave it untouched (rolls the turn back)."""


class ExpiryNotifier:
    """Schedules expiry timers after turns and sends the notices when they fall due."""

    def __init__(
        self,
        timers: ExpiryTimers,
        engine: SessionEngine,
        send: Send,
        *,
        language: str = "zh-CN",
        poll_seconds: float = DEFAULT_POLL_SECONDS,
        batch: int = DEFAULT_BATCH,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._timers = timers
        self._engine = engine
        self._send = send
        self._language = language
        self._poll = poll_seconds
        self._batch = batch
        self._clock = clock

    async def after_turn(self, user_id: str, state: State) -> None:
        """Keep ``user_id``'s timer in step with the state their last turn left."""
        if state == "idle":
            await self._timers.cancel(user_id)
        else:
            due = self._clock() + self._engine.config.ttl_seconds + SLACK_SECONDS
            await self._timers.schedule(user_id, due)

    async def run(self) -> None:
        """Poll for due timers until cancelled; a failing round is logged and retried."""
        task = asyncio.current_task()
        while True:
            try:
                await self.run_once()
            except Exception:
                log.exception("expiry_poll_failed")
            # a driver may turn the cancellation into an error of its own, which the round
            # then logs: the task's cancelling count still says we were asked to stop
            if task is not None and task.cancelling():
                raise asyncio.CancelledError
            await asyncio.sleep(self._poll)

    async def run_once(self) -> int:
        """Claim the due timers and handle them; the number of notices sent."""
        sent = 0
        while True:
            users = await self._timers.claim_due(self._clock(), self._batch)
            for user_id in users:
                try:
                    sent += await self._fire(user_id)
                except SnapreportError as exc:
                    log.warning("expiry_notice_failed", code=exc.code)
            if len(users) < self._batch:
                return sent

    async def _fire(self, user_id: str) -> bool:
        info = await self._engine.peek(user_id)
        if info is None or info.session.state == "idle":
            return False
        if not info.expired:
            await self._timers.schedule(user_id, info.expires_at + SLACK_SECONDS)
            return False
        expired = await self._reset_expired(user_id)
        if expired is None:
            return False
        # in the language the user's session spoke, else the service's
        language = info.session.language or self._language
        text = notice_text(expired, ttl_seconds=self._engine.config.ttl_seconds, language=language)
        await self._send(user_id, text)
        log.info("expiry_notice_sent", expired_state=expired.state)
        return True

    async def _reset_expired(self, user_id: str) -> ExpiredSession | None:
        """Reset an expired pending session to idle under the user's lock; what it held, or
        None (timer moved) if the user came back in the meantime."""
        try:
            async with self._engine.turn(user_id) as session:
                if session.expired_from is None:
                    raise _StillLive
                return session.expired_from
        except _StillLive:
            info = await self._engine.peek(user_id)
            if info is not None and info.session.state != "idle":
                await self._timers.schedule(user_id, info.expires_at + SLACK_SECONDS)
            return None
