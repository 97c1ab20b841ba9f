"""Building the assistant: its settings are checked up front."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from snapreport.config import DEFAULT_ALARM_TYPES
from snapreport.dispatch.lifecycle import Dispatch
from snapreport.dispatch.rules import Rules
from snapreport.errors import ConfigurationError
from snapreport.kv.memory import MemoryKeyValueStore
from snapreport.media.local import LocalMediaStore
from snapreport.orders.repository import SqlOrderRepository
from snapreport.session.engine import EngineConfig, SessionEngine
from snapreport.session.stores.memory import MemorySessionStore
from snapreport.vision.manual import ManualVision
from snapreport.workflow.incident import IncidentAssistant
from snapreport.workflow.languages import ChosenLanguages
from snapreport.workflow.texts import load_texts
from tests.harness.clock import FakeClock


@asynccontextmanager
async def build(
    tmp_path: Path,
    clock: FakeClock,
    *,
    catalog: Sequence[str] = DEFAULT_ALARM_TYPES,
    language: str = "zh-CN",
) -> AsyncIterator[IncidentAssistant]:
    engine = SessionEngine(MemorySessionStore(clock=clock), EngineConfig(), clock=clock)
    orders = await SqlOrderRepository.connect(f"sqlite+aiosqlite:///{tmp_path / 'orders.db'}")
    try:
        yield IncidentAssistant(
            engine,
            vision=ManualVision(),
            media=LocalMediaStore(tmp_path / "media"),
            orders=Dispatch(orders, Rules(), texts=load_texts(language), clock=clock),
            languages=ChosenLanguages(MemoryKeyValueStore(clock=clock), clock=clock),
            catalog=catalog,
            language=language,
        )
    finally:
        await orders.aclose()


async def test_defaults(tmp_path: Path, clock: FakeClock) -> None:
    async with build(tmp_path, clock) as assistant:
        assert assistant.language == "zh-CN"
        assert assistant.catalog[0] == "消防通道堵塞"
        assert assistant.catalog[-1] == "其他"


async def test_catalog_names_are_trimmed(tmp_path: Path, clock: FakeClock) -> None:
    async with build(tmp_path, clock, catalog=[" 漏水 ", "其他"], language="en") as assistant:
        assert assistant.catalog == ("漏水", "其他")
        assert assistant.language == "en"


@pytest.mark.parametrize("catalog", [[], ["漏水", " "], ["漏水", "漏水"]])
async def test_a_catalog_that_cannot_work_is_refused(
    tmp_path: Path, clock: FakeClock, catalog: list[str]
) -> None:
    with pytest.raises(ConfigurationError, match="catalog"):
        async with build(tmp_path, clock, catalog=catalog):
            pass


async def test_an_unknown_language_is_refused(tmp_path: Path, clock: FakeClock) -> None:
    with pytest.raises(ConfigurationError, match="language"):
        async with build(tmp_path, clock, language="de"):
            pass
