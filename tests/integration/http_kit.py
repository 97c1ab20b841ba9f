"""Shared builders for the HTTP tests: settings on a temporary directory, a running app with an
in-process client (lifespan included), and test images (a real PNG, a decompression bomb)."""

from __future__ import annotations

import base64
import io
import struct
import zlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from PIL import Image

from snapreport.app import App
from snapreport.channels.http import create_app
from snapreport.channels.http.state import HttpState
from snapreport.config import Settings
from tests.integration.live_server import IsolatedSettings

API_TOKEN = "api-token-0123456789"
ADMIN_TOKEN = "admin-token-9876543210"


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    """Embedded defaults under ``tmp_path`` (memory sessions, SQLite orders, local media)."""
    values: dict[str, Any] = {
        "data_dir": tmp_path,
        "orders": {"url": f"sqlite+aiosqlite:///{tmp_path / 'orders.db'}"},
        "media": {"root": tmp_path / "media"},
    }
    values.update(overrides)
    return IsolatedSettings.model_validate(values)


@dataclass
class Running:
    """An app whose lifespan has started, and a client talking to it in-process."""

    app: FastAPI
    client: httpx.AsyncClient

    @property
    def state(self) -> HttpState:
        state: HttpState = self.app.state.http
        return state

    @property
    def ctx(self) -> App:
        return self.state.app


@asynccontextmanager
async def running(
    settings: Settings,
    *,
    clock: Callable[[], float] | None = None,
    headers: dict[str, str] | None = None,
) -> AsyncIterator[Running]:
    app = create_app(settings, clock=clock)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://localhost", headers=headers
        ) as client:
            yield Running(app, client)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def png_bytes(
    width: int = 32, height: int = 24, color: tuple[int, int, int] = (200, 30, 30)
) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buffer, format="PNG")
    return buffer.getvalue()


def jpeg_bytes(
    width: int = 40, height: int = 30, color: tuple[int, int, int] = (20, 90, 200)
) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bomb_png(side: int = 100_000) -> bytes:
    """A tiny PNG whose header declares ``side`` x ``side`` pixels (10 gigapixels by default)."""
    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", idat)
        + _chunk(b"IEND", b"")
    )


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def text_message(user_id: str, text: str, message_id: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"user_id": user_id, "text": text}
    if message_id is not None:
        body["message_id"] = message_id
    return body


def image_message(user_id: str, data: bytes, message_id: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"user_id": user_id, "image": {"data": b64(data), "mime": "image/png"}}
    if message_id is not None:
        body["message_id"] = message_id
    return body


async def report(
    client: httpx.AsyncClient, user_id: str, location: str = "3号楼东侧楼梯间"
) -> dict[str, Any]:
    """A whole report: photo, location, confirmation; the last answer (with its order)."""
    first = await client.post("/api/v1/messages", json=image_message(user_id, png_bytes()))
    assert first.status_code == 200, first.text
    assert first.json()["state"] == "waiting_location"
    second = await client.post("/api/v1/messages", json=text_message(user_id, location))
    assert second.json()["state"] == "waiting_confirm", second.text
    third = await client.post("/api/v1/messages", json=text_message(user_id, "确认"))
    assert third.status_code == 200, third.text
    answer: dict[str, Any] = third.json()
    assert answer["state"] == "idle"
    assert answer["order"] is not None
    return answer
