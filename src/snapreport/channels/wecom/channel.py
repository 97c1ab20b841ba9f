"""``WeComChannel``: WeCom messages in, through the engine and the dialogue, replies out.

The callback (``callback.py``) verifies, decrypts and parses a push, then hands it to
``accept``, which deduplicates it (by MsgId, events by sender and time, in the shared
key-value store) and schedules its handling in the background, so WeCom gets its answer at
once. Handling turns the message into an ``Event`` (an image is fetched with media/get first),
runs one dialogue turn, joins the turn's replies into ONE message and sends it with
message/send, paced per member. One member's messages are handled one at a time, in the order
they arrived at this worker.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Final

from snapreport.channels.wecom.client import WeComClient
from snapreport.channels.wecom.crypto import WeComCrypto
from snapreport.channels.wecom.expiry import DEFAULT_POLL_SECONDS, ExpiryNotifier
from snapreport.channels.wecom.messages import (
    EventMessage,
    ImageMessage,
    LocationMessage,
    Message,
    OtherMessage,
    TextMessage,
)
from snapreport.channels.wecom.pacing import SendPacer
from snapreport.errors import (
    ImageTooLarge,
    InvalidImage,
    MediaNotFound,
    SnapreportError,
    WeComUnavailable,
)
from snapreport.kv.base import KeyValueStore
from snapreport.kv.keys import key_of
from snapreport.logs import get_logger
from snapreport.timers.base import ExpiryTimers
from snapreport.workflow.events import Event, ImageEvent, LocationEvent, Origin, TextEvent
from snapreport.workflow.incident import IncidentAssistant
from snapreport.workflow.texts import load_texts

log = get_logger(__name__)

# WeCom retries a push for seconds; a day also covers a replay of an old, validly signed one
DEDUPE_TTL_SECONDS: Final = 86_400.0
DEFAULT_DRAIN_SECONDS: Final = 15.0
CHANNEL: Final = "wecom"  # orders written by a WeCom message are keyed ("wecom", user, MsgId)
CANCEL_GRACE_SECONDS: Final = 5.0
REPLY_SEPARATOR: Final = "\n\n"


async def _settle(tasks: set[asyncio.Task[None]], what: str) -> None:
    """Wait a little for cancelled tasks to finish; never hang shutdown on one that does not."""
    _, stuck = await asyncio.wait(tasks, timeout=CANCEL_GRACE_SECONDS)
    for task in tasks - stuck:
        if not task.cancelled() and task.exception() is not None:
            log.warning("wecom_task_failed", task=what, error=repr(task.exception()))
    if stuck:
        log.warning("wecom_task_did_not_stop", task=what, grace_seconds=CANCEL_GRACE_SECONDS)


class _UserLocks:
    """One asyncio.Lock per member with work in flight; dropped when nobody holds or waits."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def hold(self, user_id: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(user_id) or (asyncio.Lock(), 0)
        self._locks[user_id] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[user_id]
            if users == 1:
                del self._locks[user_id]
            else:
                self._locks[user_id] = (lock, users - 1)


