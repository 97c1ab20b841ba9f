"""``PostgresLiveFeed``: PostgreSQL ``LISTEN``/``NOTIFY``, for several worker processes that
share the orders database but not Redis.

Each process holds ONE dedicated connection that listens on the channel and publishes with
``pg_notify`` (publishes take turns on it: a notification is one short statement). A
notification's payload is at most 8000 bytes: an event larger than that travels with its long
texts shortened (the console reloads an order's detail when it is opened). Like Redis pub/sub,
``NOTIFY`` keeps nothing for a listener that is away: while a process is cut off from the
database it misses the changes made meanwhile (it reconnects with backoff and says so in the
log), which is the feed's at-most-once promise.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any, Final

import asyncpg

from snapreport.errors import InvalidInput, StoreUnavailable
from snapreport.live.base import Hub, LiveEvent, reconnect
from snapreport.logs import get_logger

log = get_logger("snapreport.live")

MAX_PAYLOAD_BYTES: Final = 7900  # PostgreSQL refuses a NOTIFY payload of 8000 bytes or more
SHORTENED_CHARS: Final = 200
CONNECT_TIMEOUT_SECONDS: Final = 5.0
CHANNEL: Final = "snapreport_live_orders"


def payload_of(event: LiveEvent) -> str:
    """``event`` as a NOTIFY payload: its JSON, with long texts shortened when it would not fit."""
    text = event.encode().decode()
    if len(text.encode()) <= MAX_PAYLOAD_BYTES:
        return text
    order: dict[str, Any] = {
        key: value[:SHORTENED_CHARS] + "…"
        if isinstance(value, str) and len(value) > SHORTENED_CHARS
        else value
        for key, value in event.order.items()
    }
    text = json.dumps({"type": event.type, "order": order}, ensure_ascii=False)
    if len(text.encode()) > MAX_PAYLOAD_BYTES:
        raise InvalidInput("live event too large for a PostgreSQL notification")
    return text


class PostgresLiveFeed:
    """Changes on the PostgreSQL channel ``snapreport_live_orders`` of the orders database (the
    database is what deployments do not share). ``await start()`` listens
    before it returns (when the database answers; else it keeps trying in the background), so
    a stream opened afterwards sees every later change."""

    def __init__(self, dsn: str, hub: Hub) -> None:
        self.hub = hub
        self._dsn = dsn
        self.channel = CHANNEL
        self._connection: asyncpg.Connection | None = None
        self._lost = asyncio.Event()
        self._turn = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        try:
            await self._connect()
        except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
            log.warning("live_feed_disconnected", error=type(exc).__name__)
            self._lost.set()
        self._task = asyncio.create_task(self._keep_listening(), name="live-feed")

    async def publish(self, event: LiveEvent) -> None:
        payload = payload_of(event)
        connection = self._connection
        if connection is None:
            raise StoreUnavailable("live feed: PostgreSQL is unavailable (not connected)")
        try:
            async with self._turn:
                await connection.execute("SELECT pg_notify($1, $2)", self.channel, payload)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            self._lost.set()
            raise StoreUnavailable(
                f"live feed: PostgreSQL is unavailable ({type(exc).__name__})"
            ) from exc

    async def aclose(self) -> None:
        self.hub.close_all()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._drop()

    async def _connect(self) -> None:
        connection = await asyncpg.connect(self._dsn, timeout=CONNECT_TIMEOUT_SECONDS)
        try:
            await connection.add_listener(self.channel, self._on_notify)
        except BaseException:
            await connection.close()
            raise
        connection.add_termination_listener(lambda _connection: self._lost.set())
        self._connection = connection
        self._lost.clear()

    async def _drop(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None and not connection.is_closed():
            connection.terminate()

    async def _keep_listening(self) -> None:
        """Wait for the connection to be lost, then reconnect with backoff, for ever."""
        while True:
            await self._lost.wait()
            await self._drop()
            log.warning("live_feed_disconnected", error="connection lost")
            await reconnect(self._connect, (OSError, asyncpg.PostgresError, TimeoutError))

    def _on_notify(self, _connection: object, _pid: int, _channel: str, payload: object) -> None:
        self.hub.deliver_encoded(payload.encode() if isinstance(payload, str) else b"")
