"""What browsers need from us: security headers on every answer, and a Host allow-list when the
service runs open (no tokens), against DNS rebinding.

Every answer carries ``X-Content-Type-Options: nosniff`` and ``Referrer-Policy: no-referrer``.
The web pages (``/`` and the console, ``/console...``) and their files (``/static/...``) also
carry a Content-Security-Policy that allows only our own scripts (no inline script or handler),
styles and connections, images from us plus ``blob:`` (photo previews) and ``data:`` (the
icon), and no framing
(``frame-ancestors 'none'``). API answers carry ``default-src 'none'; frame-ancestors 'none'``.
FastAPI's ``/docs`` page, whose script is inline and comes from a CDN, gets the two headers only.

Open, the service answers whoever reaches its loopback port, and a web page elsewhere can reach
it through DNS rebinding (its own name, re-pointed at 127.0.0.1); the browser then sends that
name as ``Host``. So, open, a request whose ``Host`` is not one of the allowed names (any port)
answers ``400 host_not_allowed`` before anything else runs. With tokens set there is no such
check: a rebinding page cannot know a token.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Final

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from snapreport.channels.http.errors import error_response
from snapreport.errors import HostNotAllowed
from snapreport.logs import get_logger

log = get_logger("snapreport.http")

PAGE_POLICY: Final = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' blob: data:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
API_POLICY: Final = "default-src 'none'; frame-ancestors 'none'"

_COMMON: Final = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
)
_PAGE_HEADERS: Final = (*_COMMON, (b"content-security-policy", PAGE_POLICY.encode()))
_API_HEADERS: Final = (*_COMMON, (b"content-security-policy", API_POLICY.encode()))
_DOCS_PATHS: Final = ("/docs", "/docs/oauth2-redirect")
_PAGES: Final = ("/", "/console")
_PAGE_PREFIXES: Final = ("/static/", "/console/")
# a name or an IPv4 address, or an IPv6 address in brackets; then an optional port
_HOST: Final = re.compile(r"(\[[0-9a-f:.]+\]|[^:\[\]]+)(?::[0-9]{1,5})?")
_SHOWN_CHARS: Final = 100


def _headers_for(path: str) -> tuple[tuple[bytes, bytes], ...]:
    if path in _PAGES or path.startswith(_PAGE_PREFIXES):
        return _PAGE_HEADERS
    if path in _DOCS_PATHS:
        return _COMMON
    return _API_HEADERS


def host_name(header: str) -> str | None:
    """The lower-case name in a ``Host`` header without its port; None if it is not one."""
    match = _HOST.fullmatch(header.strip().lower())
    return match.group(1) if match else None


class BrowserGuard:
    """See the module docstring. ``allowed_hosts`` None: no Host check (tokens are set)."""

    def __init__(self, app: ASGIApp, *, allowed_hosts: Collection[str] | None) -> None:
        self.app = app
        self.allowed = (
            None if allowed_hosts is None else frozenset(h.lower() for h in allowed_hosts)
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = _headers_for(scope.get("path", ""))

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        if self.allowed is not None:
            given = _host_header(scope)
            if host_name(given) not in self.allowed:
                shown = given[:_SHOWN_CHARS]
                log.info("request_refused", code=HostNotAllowed.code, host=shown)
                response = error_response(
                    HostNotAllowed.http_status,
                    HostNotAllowed.code,
                    f"the Host {shown!r} is not allowed: the service runs without tokens and "
                    "answers only the names in SNAPREPORT_ALLOWED_HOSTS",
                )
                await response(scope, receive, send_with_headers)
                return
        await self.app(scope, receive, send_with_headers)


def _host_header(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == b"host":
            text: str = value.decode("latin-1")
            return text
    return ""
