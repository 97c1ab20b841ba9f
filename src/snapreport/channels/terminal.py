"""The terminal chat: a small REPL over the dialogue, in-process or against a running server.

``snapreport chat --user ID`` builds the whole application in this process (``bootstrap``);
``--url`` talks to a running server's HTTP API instead. Both sit behind ``ChatTransport`` so
the REPL itself does not care where the assistant lives.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shlex
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol

import httpx
from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from snapreport.app import App
from snapreport.config import Settings
from snapreport.errors import SnapreportError
from snapreport.orders.base import Order
from snapreport.workflow.events import Event, ImageEvent, LocationEvent, TextEvent

ReadLine = Callable[[str], Awaitable[str | None]]

STATE_LABELS: Final[Mapping[str, str]] = {
    "idle": "idle",
    "waiting_location": "waiting for location",
    "waiting_confirm": "waiting for confirmation",
    "waiting_close_photo": "waiting for close photo",
}

# Sniffed rather than trusted from the file name: the server validates again, but a clear
# local message beats a round trip for an obvious mistake.
_IMAGE_SIGNATURES: Final[tuple[tuple[bytes, str], ...]] = (
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
)
_LOCATION = re.compile(
    r"^\s*(?P<lat>[-+]?\d+(?:\.\d+)?)\s*,\s*(?P<lon>[-+]?\d+(?:\.\d+)?)\s*(?P<label>.*)$"
)
_HTTP_TIMEOUT: Final = httpx.Timeout(120.0, connect=5.0)

HELP = """\
[bold]Commands[/bold]
  /photo PATH \\[caption]     send a photo (JPEG, PNG or WebP)
  /location LAT,LON \\[label] send a location, e.g. /location 31.23,121.47 A区
  /state                    show the current state and when it expires
  /notifications            show new notifications (they also show before each prompt)
  /help                     this help
  /quit                     leave (Ctrl-D too)
Anything else is sent as a text message (try 帮助 or help)."""


class ChatError(Exception):
    """Something the user should read instead of a reply (bad input, server away, API error)."""


@dataclass(frozen=True, slots=True)
class ChatTurn:
    """One answer, transport-neutral: the replies, the state after it, the order it touched."""

    replies: tuple[str, ...]
    state: str
    order: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class SessionStatus:
    state: str
    expires_in: float | None


@dataclass(frozen=True, slots=True)
class NotificationLine:
    id: str
    type: str
    text: str


NOTIFICATION_PAGE: Final = 200
FIRST_NOTIFICATIONS_SHOWN: Final = 3


class ChatTransport(Protocol):
    """Where messages go: the assistant in this process, or a server over HTTP."""

    async def notifications(self, after: str | None) -> tuple[list[NotificationLine], bool]:
        """The user's notifications after the one with id ``after``, oldest first, and whether
        more follow."""
        ...

    async def send(self, event: Event) -> ChatTurn:
        """Deliver one message and return the answer; raise ``ChatError`` when it cannot."""
        ...

    async def status(self) -> SessionStatus:
        """The user's current state, without touching the session."""
        ...


class InProcessTransport:
    """Calls the assistant of an application built in this process."""

    def __init__(self, app: App, user_id: str) -> None:
        self._app = app
        self._user_id = user_id

    async def send(self, event: Event) -> ChatTurn:
        try:
            outcome = await self._app.assistant.handle(self._user_id, event)
        except SnapreportError as exc:
            raise ChatError(f"{exc.message} ({exc.code})") from exc
        order = None if outcome.order is None else _order_fields(outcome.order)
        return ChatTurn(tuple(r.text for r in outcome.replies), outcome.state, order)

    async def status(self) -> SessionStatus:
        engine = self._app.engine
        try:
            info = await engine.peek(self._user_id)
        except SnapreportError as exc:
            raise ChatError(f"{exc.message} ({exc.code})") from exc
        if info is None or info.expired:
            return SessionStatus("idle", None)
        return SessionStatus(info.session.state, max(0.0, info.expires_at - engine.now()))

    async def notifications(self, after: str | None) -> tuple[list[NotificationLine], bool]:
        try:
            found = await self._app.notifications.list(
                self._user_id, after=int(after or 0), limit=NOTIFICATION_PAGE
            )
        except SnapreportError as exc:
            raise ChatError(f"{exc.message} ({exc.code})") from exc
        lines = [NotificationLine(str(n.id), n.type, n.text) for n in found]
        return lines, len(found) == NOTIFICATION_PAGE


