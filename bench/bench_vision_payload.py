"""Bytes and images sent to the vision model: snapreport against sending originals as the seed.

Run from the repository root::

    .venv/bin/python bench/bench_vision_payload.py

It needs no server: the real ``OpenAICompatVision`` sends its requests through an httpx
transport that records each request body byte for byte and answers like a chat-completions
server. Two figures:

1. bytes per report for a 12-megapixel phone photo (4000x3000 JPEG of gradients and sensor-like
   noise, 4-8 MB): the downscaled copy snapreport sends (target: at least 5 times smaller) against
   the same request carrying the original photo as base64;
2. images inline in a small-talk request after 10 turns that each carried a photo: a real
   ``Session`` and its ``history_for_vision()`` through ``OpenAICompatVision.chat`` (target: 1)
   against the seed, whose ``get_history_for_vlm`` returns every message it keeps.

The results are printed and written to ``docs/benchmarks-vision.md``.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import datetime as dt
import io
import json
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import PIL
from PIL import Image as PILImage

from snapreport.config import DEFAULT_ALARM_TYPES
from snapreport.session.history import ImagePart, TextPart
from snapreport.session.model import Session
from snapreport.vision.base import Image
from snapreport.vision.imaging import downscale
from snapreport.vision.openai_compat import OpenAICompatVision

ROOT = Path(__file__).resolve().parent.parent
REPORT = ROOT / "docs" / "benchmarks-vision.md"
COMMAND = ".venv/bin/python bench/bench_vision_payload.py"
TURNS = 10
PAYLOAD_TARGET = 5.0
IMAGES_TARGET = 1


# ------------------------------------------------------------------ inputs


def make_phone_photo(width: int = 4000, height: int = 3000) -> bytes:
    """A 12 MP JPEG that compresses like a real photo.

    Smooth gradients (sky, walls) under texture at two scales: coarse detail that survives
    downscaling, as real edges and surfaces do, and per-pixel sensor noise that does not.
    """
    gradient = PILImage.linear_gradient("L").resize((width, height))
    radial = PILImage.radial_gradient("L").resize((width, height))
    scene = PILImage.merge(
        "RGB", [gradient, radial, gradient.transpose(PILImage.Transpose.ROTATE_180)]
    )
    small = (width // 4, height // 4)
    coarse = PILImage.merge("RGB", [PILImage.effect_noise(small, 60) for _ in range(3)])
    coarse = coarse.resize((width, height), PILImage.Resampling.BICUBIC)
    fine = PILImage.merge("RGB", [PILImage.effect_noise((width, height), 36) for _ in range(3)])
    photo = PILImage.blend(scene, PILImage.blend(coarse, fine, 0.5), 0.45)
    exif = PILImage.Exif()
    exif[0x0112] = 1
    exif[0x010F] = "PhoneMaker"
    buf = io.BytesIO()
    photo.save(buf, "JPEG", quality=92, exif=exif.tobytes())
    return buf.getvalue()


class SeedUserSession:
    """The seed's history handling, line for line (``add_history`` and ``get_history_for_vlm``)."""

    def __init__(self) -> None:
        self.history: list[dict[str, Any]] = []

    def add_history(self, role: str, content: Any) -> None:
        self.history.append({"role": role, "content": content})
        if len(self.history) > 20:
            self.history = self.history[-20:]

    def get_history_for_vlm(self) -> list[dict[str, Any]]:
        return self.history.copy()


# ------------------------------------------------------------------ capture


