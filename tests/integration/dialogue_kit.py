"""Builders for dialogue tests: the assistant on real adapters, photos, and shortcuts.

``async with dialogue(tmp_path, clock) as kit:`` builds ``IncidentAssistant`` on a
``MemorySessionStore`` + ``SessionEngine`` driven by the fake clock, a ``LocalMediaStore``
under ``tmp_path``, a SQLite ``SqlOrderRepository`` and the given vision model (manual mode by
default; ``vlm_vision(fake_vlm)`` for the fake OpenAI-compatible server).
"""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from PIL import Image

from snapreport.config import DEFAULT_ALARM_TYPES
from snapreport.dispatch.lifecycle import Dispatch
from snapreport.dispatch.rules import Rules
from snapreport.errors import StoreUnavailable
from snapreport.kv.base import KeyValueStore
from snapreport.kv.memory import MemoryKeyValueStore
from snapreport.media.local import LocalMediaStore
from snapreport.orders.base import (
    Announce,
    DuplicateQuery,
    EventKind,
    MessageKey,
    NewReport,
    Order,
    OrderAction,
    OrderChange,
    OrderEvent,
    OrderPage,
    OrderQuery,
    OrderRepository,
    OrderStatus,
    Routing,
    StatsGroup,
    StatsQuery,
    no_announcements,
)
from snapreport.orders.repository import SqlOrderRepository
from snapreport.session.engine import EngineConfig, SessionEngine
from snapreport.session.model import Session, State
from snapreport.session.stores.base import SessionStore
from snapreport.session.stores.memory import MemorySessionStore
from snapreport.vision.base import VisionModel
from snapreport.vision.manual import ManualVision
from snapreport.vision.openai_compat import OpenAICompatVision
from snapreport.workflow.events import Event, ImageEvent, LocationEvent, Outcome, TextEvent
from snapreport.workflow.incident import IncidentAssistant
from snapreport.workflow.languages import ChosenLanguages
from snapreport.workflow.texts import load_texts
from tests.harness.clock import FakeClock

TTL_SECONDS = 600.0
USER = "zhangsan"


def png_bytes(
    color: tuple[int, int, int] = (200, 40, 40), size: tuple[int, int] = (64, 48)
) -> bytes:
    """A small real PNG; different colours give different media keys."""
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return buffer.getvalue()


def jpeg_bytes(
    color: tuple[int, int, int] = (30, 120, 200), size: tuple[int, int] = (80, 60)
) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


async def _no_sleep(_seconds: float) -> None:
    return None


def vlm_vision(fake_vlm: Any, *, max_retries: int = 1) -> OpenAICompatVision:
    """The real adapter pointed at the fake server, retrying without waiting."""
    return OpenAICompatVision(
        base_url=fake_vlm.url,
        api_key=fake_vlm.api_key,
        model=fake_vlm.model,
        timeout_seconds=10.0,
        max_retries=max_retries,
        backoff_seconds=0.0,
        sleep=_no_sleep,
    )


@dataclass(slots=True)
class Kit:
    """The assistant and its adapters, with shortcuts for sending messages."""

    assistant: IncidentAssistant
    engine: SessionEngine
    media: LocalMediaStore
    orders: SqlOrderRepository
    clock: FakeClock
    media_root: Path
    dispatch: Dispatch
    places: int = 0

    def place(self) -> str:
        """A location for the next report: each a different place, so that reports made by
        these shortcuts are not offered as duplicates of each other (the first one is
        "3号楼东侧楼梯间")."""
        self.places += 1
        return "3号楼东侧楼梯间" if self.places == 1 else f"{self.places}号楼北侧楼梯间"

    async def send(self, event: Event, user: str = USER) -> Outcome:
        return await self.assistant.handle(user, event)

    async def text(self, text: str, user: str = USER) -> Outcome:
        return await self.send(TextEvent(text), user)

    async def photo(
        self,
        data: bytes | None = None,
        user: str = USER,
        *,
        mime: str | None = "image/png",
        caption: str = "",
    ) -> Outcome:
        return await self.send(
            ImageEvent(data if data is not None else png_bytes(), mime, caption), user
        )

    async def location(
        self, latitude: float = 31.2, longitude: float = 121.4, label: str = "", user: str = USER
    ) -> Outcome:
        return await self.send(LocationEvent(latitude, longitude, label), user)

    async def session(self, user: str = USER) -> Session:
        info = await self.engine.peek(user)
        assert info is not None, f"{user} has no stored session"
        return info.session

    async def state(self, user: str = USER) -> State:
        info = await self.engine.peek(user)
        return "idle" if info is None or info.expired else info.session.state

    def stored_media(self) -> list[Path]:
        return sorted(p for p in self.media_root.rglob("*") if p.is_file())

    async def events(self, number: str) -> Sequence[OrderEvent]:
        return await self.orders.events(number)

    async def report(
        self, user: str = USER, *, location: str | None = None, data: bytes | None = None
    ) -> Order:
        """A whole report: photo, location (by default a new place), yes; returns the order
        it created."""
        await self.photo(data, user=user)
        await self.text(location if location is not None else self.place(), user)
        outcome = await self.text("确认", user)
        assert outcome.order is not None, outcome
        return outcome.order

    async def reach(self, state: State, user: str = USER) -> Order | None:
        """Bring ``user`` into ``state`` the way a user would; the order being closed, if any."""
        order = None
        if state == "idle":
            await self.text("你好", user)
        elif state == "waiting_location":
            await self.photo(user=user)
        elif state == "waiting_confirm":
            await self.photo(user=user)
            await self.text(self.place(), user)
        elif state == "waiting_close_photo":
            order = await self.report(user)
            await self.text(f"结单 {order.number}", user)
        assert await self.state(user) == state
        return order