class HttpTransport:
    """Talks to ``POST /api/v1/messages`` of a running server."""

    def __init__(self, client: httpx.AsyncClient, user_id: str) -> None:
        self._client = client
        self._user_id = user_id
        self._where = str(client.base_url).rstrip("/")

    async def send(self, event: Event) -> ChatTurn:
        # a fresh id per message: the server answers a retried id with its first answer
        fields: dict[str, Any] = {"user_id": self._user_id, "message_id": uuid.uuid4().hex}
        if isinstance(event, ImageEvent):
            if event.caption:
                fields["text"] = event.caption
            files = {"image": ("photo", event.raw, event.mime or "application/octet-stream")}
            body = await self._request("POST", "/api/v1/messages", data=fields, files=files)
        elif isinstance(event, LocationEvent):
            fields["location"] = {
                "latitude": event.latitude,
                "longitude": event.longitude,
                "label": event.label,
            }
            body = await self._request("POST", "/api/v1/messages", json=fields)
        else:
            fields["text"] = event.text
            body = await self._request("POST", "/api/v1/messages", json=fields)
        replies = tuple(str(r.get("text", "")) for r in body.get("replies", []))
        order = body.get("order")
        return ChatTurn(replies, str(body.get("state", "idle")), order or None)

    async def status(self) -> SessionStatus:
        body = await self._request("GET", f"/api/v1/users/{self._user_id}/session")
        expires_in = body.get("expires_in")
        return SessionStatus(
            str(body.get("state", "idle")),
            float(expires_in) if isinstance(expires_in, int | float) else None,
        )

    async def notifications(self, after: str | None) -> tuple[list[NotificationLine], bool]:
        params = {"limit": NOTIFICATION_PAGE, **({"after": after} if after else {})}
        body = await self._request(
            "GET", f"/api/v1/users/{self._user_id}/notifications", params=params
        )
        lines = [
            NotificationLine(str(n.get("id", "")), str(n.get("type", "")), str(n.get("text", "")))
            for n in body.get("notifications", [])
            if isinstance(n, dict)
        ]
        return lines, bool(body.get("next_cursor"))

    async def _request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = await self._client.request(method, path, **kwargs)
        except httpx.TimeoutException as exc:
            raise ChatError(f"the server at {self._where} did not answer in time") from exc
        except httpx.TransportError as exc:
            raise ChatError(
                f"cannot reach the server at {self._where} ({type(exc).__name__})"
            ) from exc
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.is_success and isinstance(body, dict):
            return body
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            error = body["error"]
            raise ChatError(f"{error.get('message', 'error')} ({error.get('code', 'error')})")
        raise ChatError(f"the server answered HTTP {response.status_code}")


def _order_fields(order: Order) -> dict[str, Any]:
    return {
        "number": order.number,
        "status": order.status,
        "alarm_type": order.alarm_type,
        "location": order.location,
        "close_verified": order.close_verified,
        "forced": order.forced,
    }


def read_image(path_text: str) -> tuple[bytes, str]:
    """The bytes and sniffed MIME type of an image file, or ``ChatError`` saying what is wrong."""
    path = Path(path_text).expanduser()
    if not path.exists():
        raise ChatError(f"no such file: {path}")
    if not path.is_file():
        raise ChatError(f"not a file: {path}")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ChatError(f"cannot read {path}: {exc.strerror or exc}") from exc
    mime = sniff_image(data)
    if mime is None:
        raise ChatError(f"{path.name} is not a JPEG, PNG or WebP image")
    return data, mime


