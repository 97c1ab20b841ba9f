"""The ``LiveFeed`` port: order changes as they happen, to every open live stream.

``Dispatch`` publishes each change after it committed; every process's feed hands it to the
streams open on that process (``Hub``), whichever process made the change (``memory`` for one
process, ``redis`` pub/sub for many). Delivery is at most once: a stream that is not open, a
process that cannot reach the broker, or a stream too slow to keep up misses the change. The
durable record of every change is the order's event log and the outbox, not this feed.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final, Protocol, TypeVar

from snapreport.errors import InvalidInput, TooManyStreams
from snapreport.logs import get_logger

log = get_logger("snapreport.live")

MAX_EVENT_BYTES: Final = 256 * 1024
FIRST_BACKOFF_SECONDS: Final = 0.1
MAX_BACKOFF_SECONDS: Final = 5.0

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class LiveEvent:
    """One change: its type (``order.accepted``) and the order after it, as the API shows it
    (``dispatch.views.order_json``)."""

    type: str
    order: dict[str, Any]

    def encode(self) -> bytes:
        return json.dumps({"type": self.type, "order": self.order}, ensure_ascii=False).encode()

    @classmethod
    def decode(cls, data: bytes) -> LiveEvent:
        """The event in ``data``, or ``InvalidInput`` for anything else."""
        if len(data) > MAX_EVENT_BYTES:
            raise InvalidInput("live event too large")
        try:
            body = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InvalidInput("live event is not JSON") from exc
        if (
            not isinstance(body, dict)
            or not isinstance(body.get("type"), str)
            or not isinstance(body.get("order"), dict)
        ):
            raise InvalidInput("live event lacks its type or order")
        return cls(body["type"], body["order"])


class Subscription:
    """One open stream's queue. ``lagging`` turns true when it fell ``max_queued`` events
    behind: the stream should end so its client reconnects and reloads."""

    def __init__(self, max_queued: int) -> None:
        self._queue: asyncio.Queue[LiveEvent | None] = asyncio.Queue(max_queued)
        self.lagging = False

    def offer(self, event: LiveEvent | None) -> None:
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            self.lagging = True

    async def next(self, wait_seconds: float) -> LiveEvent | None:
        """The next event, or None when ``wait_seconds`` passed without one (or the feed is
        closing: then ``closed`` is true)."""
        try:
            async with asyncio.timeout(wait_seconds):
                return await self._queue.get()
        except TimeoutError:
            return None

    @property
    def closed(self) -> bool:
        return self.lagging and self._queue.empty()


class Hub:
    """The streams open on this process, at most ``max_streams`` of them."""

    def __init__(self, *, max_streams: int, max_queued: int = 256) -> None:
        self.max_streams = max_streams
        self._max_queued = max_queued
        self._open: set[Subscription] = set()

    @property
    def open_streams(self) -> int:
        return len(self._open)

    def check_room(self) -> None:
        """``TooManyStreams`` (503) when ``max_streams`` are open."""
        if len(self._open) >= self.max_streams:
            raise TooManyStreams(
                f"this server already holds {self.max_streams} live streams, its limit "
                "(SNAPREPORT_LIVE__MAX_STREAMS); try again later"
            )

    def open(self) -> Subscription:
        """A new stream's subscription (``TooManyStreams`` when there is no room); give it
        back with ``release``."""
        self.check_room()
        subscription = Subscription(self._max_queued)
        self._open.add(subscription)
        return subscription

    def release(self, subscription: Subscription) -> None:
        self._open.discard(subscription)

    def deliver(self, event: LiveEvent) -> None:
        for subscription in list(self._open):
            subscription.offer(event)

    def deliver_encoded(self, data: bytes) -> None:
        """Deliver the event encoded in ``data`` (from the broker); anything else is logged and
        dropped."""
        try:
            event = LiveEvent.decode(data)
        except InvalidInput as exc:
            log.warning("live_event_refused", reason=exc.message)
            return
        self.deliver(event)

    def close_all(self) -> None:
        """Ask every open stream to end (the process is stopping)."""
        for subscription in list(self._open):
            subscription.lagging = True
            subscription.offer(None)


async def reconnect(
    attempt: Callable[[], Awaitable[T]], errors: tuple[type[BaseException], ...]
) -> T:
    """``attempt()`` again and again, with a doubling pause (0.1 s up to 5 s) before each try,
    until it does not raise one of ``errors``; its result."""
    backoff = FIRST_BACKOFF_SECONDS
    while True:
        await asyncio.sleep(backoff)  # a pause between attempts, not an ordering wait
        try:
            result = await attempt()
        except errors as exc:
            backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
            log.warning("live_feed_reconnect_failed", error=type(exc).__name__, retry_in=backoff)
            continue
        log.info("live_feed_reconnected")
        return result


class LiveFeed(Protocol):
    """Order changes from every process to the streams open on this one (see module doc)."""

    hub: Hub

    async def publish(self, event: LiveEvent) -> None:
        """Send ``event`` to every process's streams; ``StoreUnavailable`` when the broker
        cannot be reached (the change itself is already committed)."""
        ...

    async def aclose(self) -> None:
        """Stop listening and end the streams open on this process."""
        ...
