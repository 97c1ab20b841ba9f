"""The ONE composition root: reads ``Settings``, builds adapters, closes them.

``async with build(settings) as app:`` yields an ``App`` holding the engine, the ports, the
key-value store and the assistant. Adapters are imported here only, so core code never depends
on one. Given a ``Metrics``, the vision port and the session store are wrapped in its timing
decorators; with ``channels=True`` the configured background channels (WeCom) start too.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from snapreport.config import Settings
from snapreport.errors import ConfigurationError
from snapreport.kv.base import KeyValueStore
from snapreport.media.base import MediaStore
from snapreport.metrics import Metrics, ObservedSessionStore, TimedVision, expired_while_pending
from snapreport.orders.base import OrderRepository
from snapreport.session.engine import EngineConfig, SessionEngine
from snapreport.session.stores.base import SessionStore
from snapreport.vision.base import VisionModel
from snapreport.workflow.incident import IncidentAssistant

Clock = Callable[[], float]


class Channel(Protocol):
    """A channel that runs in the background (WeCom): started with the app, closed with it."""

    async def aclose(self) -> None: ...


@dataclass(slots=True)
class App:
    """Everything a channel needs, built from one ``Settings``."""

    settings: Settings
    engine: SessionEngine
    vision: VisionModel
    media: MediaStore
    orders: OrderRepository
    assistant: IncidentAssistant
    kv: KeyValueStore
    wecom: Channel | None = None


def sqlite_session_path(settings: Settings) -> Path:
    """The SQLite session database file."""
    url = settings.session.url or str(settings.data_dir / "sessions.db")
    return Path(url.removeprefix("sqlite:///").removeprefix("sqlite://"))


def sqlite_kv_path(settings: Settings) -> Path:
    """The key-value store's file, next to the session database (``sessions-kv.db``): its own
    file, so its writes never wait for session commits or the other way round."""
    path = sqlite_session_path(settings)
    return path.with_name(f"{path.stem}-kv{path.suffix or '.db'}")


def build_session_store(settings: Settings, clock: Clock) -> SessionStore:
    s = settings.session
    if s.backend == "memory":
        from snapreport.session.stores.memory import MemorySessionStore

        return MemorySessionStore(clock=clock)
    if s.backend == "sqlite":
        from snapreport.session.stores.sqlite import SqliteSessionStore

        return SqliteSessionStore(sqlite_session_path(settings), clock=clock)
    if s.backend == "redis":
        from snapreport.session.stores.redis import RedisSessionStore

        return RedisSessionStore.from_url(_redis_url(settings), prefix=s.key_prefix, clock=clock)
    raise ConfigurationError(f"unknown session backend {s.backend!r}")


def build_kv(settings: Settings, clock: Clock) -> KeyValueStore:
    """The key-value store, on the session store's backend (so every worker shares it)."""
    s = settings.session
    if s.backend == "memory":
        from snapreport.kv.memory import MemoryKeyValueStore

        return MemoryKeyValueStore(clock=clock, max_entries=s.memory_kv_max_entries)
    if s.backend == "sqlite":
        from snapreport.kv.sqlite import SqliteKeyValueStore

        return SqliteKeyValueStore(sqlite_kv_path(settings), clock=clock)
    if s.backend == "redis":
        from snapreport.kv.redis import RedisKeyValueStore

        return RedisKeyValueStore.from_url(_redis_url(settings), prefix=s.key_prefix)
    raise ConfigurationError(f"unknown session backend {s.backend!r}")


def _redis_url(settings: Settings) -> str:
    url = settings.session.url
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigurationError("SNAPREPORT_SESSION__URL must be a redis:// URL for redis")
    return url


async def start_channels(app: App, stack: AsyncExitStack) -> None:
    """Start the background channels the settings enable; close them with ``stack``."""
    if app.settings.wecom.enabled:
        from snapreport.channels.wecom.channel import WeComChannel

        wecom = await WeComChannel.start(app)
        stack.push_async_callback(wecom.aclose)
        app.wecom = wecom


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

        return LocalMediaStore(Path(m.root), max_bytes=m.max_bytes, max_pixels=m.max_pixels)
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
        max_pixels=m.max_pixels,
    )


async def build_orders(settings: Settings) -> OrderRepository:
    from snapreport.orders.repository import SqlOrderRepository

    return await SqlOrderRepository.connect(settings.orders.url)


@asynccontextmanager
async def build(
    settings: Settings,
    *,
    clock: Clock = time.time,
    metrics: Metrics | None = None,
    channels: bool = False,
) -> AsyncIterator[App]:
    """Build every adapter from ``settings``; close them all on exit, in reverse order."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    async with AsyncExitStack() as stack:
        store: SessionStore = build_session_store(settings, clock)
        stack.push_async_callback(store.aclose)
        observed: ObservedSessionStore | None = None
        if metrics is not None:
            store = observed = ObservedSessionStore(store, metrics)
        kv = build_kv(settings, clock)
        stack.push_async_callback(kv.aclose)
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
        if observed is not None:
            observed.expiry_check = expired_while_pending(engine)
        vision = build_vision(settings)
        stack.push_async_callback(vision.aclose)
        if metrics is not None:
            vision = TimedVision(vision, metrics)
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
        app = App(settings, engine, vision, media, orders, assistant, kv)
        if channels:
            await start_channels(app, stack)
        yield app
