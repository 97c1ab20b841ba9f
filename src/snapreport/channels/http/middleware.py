"""The request context middleware (pure ASGI, so it adds no task or buffering per request).

For every HTTP request it: takes the ``X-Request-ID`` header (or makes one) and echoes it in the
response; binds it to the log context; refuses a body larger than the cap with 413, from the
declared ``Content-Length`` before reading anything or, for a streamed body, as soon as the
limit is passed; refuses a body that has not wholly arrived ``body_timeout_seconds`` after the
request began with 408 ``body_timeout`` (a client that sends headers and then nothing, or
trickles its body, cannot hold a connection longer); and logs one access line and observes the
request's duration when it ends.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from random import getrandbits
from typing import Final

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from snapreport.channels.http.errors import error_response
from snapreport.errors import BodyTimeout, RequestTooLarge
from snapreport.logs import get_logger
from snapreport.metrics import Metrics

log = get_logger("snapreport.http")

REQUEST_ID_HEADER: Final = "x-request-id"
_REQUEST_ID: Final = re.compile(r"[A-Za-z0-9._:@-]{1,128}")
_QUIET_PATHS: Final = frozenset({"/healthz", "/readyz", "/metrics"})
_MAX_OBSERVERS: Final = 256
_LINK_PATH: Final = "/auth/link/"


class RequestContext:
    """See the module docstring."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        body_timeout_seconds: float,
        metrics: Metrics,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.body_timeout_seconds = body_timeout_seconds
        self.metrics = metrics
        # (method, status) -> the histogram's child: ``labels()`` is slow per call
        self._observers: dict[tuple[str, int], Callable[[float], None]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = _request_id(scope)
        # (the previous request's values were cleared when it ended)
        structlog.contextvars.bind_contextvars(request_id=request_id)
        status = 500
        id_header = (b"x-request-id", request_id.encode())

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message, "headers": [*message.get("headers", []), id_header]}
            await send(message)

        try:
            declared = _content_length(scope)
            if declared is not None and declared > self.max_body_bytes:
                response = error_response(
                    413,
                    RequestTooLarge.code,
                    f"the body has {declared} bytes; the limit is {self.max_body_bytes}",
                    {"Connection": "close"},
                )
                self.metrics.errors.labels(RequestTooLarge.code).inc()
                await response(scope, receive, send_with_id)
                return
            # a declared length within the cap bounds the body already: the server reads no
            # more than it; without one (chunked) the body is counted as it comes
            capped = receive if declared is not None else self._capped(receive)
            if declared != 0 and (declared is not None or _has_body(scope)):
                capped = self._timed(capped, started)
            await self.app(scope, capped, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            self._observer(scope["method"], status)(elapsed)
            path = scope.get("path", "")
            if path not in _QUIET_PATHS or status >= 400:
                log.info(
                    "request",
                    method=scope["method"],
                    path=_loggable(path),
                    status=status,
                    duration_ms=round(elapsed * 1000, 2),
                    user_id=scope.get("state", {}).get("user_id"),
                )
            structlog.contextvars.clear_contextvars()

    def _observer(self, method: str, status: int) -> Callable[[float], None]:
        observe = self._observers.get((method, status))
        if observe is None:
            observe = self.metrics.requests.labels(method, str(status)).observe
            if len(self._observers) < _MAX_OBSERVERS:  # methods are client-chosen: bounded
                self._observers[(method, status)] = observe
        return observe

    def _timed(self, receive: Receive, started: float) -> Receive:
        """``receive`` with a deadline on the body: it must have wholly arrived by
        ``started + body_timeout_seconds``. Waiting after the body (for a disconnect) is not
        bounded."""
        deadline = started + self.body_timeout_seconds
        body_done = False

        async def timed() -> Message:
            nonlocal body_done
            if body_done:
                return await receive()
            try:
                async with asyncio.timeout(max(0.0, deadline - time.perf_counter())):
                    message = await receive()
            except TimeoutError:
                raise BodyTimeout(
                    f"the body did not arrive within {self.body_timeout_seconds:g} s"
                ) from None
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_done = True
            return message

        return timed

    def _capped(self, receive: Receive) -> Receive:
        limit = self.max_body_bytes
        seen = 0

        async def capped() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    # raised inside the endpoint's body read: the error handlers answer 413
                    raise RequestTooLarge(f"the body is larger than {limit} bytes")
            return message

        return capped


def _loggable(path: str) -> str:
    """The path as the access line shows it: a sign-in link's token is a secret."""
    if path.startswith(_LINK_PATH):
        return f"{_LINK_PATH}…"
    return path


def _request_id(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            text: str = value.decode("latin-1")
            if _REQUEST_ID.fullmatch(text):
                return text
            break
    # 128 random bits, as a uuid4's hex has, without a system call per request: the ids need to
    # be unique, not secret (the random module reseeds itself in a forked worker)
    return f"{getrandbits(128):032x}"


def _has_body(scope: Scope) -> bool:
    """Whether a request without a usable ``Content-Length`` has a body at all: HTTP/1.1 sends
    one only with a length or ``Transfer-Encoding`` (a GET has neither: no deadline to keep)."""
    return any(name in (b"content-length", b"transfer-encoding") for name, _ in scope["headers"])


def _content_length(scope: Scope) -> int | None:
    """The declared body length; None when there is none, it is not a number, or the body
    is sent in chunks (a length next to Transfer-Encoding does not bound the body)."""
    declared: int | None = None
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                declared = int(value)
            except ValueError:
                return None
        elif name == b"transfer-encoding":
            return None
    return declared
