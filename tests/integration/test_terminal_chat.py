"""The terminal chat, driven by a scripted ``read_line`` and a recording console.

In-process against the real application (manual vision, SQLite orders, local media), and over
HTTP against the real app served by uvicorn on loopback.
"""

from __future__ import annotations

import io
import re
import socket
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from PIL import Image
from rich.console import Console

from snapreport.bootstrap import build
from snapreport.channels.terminal import run_chat
from snapreport.config import Settings
from snapreport.orders.repository import SqlOrderRepository
from snapreport.outbox.senders.inapp import OrderNotifier
from snapreport.outbox.sqlalchemy import SqlOutboxStore, enqueue
from snapreport.outbox.worker import OutboxWorker, Routes
from tests.harness.outbox_kit import order_message
from tests.integration.live_server import live_server, local_settings

ORDER_NUMBER = re.compile(r"WO-\d{8}-\d{4}")


class Script:
    """A ``read_line`` that answers from a list, then end of input; it records the prompts."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = list(lines)
        self.prompts: list[str] = []

    async def __call__(self, prompt: str) -> str | None:
        self.prompts.append(prompt)
        return self.lines.pop(0) if self.lines else None


def recording_console() -> Console:
    return Console(record=True, width=100, file=io.StringIO(), color_system=None)


def flat(console: Console) -> str:
    """The recorded output with panel borders and line breaks gone, so wrapped text matches."""
    text = console.export_text()
    return re.sub(r"[\s│╭╮╰╯─]+", " ", text)


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    path = tmp_path / "scene.png"
    Image.new("RGB", (320, 240), (200, 80, 40)).save(path)
    return path


Chat = Callable[..., Awaitable[tuple[Script, str]]]


@pytest.fixture
def chat(tmp_path: Path) -> Chat:
    async def run(lines: list[str], **kwargs: object) -> tuple[Script, str]:
        script = Script(lines)
        console = recording_console()
        settings = kwargs.pop("settings", None) or local_settings(tmp_path)
        await run_chat(
            user_id=str(kwargs.pop("user_id", "zhangsan")),
            settings=settings,  # type: ignore[arg-type]
            console=console,
            read_line=script,
            **kwargs,  # type: ignore[arg-type]
        )
        return script, flat(console)

    return run


async def test_a_full_report_in_process(chat: Chat, photo: Path, tmp_path: Path) -> None:
    script, out = await chat(
        [f"/photo {photo}", "3号楼东侧楼梯间", "/state", "确认", "/quit", "never read"]
    )

    assert "未分类" in out  # manual vision: the type is left for the user to correct
    assert "state: waiting for location" in out
    assert "3号楼东侧楼梯间" in out
    assert "state: waiting for confirmation (waiting_confirm) · expires in 10 min" in out
    numbers = set(ORDER_NUMBER.findall(out))
    assert len(numbers) == 1
    assert out.rstrip().endswith("bye")
    assert script.lines == ["never read"], "/quit must stop reading"
    assert script.prompts[-1] == "[idle] you › "

    async with build(local_settings(tmp_path)) as app:
        orders = await app.orders.list(user_id="zhangsan")
    assert [o.number for o in orders] == list(numbers)
    assert orders[0].location == "3号楼东侧楼梯间"
    assert orders[0].status == "open"
    assert orders[0].image_key is not None


async def test_a_report_then_its_close_in_process(chat: Chat, photo: Path, tmp_path: Path) -> None:
    _, out = await chat([f"/photo {photo}", "3号楼东侧楼梯间", "确认"])
    [number] = set(ORDER_NUMBER.findall(out))

    _, out = await chat([f"结单 {number}", "/state", f"/photo {photo}"])

    assert "state: waiting for close photo (waiting_close_photo)" in out
    assert "status closed" in out
    assert "closed unverified" in out  # manual vision: the close is recorded unverified
    assert "state: idle" in out
    async with build(local_settings(tmp_path)) as app:
        order = await app.orders.get(number)
    assert order.status == "closed"
    assert order.close_verified is None


async def test_commands_and_their_mistakes(chat: Chat, photo: Path, tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("not a picture")
    spaced = tmp_path / "my scene.png"
    spaced.write_bytes(photo.read_bytes())

    _, out = await chat(
        [
            "/state",
            f"/photo {tmp_path / 'missing.jpg'}",
            f"/photo {notes}",
            f"/photo {tmp_path}",
            "/photo",
            "/location 31.2",
            "/location 95,121.4",
            "/frobnicate",
            f"/photo {spaced}",
            "/location 31.2304, 121.4737 A区东门",
            "/state",
            "/help",
        ]
    )

    assert "state: idle" in out
    assert f"no such file: {tmp_path / 'missing.jpg'}" in out
    assert "notes.txt is not a JPEG, PNG or WebP image" in out
    assert f"not a file: {tmp_path}" in out
    assert "usage: /photo PATH [caption]" in out
    assert "usage: /location LAT,LON [label]" in out
    assert "latitude must be within ±90" in out
    assert "unknown command /frobnicate" in out
    assert "state: waiting for location" in out  # the photo with a space in its name went
    assert "A区东门" in out  # the location's label is the location
    assert "state: waiting for confirmation" in out
    assert "/photo PATH [caption]" in out.split("Commands", 1)[1]
    assert out.rstrip().endswith("bye"), "end of input quits"


async def test_an_invalid_user_id_is_refused(chat: Chat) -> None:
    script, out = await chat(["hello"], user_id="no spaces allowed")

    assert "user id may only use" in out
    assert script.lines == ["hello"], "nothing is read or sent for an invalid user"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_an_unreachable_server_is_said_plainly(chat: Chat) -> None:
    url = f"http://127.0.0.1:{_closed_port()}"

    _, out = await chat(["hello", "/state"], url=url)

    assert out.count(f"cannot reach the server at {url}") == 2
    assert out.rstrip().endswith("bye")


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Settings]]:
    from snapreport.channels.http import create_app

    settings = local_settings(tmp_path, api_token="terminal-secret")
    with live_server(create_app(settings)) as url:
        yield url, settings


async def test_a_full_report_over_http(
    chat: Chat, photo: Path, served: tuple[str, Settings]
) -> None:
    url, settings = served

    _, out = await chat(
        [f"/photo {photo} 楼梯间堵了", "/location 31.23,121.47 B区北门", "/state", "确认"],
        url=url,
        token="terminal-secret",
        settings=settings,
    )

    assert "未分类" in out
    assert "B区北门" in out
    assert "state: waiting for confirmation" in out
    numbers = set(ORDER_NUMBER.findall(out))
    assert len(numbers) == 1
    assert "status open" in out  # the order table of the turn that created it
    assert "state: idle" in out

    async with build(settings) as app:
        orders = await app.orders.list(user_id="zhangsan")
    assert [o.number for o in orders] == list(numbers)
    assert orders[0].location == "B区北门"


async def test_api_errors_are_shown(chat: Chat, served: tuple[str, Settings]) -> None:
    url, settings = served

    _, out = await chat(["hello"], url=url, token="wrong", settings=settings)

    assert "(unauthorized)" in out
    assert out.rstrip().endswith("bye")


async def _notify(settings: Settings, *texts: str) -> None:
    """Deliver order notifications for zhangsan into the settings' database, as a worker
    would."""
    repo = await SqlOrderRepository.connect(settings.orders.url)
    try:
        store = SqlOutboxStore(repo.engine)
        async with store.sessions() as session, session.begin():
            enqueue(
                session,
                *(
                    order_message(f"WO-{i}", recipients=["zhangsan"], text=t)
                    for i, t in enumerate(texts)
                ),
            )
        worker = OutboxWorker(store, Routes({"order.": OrderNotifier(store.sessions, wecom=False)}))
        assert await worker.run_once() == len(texts)
    finally:
        await repo.aclose()


async def test_notifications_show_in_process_the_latest_first_then_new_ones(
    chat: Chat, tmp_path: Path
) -> None:
    settings = local_settings(tmp_path)
    await _notify(settings, "old one", "second", "third", "fourth")

    _, out = await chat(["/notifications"], settings=settings)

    assert "old one" not in out  # a first look shows the latest three only
    for shown in ("second", "third", "fourth"):
        assert shown in out
    assert "order.created" in out
    assert "no new notifications" in out


async def test_notifications_show_over_http(chat: Chat, served: tuple[str, Settings]) -> None:
    url, settings = served
    await _notify(settings, "工单 WO-1 已被 lisi 接单")

    _, out = await chat(["/state"], url=url, token="terminal-secret", settings=settings)

    assert "工单 WO-1 已被 lisi 接单" in out
