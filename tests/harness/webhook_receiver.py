"""A webhook receiver for tests: a real HTTP server on 127.0.0.1 (an ephemeral port) that
records every POST and answers with the statuses it is told to, in turn (200 once they run
out), or holds its answers while ``answering`` is cleared. Verification is the tests'
business, with the reference libraries."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

from aiohttp import web
from standardwebhooks.webhooks import Webhook

WAIT_SECONDS = 30.0


@dataclass(frozen=True, slots=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]

    @property
    def timestamp(self) -> int:
        return int(self.headers["webhook-timestamp"])

    @property
    def signatures(self) -> list[str]:
        return self.headers["webhook-signature"].split(" ")


def signed_by(secret: str, received: Received) -> bool:
    """True if one of the request's signatures is the reference library's signature of it with
    ``secret`` (checked at the request's own timestamp, wherever a test's clock stands)."""
    expected = Webhook(secret).sign(
        received.webhook_id,
        datetime.fromtimestamp(received.timestamp, UTC),
        received.body.decode(),
    )
    return expected in received.signatures


class Receiver:
    """The server's state: requests received, statuses still to answer."""

    def __init__(self) -> None:
        self.url = ""
        self.received: list[Received] = []
        self.statuses: list[int] = []
        self.headers_for: Callable[[int], dict[str, str]] = lambda status: {}
        self.answering = asyncio.Event()  # cleared: requests are recorded, then held unanswered
        self.answering.set()
        self._arrived = asyncio.Condition()

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        async with self._arrived:
            self.received.append(
                Received(request.path, {k.lower(): v for k, v in request.headers.items()}, body)
            )
            self._arrived.notify_all()
        await self.answering.wait()
        status = self.statuses.pop(0) if self.statuses else 200
        return web.Response(
            status=status, text=f"answer {status}", headers=self.headers_for(status)
        )

    def to(self, path: str = "/hook") -> list[Received]:
        """The requests to ``path`` so far."""
        return [r for r in self.received if r.path == path]

    async def wait_for(self, count: int, path: str = "/hook") -> list[Received]:
        """The requests to ``path`` once there are at least ``count`` (bounded wait)."""
        async with asyncio.timeout(WAIT_SECONDS), self._arrived:
            await self._arrived.wait_for(lambda: len(self.to(path)) >= count)
        return self.to(path)


@asynccontextmanager
async def webhook_receiver() -> AsyncIterator[Receiver]:
    receiver = Receiver()
    app = web.Application()
    app.router.add_post("/{tail:.*}", receiver._handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    receiver.url = f"http://localhost:{port}"
    try:
        yield receiver
    finally:
        await runner.cleanup()
