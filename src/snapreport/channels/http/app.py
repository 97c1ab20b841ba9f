"""``create_app(settings)``: the FastAPI application of the HTTP API, the web page and WeCom.

Nothing is built at import time. The lifespan builds the whole application through
``bootstrap.build`` (with this app's own metrics registry), starts the session sweeper, and
closes everything in reverse order on shutdown. ``app_from_env`` is the factory uvicorn calls
(``--factory``) in each worker process.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import html
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Final

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel
from starlette.routing import Route

from snapreport.bootstrap import build
from snapreport.channels.http import (
    admin,
    console,
    events,
    exports,
    health,
    messages,
    orders,
    outbox,
    signin,
    stats,
    users,
    webhooks,
)
from snapreport.channels.http.auth import Tokens
from snapreport.channels.http.body import declared_bodies, photo_body_limit
from snapreport.channels.http.browser import RenewSessionCookie
from snapreport.channels.http.browser_guard import BrowserGuard
from snapreport.channels.http.errors import install_error_handlers
from snapreport.channels.http.idempotency import Idempotency, RateLimiter
from snapreport.channels.http.images import Decoder
from snapreport.channels.http.middleware import RequestContext
from snapreport.channels.http.schemas import MessageForm, MessageIn
from snapreport.channels.http.state import HttpState, get_app_state
from snapreport.channels.open311.routes import PREFIX, create_open311_app
from snapreport.channels.wecom import callback as wecom_callback
from snapreport.config import Settings
from snapreport.logs import configure_logging, get_logger
from snapreport.metrics import Metrics
from snapreport.session.model import USER_ID_PATTERN

log = get_logger("snapreport.http")

STATIC_DIR: Final = Path(__file__).resolve().parent.parent / "web" / "static"
USER_ID_PLACEHOLDER: Final = "{{user_id_pattern}}"
SWEEP_INTERVAL_SECONDS: Final = 5.0
# Python collects its youngest generation every 700 net allocations of container objects. A
# server with hundreds of requests in flight has that many live frames, dicts and coroutines
# at any moment: every such collection walks them, finds them alive and promotes them, and the
# older generations then walk them again. Every 20,000 allocations instead costs the same
# little memory (cycles wait longer to be freed) and, measured with 256 users, 9 % of the CPU
# time per request less. Only for a server process of our own (``freeze_gc``).
GC_YOUNG_THRESHOLD: Final = 20_000
# room in a request body beyond the image cap: base64 (4/3) and the other fields

DESCRIPTION = """Snap-and-report assistant: a photo becomes an alarm and a work order.

