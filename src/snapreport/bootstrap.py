"""The ONE composition root: reads ``Settings``, builds adapters, closes them.

``async with build(settings) as app:`` yields an ``App`` holding the engine, the ports and the
assistant. Adapters are imported here only, so core code never depends on one.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from snapreport.config import Settings
from snapreport.errors import ConfigurationError
from snapreport.media.base import MediaStore
from snapreport.orders.base import OrderRepository
from snapreport.session.engine import EngineConfig, SessionEngine
from snapreport.session.stores.base import SessionStore
from snapreport.vision.base import VisionModel
from snapreport.workflow.incident import IncidentAssistant

Clock = Callable[[], float]


@dataclass(slots=True)
class App:
    """Everything a channel needs, built from one ``Settings``."""

    settings: Settings
    engine: SessionEngine
    vision: VisionModel
    media: MediaStore
    orders: OrderRepository
    assistant: IncidentAssistant


def build_session_store(settings: Settings, clock: Clock) -> SessionStore:
    s = settings.session
    if s.backend == "memory":
        from snapreport.session.stores.memory import MemorySessionStore

        return MemorySessionStore(clock=clock)
    if s.backend == "sqlite":
        from snapreport.session.stores.sqlite import SqliteSessionStore

        path = s.url or str(settings.data_dir / "sessions.db")
        return SqliteSessionStore(path.removeprefix("sqlite:///"), clock=clock)
    if s.backend == "redis":
        from snapreport.session.stores.redis import RedisSessionStore

        if not s.url:
            raise ConfigurationError("SNAPREPORT_SESSION__URL must be a redis:// URL for redis")
        return RedisSessionStore.from_url(s.url, prefix=s.key_prefix, clock=clock)
    raise ConfigurationError(f"unknown session backend {s.backend!r}")


def build_vision(settings: Settings) -> VisionModel:
    v = settings.vision
    if not v.enabled:
        from snapreport.vision.manual import ManualVision

        return ManualVision()
    from snapreport.vision.openai_compat import OpenAICompatVision

    return OpenAICompatVision(
        base_url=v.base_url,
        api_key=v.api_key.get_secret_value(),
        model=v.model,
        timeout_seconds=v.timeout_seconds,
        max_retries=v.max_retries,
    )


def build_media(settings: Settings) -> MediaStore:
    m = settings.media
    if m.backend == "local":
        from snapreport.media.local import LocalMediaStore

        return LocalMediaStore(Path(m.root), max_bytes=m.max_bytes)
    from snapreport.media.s3 import S3MediaStore

    if not m.bucket:
        raise ConfigurationError("SNAPREPORT_MEDIA__BUCKET is required for the s3 backend")
    return S3MediaStore(
        bucket=m.bucket,
        endpoint_url=m.endpoint_url or None,
        region=m.region or None,
        addressing_style=m.addressing_style,
        access_key_id=m.access_key_id.get_secret_value() or None,
        secret_access_key=m.secret_access_key.get_secret_value() or None,
        max_bytes=m.max_bytes,
    )


async def build_orders(settings: Settings) -> OrderRepository:
    from snapreport.orders.repository import SqlOrderRepository

    return await SqlOrderRepository.connect(settings.orders.url)


@asynccontextmanager
async def build(settings: Settings, *, clock: Clock = time.time) -> AsyncIterator[App]:
    """Build every adapter from ``settings``; close them all on exit, in reverse order."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    async with AsyncExitStack() as stack:
        store = build_session_store(settings, clock)
        stack.push_async_callback(store.aclose)
        engine = SessionEngine(
            store,
            EngineConfig(
                ttl_seconds=settings.session.ttl_seconds,
                max_turns=settings.session.max_turns,
                lock_timeout_seconds=settings.session.lock_timeout_seconds,
                notice_grace_seconds=settings.session.notice_grace_seconds,
            ),
            clock=clock,
        )
        vision = build_vision(settings)
        stack.push_async_callback(vision.aclose)
        media = build_media(settings)
        stack.push_async_callback(media.aclose)
        orders = await build_orders(settings)
        stack.push_async_callback(orders.aclose)
        assistant = IncidentAssistant(
            engine,
            vision=vision,
            media=media,
            orders=orders,
            catalog=tuple(settings.alarm_types),
            language=settings.language,
        )
        yield App(settings, engine, vision, media, orders, assistant)