class WeComChannel:
    """The WeCom self-built application channel of one running app (one per worker)."""

    def __init__(
        self,
        *,
        assistant: IncidentAssistant,
        kv: KeyValueStore,
        crypto: WeComCrypto,
        client: WeComClient,
        timers: ExpiryTimers,
        pacer: SendPacer,
        corp_id: str,
        poll_seconds: float = DEFAULT_POLL_SECONDS,
        drain_seconds: float = DEFAULT_DRAIN_SECONDS,
    ) -> None:
        self.assistant = assistant
        self.crypto = crypto
        self.client = client
        self._kv = kv
        self._timers = timers
        self._pacer = pacer
        self._drain_seconds = drain_seconds
        self._corp_id = corp_id
        self._language = assistant.language
        self._texts = load_texts(self._language)
        self.notifier = ExpiryNotifier(
            timers,
            assistant.engine,
            self.send_text,
            language=self._language,
            poll_seconds=poll_seconds,
        )
        self._tasks: set[asyncio.Task[None]] = set()
        self._locks = _UserLocks()
        self._poller: asyncio.Task[None] | None = None
        self._closing = False

    def start(self) -> None:
        """Start the expiry poller (``aclose`` stops it)."""
        if self._poller is None:
            self._poller = asyncio.create_task(self.notifier.run(), name="wecom-expiry")

    async def aclose(self) -> None:
        """Stop polling and let messages in flight finish (up to the drain time). The API client
        and the timers belong to whoever built them (``bootstrap``), which closes them after."""
        self._closing = True
        if self._poller is not None:
            self._poller.cancel()
            await _settle({self._poller}, "the expiry poller")
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=self._drain_seconds)
            if pending:
                log.warning("wecom_messages_cut_off", count=len(pending))
                for task in pending:
                    task.cancel()
                await _settle(pending, "messages in flight")

    async def accept(self, message: Message) -> bool:
        """Schedule ``message`` unless it was seen before; False for a duplicate."""
        if self._closing:
            # not yet marked as seen, so WeCom's retry can reach a worker that is up
            raise WeComUnavailable("the WeCom channel is shutting down")
        key = key_of("wecom:seen", self._corp_id, *message.header.dedupe_parts)
        if not await self._kv.set_if_absent(key, b"1", ttl_seconds=DEDUPE_TTL_SECONDS):
            log.info("wecom_repeated_push_ignored", msg_type=message.header.msg_type)
            return False
        task = asyncio.create_task(self._handle(message), name="wecom-message")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    async def send_text(self, user_id: str, text: str) -> None:
        """One message to one member, within WeCom's per-member rate."""
        await self._pacer.acquire(user_id)
        await self.client.send_text(user_id, text)

    async def _handle(self, message: Message) -> None:
        user_id = message.header.from_user_name
        async with self._locks.hold(user_id):
            try:
                text = await self._answer(message)
            except SnapreportError as exc:
                log.warning("wecom_message_failed", msg_type=message.header.msg_type, code=exc.code)
                text = self._texts("wecom.busy")
            except Exception:
                log.exception("wecom_message_failed", msg_type=message.header.msg_type)
                text = self._texts("wecom.busy")
            if not text:
                return
            try:
                await self.send_text(user_id, text)
            except SnapreportError as exc:
                log.warning("wecom_reply_not_sent", code=exc.code, error=exc.message)

    async def _answer(self, message: Message) -> str | None:
        """The text to send back for ``message`` (None: nothing to say)."""
        if isinstance(message, EventMessage):
            return None  # entering the app, menu clicks...: not something the user said
        if isinstance(message, OtherMessage):
            return self._texts("wecom.unsupported")
        event = await self._event(message)
        if isinstance(event, str):
            return event
        header = message.header
        user_id = header.from_user_name
        origin = Origin(CHANNEL, header.msg_id) if header.msg_id else None
        outcome = await self.assistant.handle(user_id, event, origin)
        try:
            await self.notifier.after_turn(user_id, outcome.state)
        except SnapreportError as exc:
            # the turn is committed: its reply matters more than a missed expiry notice
            log.warning("wecom_expiry_timer_not_updated", code=exc.code)
        return REPLY_SEPARATOR.join(reply.text for reply in outcome.replies) or None

    async def _event(self, message: TextMessage | ImageMessage | LocationMessage) -> Event | str:
        """The dialogue event for ``message``, or the reply when the photo cannot be had."""
        if isinstance(message, TextMessage):
            return TextEvent(message.content, verified=True)  # the callback is signed
        if isinstance(message, LocationMessage):
            return LocationEvent(message.latitude, message.longitude, message.label)
        try:
            data, mime = await self.client.media_get(message.media_id)
        except ImageTooLarge:
            return self._texts("wecom.image.too_large")
        except InvalidImage:
            return self._texts("wecom.image.unsupported")
        except (MediaNotFound, WeComUnavailable) as exc:
            log.warning("wecom_media_get_failed", code=exc.code, error=exc.message)
            return self._texts("wecom.image.unavailable")
        return ImageEvent(data, mime)
