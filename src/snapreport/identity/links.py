"""One-time sign-in links (``登录``/``login``): a random token that opens one browser session.

A link lives ``ttl_seconds`` (5 minutes by default) and works once, on any worker sharing the
key-value store. The token is the secret: it is never logged (the access log shows the path as
``/auth/link/…``) and the store keeps only its hash.
"""

from __future__ import annotations

from typing import Final

from snapreport.errors import SignInLinkInvalid
from snapreport.identity.records import OneTimeRecords, new_secret
from snapreport.kv.base import KeyValueStore

LINK_PATH: Final = "/auth/link/"


class SignInLinks:
    """Issues and redeems sign-in links. Errors: ``SignInLinkInvalid``, ``StoreUnavailable``."""

    def __init__(self, kv: KeyValueStore, *, ttl_seconds: float, public_url: str) -> None:
        self._records = OneTimeRecords(kv, prefix="identity:link:", ttl_seconds=ttl_seconds)
        self._base = public_url.rstrip("/")
        self.ttl_seconds = ttl_seconds

    async def issue(self, user_id: str) -> str:
        """A fresh link for ``user_id``: absolute under ``PUBLIC_URL``, else a path."""
        token = new_secret()
        await self._records.put(token, user_id.encode())
        return f"{self._base}{LINK_PATH}{token}"

    async def redeem(self, token: str) -> str:
        """The user the link was issued to; it cannot be used again."""
        outcome, value = await self._records.redeem(token)
        if outcome == "used":
            raise SignInLinkInvalid("this sign-in link was already used; ask for a new one")
        if value is None:
            minutes = f"{self.ttl_seconds / 60:g}"
            raise SignInLinkInvalid(
                f"this sign-in link is unknown or expired (links last {minutes} minutes); "
                "send 登录 (login) to the assistant for a new one"
            )
        return value.decode()
