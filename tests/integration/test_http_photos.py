"""Photos over HTTP cost one decode, after the rate limit, with a bounded number at once.

A spy on Pillow's ``load`` (the call that decodes pixels) counts decodes and the size each
produced; the vision model is the fake OpenAI-compatible server, which records what it got.
"""

from __future__ import annotations

import asyncio
import io
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageFile

from tests.harness.fake_vlm import FakeVLM
from tests.integration.http_kit import (
    image_message,
    make_settings,
    png_bytes,
    running,
    text_message,
)

WAIT_SECONDS = 20.0  # a bound on waiting for a condition, never reached when things work


class DecodeSpy:
    """Records (format, size after decoding) of every decode; can hold decodes back."""

    def __init__(self) -> None:
        self.decodes: list[tuple[str | None, tuple[int, int]]] = []
        self.entered = threading.Event()
        self.release = threading.Event()
        self.release.set()


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> Iterator[DecodeSpy]:
    recorder = DecodeSpy()
    original = ImageFile.ImageFile.load

    def load(self: ImageFile.ImageFile) -> Any:
        # load() again on a decoded image decodes nothing; the fake model server checks the
        # images it receives in its request threads: not the service's decodes
        first = self.tile != [] and "process_request" not in threading.current_thread().name
        if first:
            recorder.entered.set()
            assert recorder.release.wait(WAIT_SECONDS), "the test never let the decode go on"
        result = original(self)
        if first:
            recorder.decodes.append((self.format, self.size))
        return result

    monkeypatch.setattr(ImageFile.ImageFile, "load", load)
    yield recorder
    recorder.release.set()


def photo(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (30, 120, 60)).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def _vision(fake_vlm: FakeVLM) -> dict[str, Any]:
    return {
        "base_url": fake_vlm.url,
        "api_key": fake_vlm.api_key,
        "model": fake_vlm.model,
        "max_retries": 0,
    }


async def test_a_12_mp_photo_is_decoded_once_at_reduced_scale(
    tmp_path: Path, fake_vlm: FakeVLM, spy: DecodeSpy
) -> None:
    settings = make_settings(tmp_path, vision=_vision(fake_vlm))
    data = photo(4000, 3000)
    spy.decodes.clear()  # making the photo decoded nothing, but be sure
    async with running(settings) as r:
        answer = await r.client.post("/api/v1/messages", json=image_message("wang", data))
    assert answer.status_code == 200, answer.text
    assert answer.json()["state"] == "waiting_location"
    # one decode validated the upload, let the store keep it and made the model's copy;
    # libjpeg decoded it at half scale, the smallest that still covers the copy's 1600 px
    assert spy.decodes == [("JPEG", (2000, 1500))]
    [request] = fake_vlm.requests
    [sent] = request.images
    with Image.open(io.BytesIO(sent)) as copy:
        assert copy.size == (1600, 1200)
    stored = list((tmp_path / "media" / "img").iterdir())
    assert [p.read_bytes() for p in stored] == [data]  # the original is what is kept


async def test_a_rate_limited_user_costs_no_decode(tmp_path: Path, spy: DecodeSpy) -> None:
    settings = make_settings(tmp_path, rate_limit_per_minute=1)
    damaged = png_bytes(64, 48)[:-40]  # decoding it would fail with 415
    async with running(settings) as r:
        first = await r.client.post("/api/v1/messages", json=text_message("li", "你好"))
        refused = await r.client.post("/api/v1/messages", json=image_message("li", damaged))
    assert first.status_code == 200, first.text
    assert refused.status_code == 429, refused.text
    assert refused.json()["error"]["code"] == "rate_limited"
    assert spy.decodes == []


async def test_with_every_decoder_busy_a_photo_gets_503_and_retry_after(
    tmp_path: Path, spy: DecodeSpy
) -> None:
    settings = make_settings(tmp_path, media={"max_decodes": 1, "decode_wait_seconds": 0.2})
    spy.release.clear()
    async with running(settings) as r:
        held = asyncio.create_task(
            r.client.post("/api/v1/messages", json=image_message("a", photo(800, 600)))
        )
        assert await asyncio.to_thread(spy.entered.wait, WAIT_SECONDS)  # "a" holds the decoder
        busy = await r.client.post("/api/v1/messages", json=image_message("b", png_bytes()))
        spy.release.set()
        done = await held
        after = await r.client.post("/api/v1/messages", json=image_message("b", png_bytes()))
    assert busy.status_code == 503, busy.text
    assert busy.json()["error"]["code"] == "decoder_busy"
    assert busy.headers["Retry-After"] == "1"
    assert done.status_code == 200, done.text
    assert after.status_code == 200, after.text  # the slot came back when the decode ended
