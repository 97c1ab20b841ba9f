"""``/healthz`` (the process answers), ``/readyz`` (its stores answer), ``/metrics``.

A failed readiness check reads ``unavailable``; what failed (a host and port, a file path, a
driver's error) is logged, and shown in the answer only to a request with the admin token.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from snapreport.channels.http.auth import presents_admin_token
from snapreport.channels.http.schemas import Health, Readiness
from snapreport.channels.http.state import State
from snapreport.errors import SnapreportError
from snapreport.logs import get_logger

log = get_logger("snapreport.http")

router = APIRouter(tags=["health"])

READY_TIMEOUT_SECONDS = 5.0


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "a store cannot be reached"}},
)
async def readyz(request: Request, state: State) -> Response:
    """Pings the session store, the orders database and the media store; a failure's details
    only with the admin token."""
    app = state.app
    checks = dict(
        zip(
            ("sessions", "orders", "media"),
            await asyncio.gather(
                _check(app.engine.store.ping()), _check(app.orders.ping()), _check(app.media.ping())
            ),
            strict=True,
        )
    )
    ok = all(v == "ok" for v in checks.values())
    failed = [name for name, v in checks.items() if v != "ok"]
    for name in failed:
        log.warning("not_ready", check=name, error=checks[name])
    if not presents_admin_token(request):
        checks = {name: "ok" if v == "ok" else "unavailable" for name, v in checks.items()}
    body: dict[str, Any] = {"status": "ok" if ok else "unavailable", "checks": checks}
    if not ok:
        body["error"] = {"code": "not_ready", "message": f"unavailable: {', '.join(failed)}"}
    return JSONResponse(body, status_code=200 if ok else 503)


async def _check(ping: Awaitable[None]) -> str:
    try:
        async with asyncio.timeout(READY_TIMEOUT_SECONDS):
            await ping
    except SnapreportError as exc:
        return exc.message
    except TimeoutError:
        return f"no answer within {READY_TIMEOUT_SECONDS:g} s"
    except OSError as exc:
        return str(exc) or type(exc).__name__
    return "ok"


@router.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}})
async def metrics(state: State) -> Response:
    """Prometheus metrics of this process; the active-session and outbox gauges are read now."""
    # the store may be away: the other metrics still matter
    with contextlib.suppress(SnapreportError):
        state.metrics.active_sessions.set(await state.app.engine.active_count())
    with contextlib.suppress(SnapreportError):
        counts = await state.app.outbox.counts()
        state.metrics.outbox.pending.set(counts["pending"])
        state.metrics.outbox.dead_letters.set(counts["dead"])
    return Response(state.metrics.render(), media_type=CONTENT_TYPE_LATEST)
