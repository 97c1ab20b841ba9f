"""The identity ports: what sign-in needs from outside (WeCom's code exchange), and what the
dialogue needs from it (sign-in links)."""

from __future__ import annotations

from typing import Protocol


class SignInLinkIssuer(Protocol):
    """One-time sign-in links (``登录``/``login``). Errors: ``StoreUnavailable``."""

    @property
    def ttl_seconds(self) -> float:
        """How long a link works."""
        ...

    async def issue(self, user_id: str) -> str:
        """A fresh link (absolute under ``PUBLIC_URL``, else a path) for ``user_id``."""
        ...


class CodeExchange(Protocol):
    """WeCom's ``auth/getuserinfo``: the member a one-time OAuth ``code`` belongs to.

    Errors: ``SignInRefused`` (an invalid or used code, or a person who is not a member of
    the corporation), ``WeComUnavailable``.
    """

    async def user_of_code(self, code: str) -> str:
        """The WeCom ``userid`` of the member who was just sent back with ``code``."""
        ...
