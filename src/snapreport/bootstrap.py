"""The ONE composition root: reads ``Settings``, builds every adapter, closes them.

``async with build(settings) as app:`` yields an ``App`` holding the engine, the ports, the
key-value store and the assistant. Adapters are imported here only, so core code never depends
on one; the channels receive what they need built. Given a ``Metrics``, the vision port is
wrapped in its timing decorator and the engine reports lock waits and expirations to it. With
``channels=True`` the configured background channels (WeCom, with its crypto, API client, send
pacer and expiry timers) start too. With the Redis backend, ONE connection pool per process
serves the session store, the key-value store and the expiry timers.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from snapreport.app import App
from snapreport.channels.open311.keys import ApiKeys
from snapreport.channels.open311.links import MediaLinks
from snapreport.channels.open311.parts import Open311Parts
from snapreport.config import Settings
from snapreport.dispatch.lifecycle import Dispatch
from snapreport.dispatch.notices import SLA_TOPIC
from snapreport.dispatch.rules import Rules, load_rules
from snapreport.dispatch.sla import sla_handler
from snapreport.errors import ConfigurationError
from snapreport.identity.service import Identity, IdentityMode
from snapreport.kv.base import KeyValueStore
from snapreport.kv.keys import key_of
from snapreport.live.base import Hub, LiveFeed
from snapreport.logs import get_logger
from snapreport.media.base import MediaStore
from snapreport.metrics import Metrics, TimedVision
from snapreport.outbox.base import OutboxHandler
from snapreport.session.engine import EngineConfig, SessionEngine
from snapreport.session.stores.base import SessionStore
from snapreport.timers.base import ExpiryTimers
from snapreport.vision.base import VisionModel
from snapreport.workflow.incident import IncidentAssistant
from snapreport.workflow.languages import ChosenLanguages
from snapreport.workflow.texts import load_texts

if TYPE_CHECKING:
    import redis.asyncio as aioredis
    from sqlalchemy.ext.asyncio import AsyncEngine

    from snapreport.orders.repository import SqlOrderRepository

log = get_logger("snapreport.bootstrap")

Clock = Callable[[], float]


def sqlite_session_path(settings: Settings) -> Path:
    """The SQLite session database file (the expiry timers live in it too)."""
    url = settings.session.url or str(settings.data_dir / "sessions.db")
    return Path(url.removeprefix("sqlite:///").removeprefix("sqlite://"))


def sqlite_kv_path(settings: Settings) -> Path:
    """The key-value store's file, next to the session database (``sessions-kv.db``): its own
    file, so its writes never wait for session commits or the other way round."""
    path = sqlite_session_path(settings)
    return path.with_name(f"{path.stem}-kv{path.suffix or '.db'}")


def build_redis(settings: Settings) -> aioredis.Redis | None:
    """The process's one Redis client and pool, for the redis backend (else None)."""
    if settings.session.backend != "redis":
        return None
    from snapreport.redis_link import connect

    return connect(settings.session.url)


def build_session_store(
    settings: Settings, clock: Clock, redis: aioredis.Redis | None = None
) -> SessionStore:
    s = settings.session
    if s.backend == "sqlite":
        from snapreport.session.stores.sqlite import SqliteSessionStore

        return SqliteSessionStore(
            sqlite_session_path(settings), clock=clock, lock_ttl=s.lock_ttl_seconds
        )
    if redis is not None:
        from snapreport.session.stores.redis import RedisSessionStore

        return RedisSessionStore(
            redis, prefix=s.key_prefix, clock=clock, lock_ttl=s.lock_ttl_seconds
        )
    from snapreport.session.stores.memory import MemorySessionStore

    return MemorySessionStore(clock=clock)


