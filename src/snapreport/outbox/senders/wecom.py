"""The handler of "wecom.notify" jobs: one WeCom app message to one recipient.

A text card with a link when a public URL is set (the payload's link is a path of ours), plain
text otherwise. WeCom's per-member pacing applies; the client refreshes a rejected token once.
A failure raises, and the worker retries this recipient alone.
"""

from __future__ import annotations

from snapreport.channels.wecom.client import WeComClient
from snapreport.channels.wecom.pacing import SendPacer
from snapreport.errors import InvalidInput
from snapreport.outbox.base import OutboxJob


def card_parts(text: str) -> tuple[str, str]:
    """A card's title (the text's first line) and description (the rest, or the text)."""
    first, _, rest = text.strip().partition("\n")
    return first.strip(), (rest.strip() or first.strip())


class WeComNotifier:
    """Sends one notification job over WeCom (see module doc)."""

    def __init__(self, client: WeComClient, pacer: SendPacer, *, public_url: str) -> None:
        self._client = client
        self._pacer = pacer
        self._public_url = public_url.rstrip("/")

    async def __call__(self, job: OutboxJob) -> None:
        user_id = job.payload.get("user_id")
        text = job.payload.get("text")
        link = job.payload.get("link") or ""
        if not isinstance(user_id, str) or not isinstance(text, str) or not isinstance(link, str):
            raise InvalidInput("a wecom.notify job needs user_id, text and link strings")
        await self._pacer.acquire(user_id)
        if self._public_url and link.startswith("/") and not link.startswith("//"):
            title, description = card_parts(text)
            await self._client.send_textcard(
                user_id, title=title, description=description, url=self._public_url + link
            )
        else:
            await self._client.send_text(user_id, text)
