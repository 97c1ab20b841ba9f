"""Browser sessions on HTTP: the ``snapreport_session`` cookie and its CSRF rule, checked in one
place (``browser_session``) for the message endpoint and every routed endpoint alike.

- A request with a live session cookie speaks for the session's user. A state-changing one
  (anything but GET, HEAD, OPTIONS) must carry ``X-CSRF-Token`` equal to the session's token,
  or it is refused (403 ``csrf_failed``) before its body is read.
- A cookie whose session is gone (logged out, expired, revoked) is refused with 401
  ``not_signed_in``, unless the service runs open, where it is simply ignored.
- A session whose lifetime slid is sent back as a fresh cookie by ``RenewSessionCookie``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from snapreport.errors import CsrfFailed, NotSignedIn
from snapreport.identity.service import Identity
from snapreport.identity.sessions import COOKIE_NAME, CSRF_HEADER, BrowserSession

SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})
_RENEW: Final = "renewed_session"
_CSRF_HEADER: Final = CSRF_HEADER.encode()


def cookie_value(headers: Iterable[tuple[bytes, bytes]], name: str = COOKIE_NAME) -> str | None:
    """The value of cookie ``name`` in the request's ``Cookie`` headers, if any."""
    prefix = f"{name}="
    for key, value in headers:
        if key != b"cookie":
            continue
        for part in value.decode("latin-1").split(";"):
            part = part.strip()
            if part.startswith(prefix):
                return part[len(prefix) :]
    return None


def _header(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> str | None:
    for key, value in headers:
        if key == name:
            return value.decode("latin-1")
    return None


async def browser_session(
    scope: Scope, identity: Identity, *, open_service: bool
) -> BrowserSession | None:
    """The checked browser session of this request, or None when it carries no cookie."""
    headers = scope["headers"]
    session_id = cookie_value(headers)
    if session_id is None:
        return None
    session = await identity.sessions.find(session_id)
    if session is None:
        if open_service:
            return None
        raise NotSignedIn("your sign-in has ended (signed out or expired); sign in again")
    if scope["method"] not in SAFE_METHODS and not session.csrf_matches(
        _header(headers, _CSRF_HEADER)
    ):
        raise CsrfFailed(
            "a signed-in request that changes something needs the X-CSRF-Token header "
            "(csrf_token from GET /api/v1/me)"
        )
    if session.renewed:
        scope.setdefault("state", {})[_RENEW] = session
    return session


def forget_renewal(scope: Scope) -> None:
    """Do not send the session cookie again on this response (a logout deletes it)."""
    scope.get("state", {}).pop(_RENEW, None)


def session_cookie(identity: Identity, session_id: str, *, max_age: int | None = None) -> str:
    """The ``Set-Cookie`` value for ``session_id`` (``max_age=0`` deletes the cookie)."""
    age = int(identity.sessions.ttl_seconds) if max_age is None else max_age
    parts = [f"{COOKIE_NAME}={session_id}", f"Max-Age={age}", "Path=/", "HttpOnly", "SameSite=Lax"]
    if identity.secure_cookie:
        parts.append("Secure")
    return "; ".join(parts)


class RenewSessionCookie:
    """Sends the session cookie again (a new ``Max-Age``) on a response whose request slid
    the session's lifetime, so browser and server expire it together."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_renewed(message: Message) -> None:
            if message["type"] == "http.response.start":
                session: BrowserSession | None = scope.get("state", {}).get(_RENEW)
                identity = _identity(scope)
                if session is not None and identity is not None:
                    cookie = session_cookie(identity, session.id).encode("latin-1")
                    headers = [*message.get("headers", []), (b"set-cookie", cookie)]
                    message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_renewed)


def _identity(scope: Scope) -> Identity | None:
    http = getattr(scope["app"].state, "http", None)
    return http.app.identity if http is not None else None