def build_kv(
    settings: Settings, clock: Clock, redis: aioredis.Redis | None = None
) -> KeyValueStore:
    """The key-value store, on the session store's backend (so every worker shares it)."""
    s = settings.session
    if s.backend == "memory":
        from snapreport.kv.memory import MemoryKeyValueStore

        return MemoryKeyValueStore(clock=clock, max_entries=s.memory_kv_max_entries)
    if s.backend == "sqlite":
        from snapreport.kv.sqlite import SqliteKeyValueStore

        return SqliteKeyValueStore(sqlite_kv_path(settings), clock=clock)
    if redis is not None:
        from snapreport.kv.redis import RedisKeyValueStore

        return RedisKeyValueStore(redis, prefix=s.key_prefix)
    from snapreport.kv.memory import MemoryKeyValueStore

    return MemoryKeyValueStore(clock=clock, max_entries=s.memory_kv_max_entries)


def build_expiry_timers(settings: Settings, redis: aioredis.Redis | None = None) -> ExpiryTimers:
    """Timers on the session store's backend: the same Redis, the same SQLite file, or memory."""
    if settings.session.backend == "sqlite":
        from snapreport.timers.sqlite import SqliteExpiryTimers

        return SqliteExpiryTimers(sqlite_session_path(settings))
    if redis is not None:
        from snapreport.timers.redis import RedisExpiryTimers

        return RedisExpiryTimers(redis, prefix=settings.session.key_prefix)
    from snapreport.timers.memory import MemoryExpiryTimers

    return MemoryExpiryTimers()


def identity_mode(settings: Settings) -> IdentityMode:
    """``declared`` only for an open service (no token); ``signin`` otherwise."""
    open_service = not (
        settings.api_token.get_secret_value() or settings.admin_token.get_secret_value()
    )
    chosen = settings.web.identity
    if chosen == "declared" and not open_service:
        raise ConfigurationError(
            "SNAPREPORT_WEB__IDENTITY=declared lets the web page speak for any user id; it is "
            "allowed only when the service runs open on loopback. Remove it (with a token set, "
            "the page signs people in), or unset SNAPREPORT_API_TOKEN and ADMIN_TOKEN."
        )
    return chosen or ("declared" if open_service else "signin")


def build_identity(
    settings: Settings, kv: KeyValueStore, clock: Clock, stack: AsyncExitStack
) -> Identity:
    """Browser sessions and sign-in links on the shared key-value store, and WeCom sign-in
    when the WeCom application (corp id, agent id, secret) is configured."""
    from snapreport.identity.links import SignInLinks
    from snapreport.identity.service import WeComOAuth
    from snapreport.identity.sessions import BrowserSessions

    web, w = settings.web, settings.wecom
    public_url = settings.public_url.rstrip("/")
    oauth: WeComOAuth | None = None
    if w.corp_id and w.agent_id and w.secret.get_secret_value():
        from snapreport.channels.wecom.client import WeComClient
        from snapreport.identity.wecom_oauth import OAuthApp, WeComSignIn, signing_key

        client = WeComClient(
            corp_id=w.corp_id,
            agent_id=w.agent_id,
            secret=w.secret.get_secret_value(),
            kv=kv,
            base_url=w.api_base_url,
        )
        stack.push_async_callback(client.aclose)
        key = signing_key(web.secret.get_secret_value(), w.secret.get_secret_value())
        app = OAuthApp(w.corp_id, w.agent_id, w.oauth_url)
        oauth = WeComOAuth(WeComSignIn(app, key=key, kv=kv, clock=clock), client)
    return Identity(
        mode=identity_mode(settings),
        sessions=BrowserSessions(kv, ttl_seconds=web.session_hours * 3600, clock=clock),
        links=SignInLinks(kv, ttl_seconds=web.link_minutes * 60, public_url=public_url),
        wecom=oauth,
        public_url=public_url,
        secure_cookie=public_url.startswith("https://"),
    )