def sniff_image(data: bytes) -> str | None:
    for signature, mime in _IMAGE_SIGNATURES:
        if data.startswith(signature):
            return mime
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def parse_location(args: str) -> LocationEvent:
    """``LAT,LON [label]`` as a ``LocationEvent``; ``ChatError`` when it is not one."""
    match = _LOCATION.match(args)
    if match is None:
        raise ChatError("usage: /location LAT,LON [label]   e.g. /location 31.23,121.47 A区")
    latitude, longitude = float(match["lat"]), float(match["lon"])
    if not -90.0 <= latitude <= 90.0 or not -180.0 <= longitude <= 180.0:
        raise ChatError("latitude must be within ±90 and longitude within ±180")
    return LocationEvent(latitude, longitude, match["label"].strip())


def parse_photo(args: str) -> ImageEvent:
    """``PATH [caption]`` (quote a path with spaces) as an ``ImageEvent``."""
    whole = args.strip()
    if whole and Path(whole).expanduser().is_file():
        # an unquoted path with spaces: taken whole rather than split into a caption
        data, mime = read_image(whole)
        return ImageEvent(data, mime)
    try:
        words = shlex.split(args)
    except ValueError as exc:
        raise ChatError(f"cannot read that path: {exc}") from exc
    if not words:
        raise ChatError("usage: /photo PATH [caption]")
    data, mime = read_image(words[0])
    return ImageEvent(data, mime, " ".join(words[1:]))


class ChatRepl:
    """The read–send–render loop; one instance per chat."""

    def __init__(self, transport: ChatTransport, console: Console, read_line: ReadLine) -> None:
        self._transport = transport
        self._console = console
        self._read_line = read_line
        self._state = "idle"
        self._seen: str | None = None
        self._first_look = True

    async def run(self) -> None:
        while True:
            await self._show_notifications(quiet=True)
            line = await self._read_line(self._prompt())
            if line is None:
                self._console.print("[dim]bye[/dim]")
                return
            line = line.strip()
            if not line:
                continue
            try:
                if not await self._dispatch(line):
                    self._console.print("[dim]bye[/dim]")
                    return
            except ChatError as exc:
                self._console.print(f"[bold red]✗[/bold red] {escape(str(exc))}")

    def _prompt(self) -> str:
        return f"[{STATE_LABELS.get(self._state, self._state)}] you › "

    async def _dispatch(self, line: str) -> bool:
        """Handle one line; False when the user wants to leave."""
        if not line.startswith("/"):
            await self._send(TextEvent(line))
            return True
        command, _, args = line.partition(" ")
        command = command.lower()
        if command in ("/quit", "/exit", "/q"):
            return False
        if command in ("/help", "/?"):
            self._console.print(HELP)
        elif command == "/photo":
            await self._send(parse_photo(args))
        elif command == "/location":
            await self._send(parse_location(args))
        elif command == "/state":
            await self._show_status()
        elif command == "/notifications":
            await self._show_notifications(quiet=False)
        else:
            raise ChatError(f"unknown command {command}; /help lists them")
        return True

    async def _send(self, event: Event) -> None:
        with self._console.status("sending…", spinner="dots"):
            turn = await self._transport.send(event)
        self._state = turn.state
        for reply in turn.replies:
            self._console.print(
                Panel(Text(reply), title="assistant", title_align="left", border_style="cyan")
            )
        if turn.order is not None:
            self._console.print(_order_table(turn.order))
        self._console.print(f"[dim]state: {escape(self._state_label(turn.state))}[/dim]")

    async def _show_notifications(self, *, quiet: bool) -> None:
        """Print the notifications that arrived since the last look (on the first look only
        the latest few). ``quiet``: a failure to look is not worth a message."""
        fresh: list[NotificationLine] = []
        try:
            more = True
            while more:
                lines, more = await self._transport.notifications(self._seen)
                fresh += lines
                if lines:
                    self._seen = lines[-1].id
        except ChatError:
            if not quiet:
                raise
        if self._first_look:
            fresh = fresh[-FIRST_NOTIFICATIONS_SHOWN:]
            self._first_look = False
        for line in fresh:
            self._console.print(
                Panel(Text(line.text), title=line.type, title_align="left", border_style="yellow")
            )
        if not fresh and not quiet:
            self._console.print("[dim]no new notifications[/dim]")

    async def _show_status(self) -> None:
        status = await self._transport.status()
        self._state = status.state
        text = f"state: [bold]{escape(self._state_label(status.state))}[/bold]"
        if status.expires_in is not None:
            text += f" · expires in {_duration(status.expires_in)}"
        self._console.print(text)

    @staticmethod
    def _state_label(state: str) -> str:
        label = STATE_LABELS.get(state, state)
        return label if label == state else f"{label} ({state})"


