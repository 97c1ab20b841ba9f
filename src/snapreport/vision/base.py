"""The ``VisionModel`` port and its value types.

Images reach a model as bytes of the original upload; adapters downscale them before sending,
unless the image comes with a ``preview``: the model's copy, made by the same decode that
validated the upload (the HTTP channel does that, so a photo is decoded once per upload).
Adapters raise ``VisionUnavailable`` when the model cannot answer (after their retries); the
dialogue then goes on in manual mode and never loses the user's photo.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import pybase64

from snapreport.session.history import Message

UNCLASSIFIED = "未分类"
# images sent inline in one request at most: a report's photos, or a close photo and the
# report's photos it is compared with (each a downscaled copy of a few hundred kilobytes)
MAX_INLINE_IMAGES = 4


@dataclass(frozen=True, slots=True)
class PreparedImage:
    """A downscaled JPEG copy ready to send to a model, and its size in pixels."""

    data: bytes = field(repr=False)
    width: int
    height: int
    mime: str = "image/jpeg"

    def data_url(self) -> str:
        """``data:image/jpeg;base64,...``, the form OpenAI-compatible APIs take inline."""
        return f"data:{self.mime};base64,{pybase64.b64encode(self.data).decode('ascii')}"


@dataclass(frozen=True, slots=True)
class Image:
    """An image's bytes and declared MIME type, and the model's copy if one was made."""

    data: bytes = field(repr=False)
    mime: str
    preview: PreparedImage | None = None


@dataclass(frozen=True, slots=True)
class Analysis:
    """What a model says a photo shows. ``alarm_type`` is always one of the catalog."""

    alarm_type: str
    description: str
    confidence: float | None


@dataclass(frozen=True, slots=True)
class Verification:
    """Whether a close photo shows the original problem resolved; ``verified`` is False when
    no model looked at it (manual mode)."""

    resolved: bool
    note: str
    verified: bool = True


@dataclass(frozen=True, slots=True)
class TextQuery:
    """A text the dialogue's words did not match, with what the model needs to understand it:
    the state, the pending report (``type``, ``location``, ``description`` when set), the
    catalog and the last turns as ``(role, text)``."""

    text: str
    state: str
    pending: Mapping[str, str]
    catalog: Sequence[str]
    turns: Sequence[tuple[str, str]] = ()


class VisionModel(Protocol):
    """A vision-language model, or the manual mode that stands in for one."""

    @property
    def enabled(self) -> bool:
        """False for the manual mode: no model is asked anything."""
        ...

    async def analyze(self, image: Image, catalog: Sequence[str], *, language: str) -> Analysis:
        """Classify one photo into one of ``catalog`` and describe it."""
        ...

    async def verify_close(
        self,
        original: Image,
        close: Image,
        *,
        description: str,
        language: str,
        more: Sequence[Image] = (),
    ) -> Verification:
        """Compare the original photo (and ``more`` photos of the report, within
        ``MAX_INLINE_IMAGES`` in all) with a photo of the fixed scene."""
        ...

    async def chat(
        self, messages: Sequence[Message], images: Mapping[str, Image], *, language: str
    ) -> str:
        """A short chat answer to the conversation so far. ``messages`` come from
        ``Session.history_for_vision()``; ``images`` maps their image keys to bytes."""
        ...

    async def understand(self, query: TextQuery, *, language: str) -> dict[str, Any]:
        """What the user means: the JSON object the model answered (unchecked: the dialogue
        checks every field). Raises ``VisionUnavailable`` when there is no such object."""
        ...

    async def aclose(self) -> None: ...
