"""Images arriving over HTTP: base64 decoded under a size cap, then checked by ONE decode.

``Decoder.check`` validates an upload and makes the model's copy from the same decoded pixels
(a JPEG decoded at the reduced scale the copy needs), so neither the media store nor the
vision adapter decodes the photo again. Decodes run in the decoder's own threads, at most
``max_decodes`` at once in a process: a photo that finds no free slot within
``wait_seconds`` is refused with 503 ``decoder_busy`` and ``Retry-After``. The endpoint calls
it after the rate limit admitted the message, so a refused user costs no decode.
"""

from __future__ import annotations

import asyncio
import contextlib
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Final

import pybase64

from snapreport.errors import DecoderBusy, ImageTooLarge, InvalidRequest
from snapreport.media.base import CheckedImage
from snapreport.media.validation import checked, decoded
from snapreport.vision.base import PreparedImage
from snapreport.vision.imaging import JPEG_QUALITY, MAX_EDGE, prepare

RETRY_AFTER_SECONDS: Final = 1.0


def decode_base64(text: str, max_bytes: int, *, field: str = "image.data") -> bytes:
    """The bytes of base64 ``text`` (a ``data:`` URL is accepted), at most ``max_bytes``.

    Decoded by pybase64 (SIMD), strictly: any character outside the alphabet, or padding
    anywhere but at the end, is refused. Line-wrapped base64 is common: its whitespace is
    dropped, in a second pass only when the first one fails (scanning a photo's 6 MB of text
    for whitespace costs more than decoding it)."""
    if text.startswith("data:"):
        _, _, text = text.partition(",")
    # the decoded size is known from the length: refuse before decoding anything
    limit = 4 * -(-max_bytes // 3)
    data = _strict_base64(text) if len(text) <= limit else None
    if data is None:
        compact = "".join(text.split())
        if len(compact) > limit:
            raise ImageTooLarge(f"the image is larger than {max_bytes} bytes")
        data = _strict_base64(compact) if len(compact) < len(text) else None
        if data is None:
            raise InvalidRequest(f"{field}: not valid base64")
    if len(data) > max_bytes:
        raise ImageTooLarge(f"the image has {len(data)} bytes; the limit is {max_bytes}")
    return data


def _strict_base64(text: str) -> bytes | None:
    try:
        return pybase64.b64decode(text, validate=True)
    except ValueError:  # binascii.Error, or text that is not ASCII
        return None


@dataclass(frozen=True, slots=True)
class Checked:
    """An upload validation accepted, and the model's copy made from the same decode."""

    image: CheckedImage
    preview: PreparedImage


def check_and_prepare(data: bytes, *, max_bytes: int, max_pixels: int) -> Checked:
    """Validate ``data`` and make the model's copy from that one decode (CPU-bound)."""
    with decoded(data, max_bytes=max_bytes, max_pixels=max_pixels, cover=MAX_EDGE) as (info, img):
        preview = prepare(img, max_edge=MAX_EDGE, quality=JPEG_QUALITY)
    return Checked(checked(data, info), preview)


class Decoder:
    """At most ``max_decodes`` decodes at once, in threads of its own; see the module
    docstring. A slot is freed when its decode has finished, even if the request that
    started it was cancelled meanwhile, so the bound holds for the threads themselves."""

    def __init__(
        self, *, max_decodes: int, wait_seconds: float, max_bytes: int, max_pixels: int
    ) -> None:
        self.max_decodes = max_decodes
        self.wait_seconds = wait_seconds
        self.max_bytes = max_bytes
        self.max_pixels = max_pixels
        self._slots = asyncio.Semaphore(max_decodes)
        self._threads = ThreadPoolExecutor(max_decodes, thread_name_prefix="decode")

    async def check(self, data: bytes) -> Checked:
        """``check_and_prepare`` in a decode thread, or ``DecoderBusy``."""
        try:
            async with asyncio.timeout(self.wait_seconds):
                await self._slots.acquire()
        except TimeoutError:
            raise DecoderBusy(
                f"all {self.max_decodes} image decoders are busy; send the photo again shortly",
                retry_after=RETRY_AFTER_SECONDS,
            ) from None
        loop = asyncio.get_running_loop()
        try:
            job = self._threads.submit(
                check_and_prepare, data, max_bytes=self.max_bytes, max_pixels=self.max_pixels
            )
        except BaseException:
            self._slots.release()
            raise

        def free(_: Future[Checked]) -> None:
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: none to free
                loop.call_soon_threadsafe(self._slots.release)

        job.add_done_callback(free)
        return await asyncio.wrap_future(job)

    def close(self) -> None:
        """Let running decodes finish in their threads; start no new ones."""
        self._threads.shutdown(wait=False, cancel_futures=True)