class Capture:
    """An httpx transport handler: keeps every request body, answers like the API."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.bodies.append(request.content)
        sent = json.loads(request.content)
        if len(image_urls(sent)) >= 2:
            content = json.dumps({"resolved": True, "note": "x"})
        elif sent.get("response_format", {}).get("type") == "json_object":
            content = json.dumps({"alarm_type": "其他", "description": "x", "confidence": 0.5})
        else:
            content = "好的。"
        return httpx.Response(
            200,
            json={
                "id": "chatcmpl-bench",
                "object": "chat.completion",
                "model": sent["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": content},
                        "finish_reason": "stop",
                    }
                ],
            },
        )

    def last(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.bodies[-1])
        return parsed


def image_urls(body: dict[str, Any]) -> list[str]:
    urls: list[str] = []
    for message in body["messages"]:
        content = message["content"]
        if isinstance(content, list):
            for part in content:
                if part.get("type") == "image_url":
                    urls.append(part["image_url"]["url"])
    return urls


def with_original_images(body: dict[str, Any], originals: list[bytes]) -> bytes:
    """The same request with each image replaced by the original photo's base64."""
    swapped = copy.deepcopy(body)
    queue = iter(originals)
    for message in swapped["messages"]:
        if isinstance(message["content"], list):
            for part in message["content"]:
                if part.get("type") == "image_url":
                    data = next(queue)
                    part["image_url"]["url"] = (
                        "data:image/jpeg;base64," + base64.b64encode(data).decode()
                    )
    return json.dumps(swapped, ensure_ascii=False, separators=(",", ":")).encode()


# ------------------------------------------------------------------ measurements


@dataclass
class Figures:
    photo_bytes: int
    photo_size: tuple[int, int]
    sent_size: tuple[int, int]
    sent_jpeg_bytes: int
    downscale_ms: float
    analysis_body: int
    analysis_body_original: int
    verify_body: int
    verify_body_original: int
    chat_images: int
    chat_body: int
    seed_images: int
    seed_body_original: int

    @property
    def analysis_ratio(self) -> float:
        return self.analysis_body_original / self.analysis_body

    @property
    def verify_ratio(self) -> float:
        return self.verify_body_original / self.verify_body

    @property
    def chat_ratio(self) -> float:
        return self.seed_body_original / self.chat_body


