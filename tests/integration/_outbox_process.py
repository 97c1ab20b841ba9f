"""A server process as far as the outbox goes: the app built by bootstrap from the environment
with its background parts on (the outbox worker among them), running until it is killed.
Prints "ready" once started."""

from __future__ import annotations

import asyncio

from snapreport.bootstrap import build
from snapreport.config import Settings


async def main() -> None:
    async with build(Settings(), channels=True):  # type: ignore[call-arg,unused-ignore]
        print("ready", flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