async def start_wecom(
    app: App,
    stack: AsyncExitStack,
    redis: aioredis.Redis | None,
    *,
    poll_seconds: float | None = None,
) -> None:
    """Build the WeCom channel and its parts from ``app.settings.wecom`` and start it; ``stack``
    closes it. (``Settings`` checked at load time that every WeCom setting is there.)"""
    from snapreport.channels.wecom.channel import WeComChannel
    from snapreport.channels.wecom.client import WeComClient
    from snapreport.channels.wecom.crypto import WeComCrypto
    from snapreport.channels.wecom.pacing import SendPacer

    w = app.settings.wecom
    timers = build_expiry_timers(app.settings, redis)
    stack.push_async_callback(timers.aclose)
    client = WeComClient(
        corp_id=w.corp_id,
        agent_id=w.agent_id,
        secret=w.secret.get_secret_value(),
        kv=app.kv,
        base_url=w.api_base_url,
        max_media_bytes=app.settings.media.max_bytes,
    )
    stack.push_async_callback(client.aclose)
    channel = WeComChannel(
        assistant=app.assistant,
        kv=app.kv,
        crypto=WeComCrypto(
            w.token.get_secret_value(), w.encoding_aes_key.get_secret_value(), w.corp_id
        ),
        client=client,
        timers=timers,
        pacer=SendPacer(app.kv, prefix=key_of("wecom:pace", w.corp_id, w.agent_id)),
        corp_id=w.corp_id,
        **({} if poll_seconds is None else {"poll_seconds": poll_seconds}),
    )
    channel.start()
    stack.push_async_callback(channel.aclose)
    app.wecom = channel


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
        text_model=v.text_model,
        timeout_seconds=v.timeout_seconds,
        max_retries=v.max_retries,
    )


def build_media(settings: Settings) -> MediaStore:
    m = settings.media
    if m.backend == "local":
        from snapreport.media.local import LocalMediaStore

        return LocalMediaStore(Path(m.root), max_bytes=m.max_bytes, max_pixels=m.max_pixels)
    from snapreport.media.s3 import S3MediaStore

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


def build_rules(settings: Settings) -> Rules:
    """The routing rules file, checked (``RulesError`` names the line); none: no teams."""
    path = settings.dispatch.rules_file
    if path is None:
        return Rules()
    return load_rules(path, catalog=settings.alarm_types)


def build_open311(settings: Settings) -> Open311Parts:
    """The Open311 endpoint's keys and link signer (a random secret per process when
    ``OPEN311__MEDIA_SECRET`` is not set: links then work only on the process that made them)."""
    o = settings.open311
    secret = o.media_secret.get_secret_value().encode()
    if not secret:
        secret = secrets.token_bytes(32)
        if o.api_keys:
            log.warning(
                "open311_media_secret_random",
                fix="set SNAPREPORT_OPEN311__MEDIA_SECRET so photo links work on every worker "
                "and after a restart",
            )
    return Open311Parts(
        keys=ApiKeys(key.get_secret_value() for key in o.api_keys),
        links=MediaLinks(secret, ttl_seconds=o.media_url_ttl_seconds),
        texts=load_texts(settings.language),
        contact=o.contact,
        key_service=o.key_service,
    )


async def build_live_feed(
    settings: Settings, stack: AsyncExitStack, redis: aioredis.Redis | None = None
) -> LiveFeed:
    """The live feed: Redis pub/sub when sessions are on Redis, else PostgreSQL LISTEN/NOTIFY
    when orders are on PostgreSQL (either way every worker sees every change), else in memory
    (this process's changes only)."""
    live = settings.live
    hub = Hub(max_streams=live.max_streams, max_queued=live.max_queued)
    if redis is not None:
        from snapreport.live.redis import RedisLiveFeed

        feed = RedisLiveFeed(redis, hub, prefix=settings.session.key_prefix)
        await feed.start()
        stack.push_async_callback(feed.aclose)
        return feed
    from snapreport.orders.database import parse_url

    orders_url = parse_url(settings.orders.url)
    if orders_url.get_backend_name() == "postgresql":
        from snapreport.live.postgres import PostgresLiveFeed

        dsn = orders_url.set(drivername="postgresql").render_as_string(hide_password=False)
        listening = PostgresLiveFeed(dsn, hub)
        await listening.start()
        stack.push_async_callback(listening.aclose)
        return listening
    from snapreport.live.memory import MemoryLiveFeed

    if settings.session.backend == "sqlite":
        log.warning(
            "live_feed_single_process",
            fix="live streams see only this process's changes; with several worker "
            "processes, put sessions on Redis (SNAPREPORT_SESSION__BACKEND=redis) or orders "
            "on PostgreSQL (SNAPREPORT_ORDERS__URL=postgresql://...)",
        )
    memory = MemoryLiveFeed(hub)
    stack.push_async_callback(memory.aclose)
    return memory