@asynccontextmanager
async def dialogue(
    tmp_path: Path,
    clock: FakeClock,
    *,
    vision: VisionModel | None = None,
    language: str = "zh-CN",
    catalog: Sequence[str] = DEFAULT_ALARM_TYPES,
    wrap_orders: Callable[[SqlOrderRepository], OrderRepository] | None = None,
    rules: Rules | None = None,
    store: SessionStore | None = None,
    kv: KeyValueStore | None = None,
) -> AsyncIterator[Kit]:
    """The assistant on real adapters; ``wrap_orders`` may put a failing store in front;
    ``rules`` are the dispatch rules (default: none); ``store`` and ``kv`` the session and
    key-value stores (default: in memory), closed at the end."""
    store = store if store is not None else MemorySessionStore(clock=clock)
    kv = kv if kv is not None else MemoryKeyValueStore(clock=clock)
    engine = SessionEngine(store, EngineConfig(ttl_seconds=TTL_SECONDS), clock=clock)
    media_root = tmp_path / "media"
    media = LocalMediaStore(media_root)
    orders = await SqlOrderRepository.connect(
        f"sqlite+aiosqlite:///{tmp_path / 'orders.db'}", clock=clock
    )
    model = vision if vision is not None else ManualVision()
    dispatch = Dispatch(
        wrap_orders(orders) if wrap_orders is not None else orders,
        rules if rules is not None else Rules(),
        texts=load_texts(language),
        clock=clock,
    )
    assistant = IncidentAssistant(
        engine,
        vision=model,
        media=media,
        orders=dispatch,
        languages=ChosenLanguages(kv, clock=clock),
        catalog=catalog,
        language=language,
    )
    try:
        yield Kit(assistant, engine, media, orders, clock, media_root, dispatch)
    finally:
        await orders.aclose()
        await model.aclose()
        await media.aclose()
        await kv.aclose()
        await store.aclose()


class FlakyOrders:
    """The real repository behind a switch: methods named in ``failing`` raise
    ``StoreUnavailable``, as the adapter does when its database is away."""

    def __init__(self, inner: SqlOrderRepository) -> None:
        self.inner = inner
        self.failing: set[str] = set()

    def _check(self, method: str) -> None:
        if method in self.failing:
            raise StoreUnavailable(f"orders database is away ({method})")

    async def create(
        self,
        report: NewReport,
        *,
        routing: Routing | None = None,
        announce: Announce = no_announcements,
    ) -> Order:
        self._check("create")
        return await self.inner.create(report, routing=routing, announce=announce)

    async def merge(
        self, number: str, report: NewReport, *, announce: Announce = no_announcements
    ) -> Order:
        self._check("merge")
        return await self.inner.merge(number, report, announce=announce)

    async def duplicates(self, query: DuplicateQuery) -> Sequence[Order]:
        self._check("duplicates")
        return await self.inner.duplicates(query)

    async def apply(self, change: OrderChange, *, announce: Announce) -> Order | None:
        self._check("apply")
        return await self.inner.apply(change, announce=announce)

    async def escalate(
        self, number: str, *, level: int, now: datetime, announce: Announce
    ) -> Order | None:
        self._check("escalate")
        return await self.inner.escalate(number, level=level, now=now, announce=announce)

    async def record_event(
        self,
        number: str,
        *,
        kind: EventKind,
        actor: str,
        detail: str,
        announce: Announce = no_announcements,
    ) -> Order:
        self._check("record_event")
        return await self.inner.record_event(
            number, kind=kind, actor=actor, detail=detail, announce=announce
        )

    async def get(self, number: str) -> Order:
        self._check("get")
        return await self.inner.get(number)

    async def list(
        self, *, status: OrderStatus | None = None, user_id: str | None = None, limit: int = 100
    ) -> Sequence[Order]:
        self._check("list")
        return await self.inner.list(status=status, user_id=user_id, limit=limit)

    async def page(self, query: OrderQuery, *, limit: int = 100) -> OrderPage:
        self._check("page")
        return await self.inner.page(query, limit=limit)

    async def open_orders_for(self, user_id: str) -> Sequence[Order]:
        self._check("open_orders_for")
        return await self.inner.open_orders_for(user_id)

    async def stats(self, query: StatsQuery) -> Sequence[StatsGroup]:
        self._check("stats")
        return await self.inner.stats(query)

    async def has_image(self, user_id: str, key: str) -> bool:
        self._check("has_image")
        return await self.inner.has_image(user_id, key)

    async def written_by(self, message: MessageKey) -> tuple[OrderAction, Order] | None:
        self._check("written_by")
        return await self.inner.written_by(message)

    async def events(self, number: str) -> Sequence[OrderEvent]:
        return await self.inner.events(number)

    async def last_changed(self, numbers: Sequence[str]) -> Mapping[str, datetime]:
        self._check("last_changed")
        return await self.inner.last_changed(numbers)

    async def ping(self) -> None:
        self._check("ping")
        await self.inner.ping()

    async def aclose(self) -> None:
        await self.inner.aclose()