Errors are `{"error": {"code": "...", "message": "..."}}`. Send `Authorization: Bearer <token>`
when the service has tokens set (`SNAPREPORT_API_TOKEN`, `SNAPREPORT_ADMIN_TOKEN`)."""


def create_app(
    settings: Settings, *, clock: Callable[[], float] | None = None, freeze_gc: bool = False
) -> FastAPI:
    """The application for ``settings``; ``clock`` (default: wall time) drives every expiry.

    ``freeze_gc`` (for a server process of its own, as ``app_from_env`` makes) moves every
    object alive once startup is done out of the garbage collector's reach: the modules,
    schemas and routes live as long as the process, and full collections no longer walk them
    while requests wait. It also raises the collector's young-generation threshold (see
    ``GC_YOUNG_THRESHOLD``).
    """
    now = clock or time.time
    metrics = Metrics()
    app = FastAPI(
        title="snapreport",
        version=_version(),
        description=DESCRIPTION,
        lifespan=_lifespan(settings, now, metrics, freeze_gc=freeze_gc),
        docs_url="/docs",
        redoc_url=None,
        openapi_url="/openapi.json",
        telemetry={
            "tracing": settings.opentelemetry,
            "metrics": settings.opentelemetry,
            "logs": settings.opentelemetry,
        },
    )
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.tokens = Tokens.from_settings(settings)
    app.state.http = None
    app.state.wecom = None
    install_error_handlers(app)
    # inside RequestContext, so a refusal has a request id and an access line
    open_mode = app.state.tokens.open
    app.add_middleware(BrowserGuard, allowed_hosts=settings.allowed_hosts if open_mode else None)
    app.add_middleware(RenewSessionCookie)
    app.add_middleware(
        RequestContext,
        max_body_bytes=photo_body_limit(settings.media.max_bytes),
        body_timeout_seconds=settings.http.body_timeout_seconds,
        metrics=metrics,
    )
    app.include_router(messages.router)
    # The busiest endpoint skips FastAPI's per-request dependency and response-model machinery
    # (it needs neither: it reads its own body and serialises its own answer) and Starlette's
    # endpoint wrapper. This plain ASGI route is matched first; the APIRoute above stays for
    # the OpenAPI document.
    app.router.routes.insert(
        0,
        Route("/api/v1/messages", messages.MessagesEndpoint(), methods=["POST"], name="messages"),
    )
    app.include_router(users.router)
    app.include_router(outbox.users_router)
    app.include_router(signin.router)
    app.include_router(admin.router)
    app.include_router(exports.router)
    app.include_router(orders.router)
    app.include_router(stats.router)
    app.include_router(events.router)
    app.include_router(console.router)
    app.include_router(outbox.admin_router)
    app.include_router(webhooks.router)
    app.include_router(health.router)
    # always mounted: it answers 404 wecom_not_configured when WeCom is not configured
    app.include_router(wecom_callback.router)
    # its own application: every answer under the prefix is in Open311's shapes
    app.mount(PREFIX, create_open311_app(lambda: get_app_state(app)))
    _serve_web_page(app)
    console.serve_console(app, STATIC_DIR / "console" / "index.html")
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def app_from_env() -> FastAPI:
    """The factory for ``uvicorn --factory``: settings from the environment and ``.env``."""
    settings = Settings()  # type: ignore[call-arg,unused-ignore]
    configure_logging(settings.log_level)
    return create_app(settings, freeze_gc=True)


def _lifespan(
    settings: Settings, clock: Callable[[], float], metrics: Metrics, *, freeze_gc: bool = False
) -> Callable[[FastAPI], contextlib.AbstractAsyncContextManager[None]]:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with build(settings, clock=clock, metrics=metrics, channels=True) as ctx:
            kv = ctx.kv
            media = settings.media
            decoder = Decoder(
                max_decodes=media.max_decodes,
                wait_seconds=media.decode_wait_seconds,
                max_bytes=media.max_bytes,
                max_pixels=media.max_pixels,
            )
            app.state.wecom = ctx.wecom
            app.state.http = HttpState(
                app=ctx,
                metrics=metrics,
                clock=clock,
                idempotency=Idempotency(
                    kv,
                    claim_ttl_seconds=settings.session.lock_ttl_seconds,
                    wait_seconds=_longest_turn(settings),
                ),
                limiter=RateLimiter(kv, per_minute=settings.rate_limit_per_minute, clock=clock),
                decoder=decoder,
            )
            sweeper = asyncio.create_task(
                ctx.engine.run_sweeper(SWEEP_INTERVAL_SECONDS), name="session-sweeper"
            )
            if freeze_gc:
                gc.collect()
                gc.freeze()
                gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])
            tokens: Tokens = app.state.tokens
            log.info(
                "started",
                sessions=settings.session.backend,
                media=settings.media.backend,
                vision="model" if settings.vision.enabled else "manual",
                wecom=ctx.wecom is not None,
                auth="open: no API or admin token set" if tokens.open else "bearer tokens",
                web_identity=ctx.identity.mode,
            )
            try:
                yield
            finally:
                await _stop(sweeper)
                decoder.close()
                app.state.http = None
                app.state.wecom = None
                log.info("stopped")

    return lifespan


async def _stop(task: asyncio.Task[None], attempts: int = 3, wait_seconds: float = 1.0) -> None:
    """Cancel ``task`` and wait for it, boundedly: a driver may swallow one cancellation
    (redis-py can), and shutdown must not hang on a background sweep."""
    for _ in range(attempts):
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=wait_seconds)
        if done:
            if not task.cancelled() and task.exception() is not None:
                log.warning("sweeper_failed", error=repr(task.exception()))
            return
    log.warning("sweeper_did_not_stop")


def _longest_turn(settings: Settings) -> float:
    """How long a repeat waits for its first attempt still running: a turn's longest plausible
    run (lock wait + model). The attempt's claim is renewed meanwhile; a crashed one's claim
    is gone within the session lock's TTL, and the repeat then runs the turn itself."""
    vision = settings.vision
    model = vision.timeout_seconds * (vision.max_retries + 1) * 2 if vision.enabled else 0.0
    return settings.session.lock_timeout_seconds + model + 30.0


def _serve_web_page(app: FastAPI) -> None:
    """The page, with the server's user-id rule filled in (the script reads it from there)."""
    page: list[str] = []

    @app.get("/", include_in_schema=False)
    async def web_page() -> HTMLResponse:
        if not page:
            text = (STATIC_DIR / "index.html").read_text(encoding="utf-8")
            page.append(text.replace(USER_ID_PLACEHOLDER, html.escape(USER_ID_PATTERN)))
        return HTMLResponse(page[0])

    app.mount("/static", StaticFiles(directory=STATIC_DIR, check_dir=False), name="static")


def _openapi(app: FastAPI) -> dict[str, Any]:
    """The generated schema, plus the bodies the endpoints parse by hand (the two of
    POST /api/v1/messages, and those declared with ``json_body``)."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
    )
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    models: tuple[type[BaseModel], ...] = (MessageIn, MessageForm, *declared_bodies())
    for model in models:
        body = model.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, definition in body.pop("$defs", {}).items():
            components.setdefault(name, definition)
        components[model.__name__] = body
    app.openapi_schema = schema
    return schema


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("snapreport")
    except PackageNotFoundError:
        return "0+unknown"