async def build_orders(settings: Settings, clock: Clock) -> SqlOrderRepository:
    from snapreport.orders.repository import SqlOrderRepository

    return await SqlOrderRepository.connect(settings.orders.url, clock=clock)


async def start_outbox(
    app: App,
    stack: AsyncExitStack,
    metrics: Metrics | None,
    *,
    engine: AsyncEngine,
    clock: Clock = time.time,
) -> None:
    """Start this process's outbox worker with the handlers of every topic; ``stack`` stops
    it (the round in progress finishes) before the stores it uses close."""
    from snapreport.outbox.senders.inapp import WECOM_TOPIC, OrderNotifier
    from snapreport.outbox.sqlalchemy import OutboxNudge, SqlOutboxStore
    from snapreport.outbox.worker import OutboxWorker, WorkerConfig, route_table
    from snapreport.webhooks.base import DELIVER_TOPIC
    from snapreport.webhooks.cleanup import WebhookCleanup
    from snapreport.webhooks.fanout import fan_out
    from snapreport.webhooks.sender import Poster, WebhookSender, build_session
    from snapreport.webhooks.targets import CachedResolver, TargetCheck

    s = app.settings
    o = s.outbox
    store = SqlOutboxStore(engine, clock=clock)
    webhook_targets = TargetCheck(allow_private=s.webhooks.allow_private, resolver=CachedResolver())
    webhook_client = build_session(webhook_targets)
    stack.push_async_callback(webhook_client.close)
    handlers: list[tuple[str, OutboxHandler]] = [
        # every member, lead and dispatcher of the rules file is a WeCom user (API.md)
        (
            "order.",
            OrderNotifier(
                store.sessions,
                wecom=s.wecom.enabled,
                staff_on_wecom=app.rules.staff(),
                also=[fan_out],
                parallel=store.parallel_writes,
                clock=clock,
            ),
        ),
        (SLA_TOPIC, sla_handler(app.dispatch)),
        (
            DELIVER_TOPIC,
            WebhookSender(
                engine,
                Poster(
                    webhook_targets,
                    webhook_client,
                    # within the handler's own timeout, so that the attempt is recorded
                    timeout_seconds=min(
                        s.webhooks.timeout_seconds, 0.8 * o.handler_timeout_seconds
                    ),
                ),
                clock=clock,
            ),
        ),
    ]
    if s.wecom.enabled:
        handlers.append((WECOM_TOPIC, await _wecom_notifier(app, stack)))
    nudge = OutboxNudge()
    nudge.start()
    stack.callback(nudge.stop)
    worker = OutboxWorker(
        store,
        route_table(handlers),
        config=WorkerConfig(
            batch_size=o.batch_size,
            concurrency=o.concurrency,
            lease_seconds=o.lease_seconds,
            handler_timeout_seconds=o.handler_timeout_seconds,
            poll_seconds=o.poll_seconds,
            max_attempts=o.max_attempts,
            backoff_base_seconds=o.backoff_base_seconds,
            backoff_max_seconds=o.backoff_max_seconds,
        ),
        clock=clock,
        wake=nudge.event,
        observer=metrics.outbox if metrics is not None else None,
    )
    worker.start()
    stack.push_async_callback(worker.aclose)
    cleanup = WebhookCleanup(engine, keep_days=s.webhooks.keep_days, clock=clock)
    cleanup.start()
    stack.push_async_callback(cleanup.aclose)