def _timed(fn: Callable[[], object], repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return best * 1000


async def measure() -> Figures:
    photo = make_phone_photo()
    with PILImage.open(io.BytesIO(photo)) as img:
        photo_size = img.size
    prepared = downscale(photo)
    downscale_ms = _timed(lambda: downscale(photo))

    capture = Capture()
    vision = OpenAICompatVision(
        base_url="http://vlm.invalid/v1",
        api_key="bench-key",
        model="qwen-vl-max",
        transport=httpx.MockTransport(capture),
    )
    try:
        image = Image(photo, "image/jpeg")
        await vision.analyze(image, DEFAULT_ALARM_TYPES, language="zh-CN")
        analysis_body = len(capture.bodies[-1])
        analysis_original = len(with_original_images(capture.last(), [photo]))

        await vision.verify_close(image, image, description="楼梯间堆放杂物", language="zh-CN")
        verify_body = len(capture.bodies[-1])
        verify_original = len(with_original_images(capture.last(), [photo, photo]))

        # ten turns, each with a photo, then small talk: a real Session and History
        session = Session("bench-user")
        seed = SeedUserSession()
        keys = [f"img/{i:064x}.jpg" for i in range(TURNS)]
        for i, key in enumerate(keys):
            ref = ImagePart(key, "image/jpeg", len(photo), *photo_size)
            session.history.add_user((TextPart(f"第{i + 1}张照片"), ref))
            session.history.add_assistant(f"已识别第{i + 1}张照片,请告诉我位置。")
            seed.add_history(
                "user",
                [
                    {"type": "text", "text": f"第{i + 1}张照片"},
                    {"type": "image_url", "image_url": {"url": key}},
                ],
            )
            seed.add_history("assistant", f"已识别第{i + 1}张照片,请告诉我位置。")
        messages = session.history_for_vision()
        # the caller may hand over every photo's bytes; only the latest may go inline
        await vision.chat(messages, dict.fromkeys(keys, image), language="zh-CN")
        chat_body = capture.last()
        chat_images = len(image_urls(chat_body))
        seed_history = seed.get_history_for_vlm()
        seed_images = sum(
            1
            for m in seed_history
            if isinstance(m["content"], list)
            for p in m["content"]
            if p.get("type") == "image_url"
        )
        seed_request = {
            "model": "qwen-vl-max",
            "messages": [{"role": "system", "content": "..."}, *seed_history],
        }
        seed_original = len(with_original_images(seed_request, [photo] * seed_images))
    finally:
        await vision.aclose()

    return Figures(
        photo_bytes=len(photo),
        photo_size=photo_size,
        sent_size=(prepared.width, prepared.height),
        sent_jpeg_bytes=len(prepared.data),
        downscale_ms=downscale_ms,
        analysis_body=analysis_body,
        analysis_body_original=analysis_original,
        verify_body=verify_body,
        verify_body_original=verify_original,
        chat_images=chat_images,
        chat_body=len(capture.bodies[-1]),
        seed_images=seed_images,
        seed_body_original=seed_original,
    )


# ------------------------------------------------------------------ report


def _mb(n: int) -> str:
    return f"{n / 1_000_000:.2f} MB"


def _row(*cells: str) -> str:
    return "| " + " | ".join(cells) + " |"


def render(f: Figures, when: dt.datetime) -> str:
    ok_payload = "met" if f.analysis_ratio >= PAYLOAD_TARGET else "NOT met"
    ok_images = "met" if f.chat_images <= IMAGES_TARGET else "NOT met"
    analysis_row = _row(
        "analysis (one photo)",
        _mb(f.analysis_body),
        _mb(f.analysis_body_original),
        f"{f.analysis_ratio:.1f}x",
    )
    verify_row = _row(
        "close verification (two photos, one request)",
        _mb(f.verify_body),
        _mb(f.verify_body_original),
        f"{f.verify_ratio:.1f}x",
    )
    ours_row = _row(
        "snapreport: `Session.history_for_vision()` through `chat()`",
        str(f.chat_images),
        _mb(f.chat_body),
    )
    seed_row = _row(
        "seed: `get_history_for_vlm()` (every kept message)",
        str(f.seed_images),
        _mb(f.seed_body_original),
    )
    return f"""# Benchmark: what is sent to the vision model

Measured {when:%Y-%m-%d %H:%M} UTC on {platform.machine()}, Python {platform.python_version()},
Pillow {PIL.__version__}, with:

```
{COMMAND}
```

The real `OpenAICompatVision` sends each request through an httpx transport that records the
body byte for byte, so the figures are the exact bytes that would go over the wire. The photo is
a {f.photo_size[0]}x{f.photo_size[1]} JPEG ({_mb(f.photo_bytes)}, quality 92) made of gradients
under coarse texture and per-pixel noise, so it compresses like a phone photo both at full size
and downscaled.

## Bytes per report (target: at least {PAYLOAD_TARGET:g}x smaller; {ok_payload})

| request | snapreport (downscaled) | original as base64 | smaller by |
|---|---:|---:|---:|
{analysis_row}
{verify_row}

The copy sent is {f.sent_size[0]}x{f.sent_size[1]}, JPEG quality 85, no metadata:
{_mb(f.sent_jpeg_bytes)} before base64. Making it took {f.downscale_ms:.0f} ms (best of 3; a
worker thread does it, off the event loop).

## Images inline in small talk after {TURNS} photo turns (target: {IMAGES_TARGET}; {ok_images})

| | images inline | request body |
|---|---:|---:|
{ours_row}
{seed_row}

The seed's figure counts the image parts its `get_history_for_vlm` returns (a shallow copy of
the last 20 messages, despite its docstring); its bytes assume each is sent as the original
photo's base64, as a private model that cannot fetch storage URLs would need. snapreport keeps
only the latest photo inline (older ones become a short text placeholder), even when the caller
hands over the bytes of all {TURNS}: {f.chat_ratio:.0f}x fewer bytes.
"""


def main() -> int:
    figures = asyncio.run(measure())
    when = dt.datetime.now(dt.UTC)
    text = render(figures, when)
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(text, encoding="utf-8")
    print(text)
    print(f"written to {REPORT.relative_to(ROOT)}", file=sys.stderr)
    met = figures.analysis_ratio >= PAYLOAD_TARGET and figures.chat_images <= IMAGES_TARGET
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
