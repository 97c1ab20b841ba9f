"""A Server-Sent Events reader for tests: frames parsed as they arrive, waited for with a
bound (never a sleep)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx

WAIT_SECONDS = 10.0


@dataclass
class Frame:
    """One SSE frame: its event name, data (parsed JSON) and comments."""

    event: str | None = None
    data: Any = None
    retry: int | None = None
    comments: list[str] = field(default_factory=list)


class EventStream:
    """The frames of one open stream, in order."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.frames: asyncio.Queue[Frame] = asyncio.Queue()
        self.ended = asyncio.Event()

    async def read(self) -> None:
        frame = Frame()
        data: list[str] = []
        try:
            async for line in self.response.aiter_lines():
                if line == "":
                    if data:
                        frame.data = json.loads("\n".join(data))
                    await self.frames.put(frame)
                    frame, data = Frame(), []
                elif line.startswith(":"):
                    frame.comments.append(line[1:].strip())
                elif line.startswith("event:"):
                    frame.event = line[6:].strip()
                elif line.startswith("data:"):
                    data.append(line[5:].strip())
                elif line.startswith("retry:"):
                    frame.retry = int(line[6:].strip())
        except httpx.HTTPError:
            pass
        finally:
            self.ended.set()

    async def next(self, wait_seconds: float = WAIT_SECONDS) -> Frame:
        async with asyncio.timeout(wait_seconds):
            return await self.frames.get()

    async def next_event(self, wait_seconds: float = WAIT_SECONDS) -> dict[str, Any]:
        """The next ``event: order`` frame's data (heartbeats skipped)."""
        async with asyncio.timeout(wait_seconds):
            while True:
                frame = await self.frames.get()
                if frame.event is not None:
                    assert frame.event == "order"
                    data: dict[str, Any] = frame.data
                    return data


@asynccontextmanager
async def open_stream(
    client: httpx.AsyncClient, url: str, headers: dict[str, str]
) -> AsyncIterator[EventStream]:
    """An open ``/api/v1/events`` stream whose opening frame (``retry``) has arrived: from
    then on, every change is delivered to it."""
    async with client.stream("GET", url, headers=headers) as response:
        assert response.status_code == 200, (await response.aread()).decode()
        assert response.headers["content-type"].startswith("text/event-stream")
        stream = EventStream(response)
        reader = asyncio.create_task(stream.read())
        try:
            opening = await stream.next()
            assert opening.retry is not None
            assert "connected" in opening.comments
            yield stream
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