async def _wecom_notifier(app: App, stack: AsyncExitStack) -> OutboxHandler:
    """The "wecom.notify" handler: its own API client (the token is shared through the
    key-value store) and the channel's per-member pacing."""
    from snapreport.channels.wecom.client import WeComClient
    from snapreport.channels.wecom.pacing import SendPacer
    from snapreport.outbox.senders.wecom import WeComNotifier

    w = app.settings.wecom
    client = WeComClient(
        corp_id=w.corp_id,
        agent_id=w.agent_id,
        secret=w.secret.get_secret_value(),
        kv=app.kv,
        base_url=w.api_base_url,
    )
    stack.push_async_callback(client.aclose)
    pacer = SendPacer(
        app.kv,
        prefix=f"wecom:pace:{w.corp_id}:{w.agent_id}",
        max_wait_seconds=app.settings.outbox.wecom_pacing_max_wait_seconds,
    )
    return WeComNotifier(client, pacer, public_url=app.settings.public_url)


@asynccontextmanager
async def build(
    settings: Settings,
    *,
    clock: Clock = time.time,
    metrics: Metrics | None = None,
    channels: bool = False,
    wecom_poll_seconds: float | None = None,
    deliver: bool = False,
) -> AsyncIterator[App]:
    """Build every adapter from ``settings``; close them all on exit, in reverse order.
    ``wecom_poll_seconds`` overrides how often the WeCom expiry poller looks (tests). With
    ``channels`` or ``deliver`` the outbox worker runs (unless the settings turn it off)."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    rules = build_rules(settings)  # a bad rules file stops start-up before anything opens
    async with AsyncExitStack() as stack:
        redis = build_redis(settings)
        if redis is not None:
            stack.push_async_callback(redis.aclose)  # closed last, after every user of it
        store: SessionStore = build_session_store(settings, clock, redis)
        stack.push_async_callback(store.aclose)
        kv = build_kv(settings, clock, redis)
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
            observer=metrics,
        )
        vision = build_vision(settings)
        stack.push_async_callback(vision.aclose)
        if metrics is not None:
            vision = TimedVision(vision, metrics)
        media = build_media(settings)
        stack.push_async_callback(media.aclose)
        from snapreport.outbox.notifications import SqlNotifications
        from snapreport.outbox.sqlalchemy import SqlOutboxStore
        from snapreport.webhooks.store import SqlWebhooks
        from snapreport.webhooks.targets import TargetCheck

        orders = await build_orders(settings, clock)
        stack.push_async_callback(orders.aclose)
        live = await build_live_feed(settings, stack, redis)
        dispatch = Dispatch(
            orders,
            rules,
            texts=load_texts(settings.language),
            reopen_window=timedelta(days=settings.dispatch.reopen_days),
            clock=clock,
            feed=live,
        )
        identity = build_identity(settings, kv, clock, stack)
        languages = ChosenLanguages(kv, clock=clock)
        assistant = IncidentAssistant(
            engine,
            vision=vision,
            media=media,
            orders=dispatch,
            languages=languages,
            catalog=tuple(settings.alarm_types),
            language=settings.language,
            links=identity.links,
            text_timeout_seconds=settings.vision.text_timeout_seconds,
        )
        app = App(
            settings,
            engine,
            vision,
            media,
            orders,
            assistant,
            kv,
            rules,
            dispatch,
            outbox=SqlOutboxStore(orders.engine, clock=clock),
            notifications=SqlNotifications(orders.engine),
            open311=build_open311(settings),
            identity=identity,
            webhooks=SqlWebhooks(
                orders.engine,
                TargetCheck(allow_private=settings.webhooks.allow_private),
                max_endpoints=settings.webhooks.max_endpoints,
                clock=clock,
            ),
            live=live,
            languages=languages,
        )
        if channels and settings.wecom.enabled:
            await start_wecom(app, stack, redis, poll_seconds=wecom_poll_seconds)
        if (channels or deliver) and settings.outbox.worker:
            await start_outbox(app, stack, metrics, engine=orders.engine, clock=clock)
        yield app
