"""``MemoryLiveFeed``: one process; a change reaches the streams of the process that made it."""

from __future__ import annotations

from snapreport.live.base import Hub, LiveEvent


class MemoryLiveFeed:
    """The feed of a single-process deployment (no broker)."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    async def publish(self, event: LiveEvent) -> None:
        self.hub.deliver(event)

    async def aclose(self) -> None:
        self.hub.close_all()
