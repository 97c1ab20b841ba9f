"""``ManualVision``: the stand-in when no vision model is configured.

Reports go on unclassified (the user corrects the type at confirmation), closes are recorded as
unverified, small talk gets the dialogue's help text instead of a model's answer, and only the
dialogue's words are understood.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from snapreport.errors import VisionUnavailable
from snapreport.session.history import Message
from snapreport.vision.base import UNCLASSIFIED, Analysis, Image, TextQuery, Verification


class ManualVision:
    """A ``VisionModel`` that asks no model anything."""

    @property
    def enabled(self) -> bool:
        return False

    async def analyze(self, image: Image, catalog: Sequence[str], *, language: str) -> Analysis:
        """Always ``未分类`` with no description and no confidence."""
        return Analysis(UNCLASSIFIED, "", None)

    async def verify_close(
        self,
        original: Image,
        close: Image,
        *,
        description: str,
        language: str,
        more: Sequence[Image] = (),
    ) -> Verification:
        """Always resolved and unverified: a person, not a model, stands behind the close."""
        return Verification(resolved=True, note="", verified=False)

    async def chat(
        self, messages: Sequence[Message], images: Mapping[str, Image], *, language: str
    ) -> str:
        """Raises ``VisionUnavailable``: the dialogue answers with its help text instead."""
        raise VisionUnavailable("no vision model is configured (manual mode)")

    async def understand(self, query: TextQuery, *, language: str) -> dict[str, Any]:
        """Raises ``VisionUnavailable``: without a model only the dialogue's words count."""
        raise VisionUnavailable("no vision model is configured (manual mode)")

    async def aclose(self) -> None:
        return None

    def __repr__(self) -> str:
        return "ManualVision()"
