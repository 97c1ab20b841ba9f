"""What the HTTP endpoints share, built once by the app's lifespan."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request

from snapreport.app import App
from snapreport.channels.http.idempotency import Idempotency, RateLimiter
from snapreport.channels.http.images import Decoder
from snapreport.errors import Unavailable
from snapreport.metrics import Metrics


@dataclass(frozen=True, slots=True)
class HttpState:
    """The application (engine, ports, assistant) plus the HTTP layer's own helpers."""

    app: App
    metrics: Metrics
    clock: Callable[[], float]
    idempotency: Idempotency
    limiter: RateLimiter
    decoder: Decoder


def get_state(request: Request) -> HttpState:
    """The shared state, or ``Unavailable`` outside the lifespan."""
    return get_app_state(request.app)


def get_app_state(app: Any) -> HttpState:
    """The shared state of the application ``app``, or ``Unavailable`` outside the lifespan."""
    state: HttpState | None = getattr(app.state, "http", None)
    if state is None:
        raise Unavailable("the service is starting or stopping")
    return state


async def state_dependency(request: Request) -> HttpState:
    # async, so FastAPI does not send it to a thread pool
    return get_state(request)


State = Annotated[HttpState, Depends(state_dependency)]