def _order_table(order: Mapping[str, Any]) -> Table:
    table = Table(title="work order", title_justify="left", show_header=False, box=None)
    table.add_column(style="dim")
    table.add_column()
    for key in ("number", "status", "alarm_type", "location"):
        if order.get(key):
            table.add_row(key.replace("_", " "), str(order[key]))
    if order.get("status") == "closed":
        verified = order.get("close_verified")
        if order.get("forced"):
            how = "forced"
        elif verified is None:
            how = "unverified"
        else:
            how = "verified" if verified else "not verified"
        table.add_row("closed", how)
    return table


def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes} min {secs} s" if minutes else f"{secs} s"


def _console_reader(console: Console) -> ReadLine:
    with contextlib.suppress(ImportError):
        # imported for its side effect: input() gains line editing and history
        import readline  # noqa: F401

    async def read_line(prompt: str) -> str | None:
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[str | None] = loop.create_future()

        def deliver(line: str | None) -> None:
            if not answer.done():
                answer.set_result(line)

        def ask() -> None:
            try:
                # a Text, so the prompt is neither markup nor syntax-highlighted
                line: str | None = console.input(Text(prompt, style="bold"))
            except (EOFError, KeyboardInterrupt):
                line = None
            loop.call_soon_threadsafe(deliver, line)

        # input() blocks, so it runs on a daemon thread: the event loop (and the in-process
        # app) keeps running, and an interrupted chat does not wait for a line that never comes
        threading.Thread(target=ask, name="chat-input", daemon=True).start()
        return await answer

    return read_line


@asynccontextmanager
async def open_transport(
    *, user_id: str, settings: Settings, url: str | None, token: str | None
) -> AsyncIterator[ChatTransport]:
    """The HTTP transport when ``url`` is given, else the application built in-process."""
    if url:
        secret = token if token is not None else settings.api_token.get_secret_value()
        headers = {"Authorization": f"Bearer {secret}"} if secret else {}
        async with httpx.AsyncClient(
            base_url=url.rstrip("/"), headers=headers, timeout=_HTTP_TIMEOUT
        ) as client:
            yield HttpTransport(client, user_id)
        return
    from snapreport.bootstrap import build

    # the outbox worker runs too: this process may be the only one delivering notifications
    async with build(settings, deliver=True) as app:
        yield InProcessTransport(app, user_id)


async def run_chat(
    *,
    user_id: str,
    settings: Settings,
    url: str | None = None,
    token: str | None = None,
    console: Console | None = None,
    read_line: ReadLine | None = None,
) -> None:
    """Chat as ``user_id`` until ``/quit`` or end of input."""
    from snapreport.session.model import check_user_id

    console = console or Console()
    try:
        check_user_id(user_id)
    except SnapreportError as exc:
        console.print(f"[bold red]✗[/bold red] {escape(exc.message)}")
        return
    where = url or "this process"
    console.print(
        f"[bold]snapreport chat[/bold] as [cyan]{escape(user_id)}[/cyan] · {escape(where)}"
        " · /help for commands",
        highlight=False,
    )
    async with open_transport(user_id=user_id, settings=settings, url=url, token=token) as t:
        await ChatRepl(t, console, read_line or _console_reader(console)).run()
